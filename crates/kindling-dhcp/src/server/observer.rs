//! The boot-timeline hook: what the workers report for every datagram.

use std::net::{Ipv4Addr, SocketAddrV4, SocketAddrV6};

use crate::policy::{ClientInfo, IgnoreReason, ListenPort, Reply};
use crate::v6::decide::{Client6, Reply6};

/// A packet Kindling recognised as a PXE / HTTP Boot / iPXE client.
#[derive(Debug, Clone, Copy)]
pub struct SeenEvent<'a> {
    pub iface: &'a str,
    pub port: ListenPort,
    pub source: SocketAddrV4,
    /// mac, arch, firmware, vendor class, user class, ciaddr, giaddr ...
    pub client: &'a ClientInfo,
}

/// A reply Kindling sent.
#[derive(Debug, Clone, Copy)]
pub struct AnsweredEvent<'a> {
    pub iface: &'a str,
    pub port: ListenPort,
    pub server_ip: Ipv4Addr,
    pub client: &'a ClientInfo,
    pub reply: &'a Reply,
}

/// A packet Kindling did not answer, and why.
#[derive(Debug, Clone, Copy)]
pub struct IgnoredEvent<'a> {
    pub iface: &'a str,
    pub port: ListenPort,
    pub source: SocketAddrV4,
    /// None when the packet did not parse, and for rate-limited datagrams after the first
    /// one of a run (every one is still reported, so counting `ignored` calls by reason
    /// stays exact; a flood does not become one timeline event per datagram).
    pub client: Option<&'a ClientInfo>,
    pub reason: IgnoreReason,
}

/// A DHCPv6 message from a boot client ([`Client6::is_boot_client`]), before the answer.
#[derive(Debug, Clone, Copy)]
pub struct Seen6Event<'a> {
    pub iface: &'a str,
    /// The client's link-local address and port.
    pub source: SocketAddrV6,
    pub client: &'a Client6,
}

/// A DHCPv6 reply Kindling sent to a boot client.
#[derive(Debug, Clone, Copy)]
pub struct Answered6Event<'a> {
    pub iface: &'a str,
    pub source: SocketAddrV6,
    pub client: &'a Client6,
    pub reply: &'a Reply6,
}

/// Hook for the boot timeline. Every method has an empty default.
///
/// `seen` fires for packets with a PXE/HTTPClient vendor class (before the decision),
/// `answered` after a reply was sent, `ignored` for every datagram not answered (including
/// ordinary DHCP clients, reason `not_pxe`). Calls happen on the receive task: keep them cheap.
pub trait DhcpObserver: Send + Sync {
    fn seen(&self, _event: &SeenEvent<'_>) {}
    fn answered(&self, _event: &AnsweredEvent<'_>) {}
    fn ignored(&self, _event: &IgnoredEvent<'_>) {}
    /// DHCPv6 (`[dhcp.v6]`): a boot client's message, before the decision is acted on.
    fn seen6(&self, _event: &Seen6Event<'_>) {}
    /// DHCPv6: a reply sent to a boot client.
    fn answered6(&self, _event: &Answered6Event<'_>) {}
}

pub(crate) struct NoObserver;
impl DhcpObserver for NoObserver {}
