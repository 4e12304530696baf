//! Where a reply may go: the unicast addresses of other hosts, never a broadcast, multicast,
//! loopback or own address (a DHCP server that answers a forged source is a reflector).

use std::fmt;
use std::net::Ipv4Addr;

/// Why an address is no destination for a unicast reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnsafeAddr {
    /// `0.0.0.0/8` ("this network").
    Unspecified,
    /// `255.255.255.255`.
    Broadcast,
    /// The broadcast or network address of one of this host's subnets (prefix /30 or shorter).
    SubnetBroadcast,
    /// `224.0.0.0/4`.
    Multicast,
    /// `240.0.0.0/4` (class E).
    Reserved,
    /// `127.0.0.0/8`.
    Loopback,
    /// `169.254.0.0/16`, unless the receiving address is link-local too.
    LinkLocal,
    /// One of this host's own addresses.
    Own,
}

impl UnsafeAddr {
    /// A stable snake_case label (logs).
    pub fn label(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Broadcast => "broadcast",
            Self::SubnetBroadcast => "subnet_broadcast",
            Self::Multicast => "multicast",
            Self::Reserved => "reserved",
            Self::Loopback => "loopback",
            Self::LinkLocal => "link_local",
            Self::Own => "own_address",
        }
    }
}

impl fmt::Display for UnsafeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Is `addr` a unicast address of another host, fit to receive a reply? `server_ip` is our
/// address on the receiving interface, `local` every (address, netmask) of this host.
pub fn check_destination(
    addr: Ipv4Addr,
    server_ip: Ipv4Addr,
    local: &[(Ipv4Addr, Ipv4Addr)],
) -> Result<(), UnsafeAddr> {
    let o = addr.octets();
    if o[0] == 0 {
        return Err(UnsafeAddr::Unspecified);
    }
    if addr.is_broadcast() {
        return Err(UnsafeAddr::Broadcast);
    }
    if addr.is_loopback() {
        return Err(UnsafeAddr::Loopback);
    }
    if addr.is_multicast() {
        return Err(UnsafeAddr::Multicast);
    }
    if o[0] >= 240 {
        return Err(UnsafeAddr::Reserved);
    }
    if addr.is_link_local() && !server_ip.is_link_local() {
        return Err(UnsafeAddr::LinkLocal);
    }
    if addr == server_ip || local.iter().any(|(a, _)| *a == addr) {
        return Err(UnsafeAddr::Own);
    }
    let x = u32::from(addr);
    for (a, m) in local {
        let m = u32::from(*m);
        // /31 and /32 have no broadcast address (RFC 3021).
        if m.count_ones() > 30 || m.leading_ones() != m.count_ones() {
            continue;
        }
        let net = u32::from(*a) & m;
        if x == net | !m || (m != 0 && x == net) {
            return Err(UnsafeAddr::SubnetBroadcast);
        }
    }
    Ok(())
}
