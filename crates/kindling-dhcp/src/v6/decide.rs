//! The sans-I/O DHCPv6 core: one datagram plus its [`Context6`] in, an [`Outcome6`] out (the
//! reply's bytes and destination, or an [`Ignore6`] with a stable label). No sockets, no
//! clocks, no state: addresses come from [`address_for`], so the same client gets the same
//! answer from any run.

use std::fmt;
use std::net::{Ipv6Addr, SocketAddrV6};

use crate::arch::{ArchFamily, is_http_arch};
use crate::config::CheckedConfig;
use crate::config::v6::Checked6;
use crate::policy::{Firmware, IgnoreReason, contains};
use crate::v6::addr::address_for;
use crate::v6::wire::{self, ENTERPRISE_PXE, Ia, Message, OptOut, msg, opt, status};

/// The DHCPv6 client port (replies go there).
pub const CLIENT_PORT: u16 = 546;
/// The DHCPv6 server port.
pub const SERVER_PORT: u16 = 547;

/// Where a datagram came from.
#[derive(Debug, Clone, Copy)]
pub struct Context6<'a> {
    /// The receiving interface.
    pub iface: &'a str,
    /// Our address in the configured prefix on that interface (goes into the boot URLs).
    pub server_addr: Ipv6Addr,
    /// Our DUID (option 2), DUID-LL of the interface's MAC.
    pub server_duid: &'a [u8],
    /// The datagram's source (the client's link-local address, with its scope id).
    pub source: SocketAddrV6,
}

/// Why Kindling stayed silent. Each has a stable snake_case label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ignore6 {
    /// Not a well-formed DHCPv6 message.
    Malformed,
    /// A server or relay-reply message type (ADVERTISE, REPLY, RECONFIGURE, RELAY-REPL).
    NotClientMessage,
    /// A RELAY-FORW: relayed DHCPv6 is not supported yet.
    Relayed,
    /// A message type Kindling does not answer (unknown numbers).
    UnknownType,
    /// No Client Identifier where one is required.
    NoClientId,
    /// A Server Identifier in a message that must not carry one (SOLICIT, CONFIRM, REBIND).
    UnexpectedServerId,
    /// A Server Identifier that is not ours (or none where ours is required): for another
    /// server.
    OtherServer,
    /// An INFORMATION-REQUEST carrying IA options (RFC 8415 16.12: discard).
    IaInInformationRequest,
    /// A CONFIRM without any address to confirm.
    NothingToConfirm,
    /// The source is no link-local unicast address (or port 0): never answered.
    UnsafeSource,
    /// The reply could not be encoded (an option over 65535 bytes).
    EncodeFailed,
}

impl Ignore6 {
    /// Every reason, in the enum's order (for metrics).
    pub const ALL: [Ignore6; 11] = [
        Self::Malformed,
        Self::NotClientMessage,
        Self::Relayed,
        Self::UnknownType,
        Self::NoClientId,
        Self::UnexpectedServerId,
        Self::OtherServer,
        Self::IaInInformationRequest,
        Self::NothingToConfirm,
        Self::UnsafeSource,
        Self::EncodeFailed,
    ];

    /// Index into [`Ignore6::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// The stable label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NotClientMessage => "not_client_message",
            Self::Relayed => "relayed",
            Self::UnknownType => "unknown_message_type",
            Self::NoClientId => "no_client_id",
            Self::UnexpectedServerId => "unexpected_server_id",
            Self::OtherServer => "other_server",
            Self::IaInInformationRequest => "ia_in_information_request",
            Self::NothingToConfirm => "nothing_to_confirm",
            Self::UnsafeSource => "unsafe_source",
            Self::EncodeFailed => "encode_failed",
        }
    }

    /// The ordinary traffic of a link with several DHCPv6 servers (logged at debug).
    pub fn is_ordinary(self) -> bool {
        matches!(self, Self::OtherServer | Self::NotClientMessage)
    }
}

impl fmt::Display for Ignore6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The name of a message type (logs).
pub fn msg_name(t: u8) -> &'static str {
    match t {
        msg::SOLICIT => "SOLICIT",
        msg::ADVERTISE => "ADVERTISE",
        msg::REQUEST => "REQUEST",
        msg::CONFIRM => "CONFIRM",
        msg::RENEW => "RENEW",
        msg::REBIND => "REBIND",
        msg::REPLY => "REPLY",
        msg::RELEASE => "RELEASE",
        msg::DECLINE => "DECLINE",
        msg::RECONFIGURE => "RECONFIGURE",
        msg::INFORMATION_REQUEST => "INFORMATION-REQUEST",
        msg::RELAY_FORW => "RELAY-FORW",
        msg::RELAY_REPL => "RELAY-REPL",
        _ => "UNKNOWN",
    }
}

/// The stable lower-case label of a message type (the boot journal's spelling).
pub fn msg_label(t: u8) -> &'static str {
    match t {
        msg::SOLICIT => "solicit",
        msg::ADVERTISE => "advertise",
        msg::REQUEST => "request",
        msg::CONFIRM => "confirm",
        msg::RENEW => "renew",
        msg::REBIND => "rebind",
        msg::REPLY => "reply",
        msg::RELEASE => "release",
        msg::DECLINE => "decline",
        msg::RECONFIGURE => "reconfigure",
        msg::INFORMATION_REQUEST => "information_request",
        msg::RELAY_FORW => "relay_forw",
        msg::RELAY_REPL => "relay_repl",
        _ => "other",
    }
}

/// The message type of a [`msg_label`] (`other` reads as 0).
pub fn msg_from_label(s: &str) -> Option<u8> {
    (0..=13).find(|&t| msg_label(t) == s)
}

/// What Kindling learned about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client6 {
    pub xid: u32,
    pub msg_type: u8,
    /// Option 1 (the DUID), empty when absent.
    pub duid: Vec<u8>,
    /// The first option-16 entry, lossily decoded.
    pub vendor_class: Option<String>,
    /// Option-15 entries, lossily decoded.
    pub user_classes: Vec<String>,
    /// Every entry of option 61.
    pub architectures: Vec<u16>,
    /// The entry Kindling chose.
    pub arch: Option<u16>,
    /// Set when the client gets a boot URL.
    pub firmware: Option<Firmware>,
    /// A boot client (option 61, a PXE/HTTP vendor class) that gets no boot URL, and why
    /// (it still gets an address).
    pub no_boot: Option<IgnoreReason>,
}

impl Client6 {
    /// The client's MAC, for its boot timeline: from a DUID-LLT or DUID-LL of an Ethernet
    /// interface (EDK2's), else from `source`, a link-local address with an EUI-64
    /// interface identifier (iPXE's DUID-UUID carries no MAC).
    pub fn mac(&self, source: &Ipv6Addr) -> Option<[u8; 6]> {
        let from_duid = match self.duid.as_slice() {
            [0, 1, 0, 1, _, _, _, _, m @ ..] | [0, 3, 0, 1, m @ ..] => <[u8; 6]>::try_from(m).ok(),
            _ => None,
        };
        from_duid.or_else(|| {
            let o = source.octets();
            let link_local = o[0] == 0xfe && (o[1] & 0xc0) == 0x80;
            (link_local && o[11] == 0xff && o[12] == 0xfe)
                .then(|| [o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]])
        })
    }

    /// A client the boot timeline follows: it asked to boot (option 61, a PXE or HTTP Boot
    /// vendor class, or iPXE), whether or not it got a boot URL.
    pub fn is_boot_client(&self) -> bool {
        self.firmware.is_some() || self.no_boot.is_some()
    }

    /// The DUID as lower-case hex with colons (logs).
    pub fn duid_string(&self) -> String {
        if self.duid.is_empty() {
            return "-".into();
        }
        self.duid
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// An encoded reply and where to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply6 {
    pub packet: Vec<u8>,
    /// The client's source address, port 546.
    pub dest: SocketAddrV6,
    /// ADVERTISE or REPLY.
    pub msg_type: u8,
    /// The addresses handed out (valid lifetime > 0).
    pub addresses: Vec<Ipv6Addr>,
    /// Option 59, when given.
    pub boot_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision6 {
    Reply(Reply6),
    Ignore(Ignore6),
}

/// A decision plus what was learned about the client (None when it did not parse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome6 {
    pub client: Option<Client6>,
    pub decision: Decision6,
}

fn ignore(client: Option<Client6>, r: Ignore6) -> Outcome6 {
    Outcome6 {
        client,
        decision: Decision6::Ignore(r),
    }
}

/// The boot answer: the URL for option 59 and the vendor class to echo in option 16, if any.
struct Boot {
    url: String,
    echo: Option<&'static str>,
}

/// Classifies the client (fills `info`) and picks its boot URL, if it gets one.
fn boot(
    cfg: &CheckedConfig,
    ctx: &Context6<'_>,
    m: &Message<'_>,
    info: &mut Client6,
) -> Option<Boot> {
    let ip = ctx.server_addr;
    let vendor = m.vendor_classes();
    let prefix = vendor.iter().find_map(|(_, d)| {
        cfg.vendor_prefixes
            .iter()
            .find(|p| d.starts_with(p.as_bytes()))
    });
    if m.user_classes().iter().any(|u| contains(u, b"iPXE")) {
        // iPXE is already running: it only needs its script, whatever the architecture.
        info.firmware = Some(Firmware::Ipxe);
        info.arch = info.architectures.first().copied();
        return Some(Boot {
            url: cfg.script_url.expand_v6(ip, cfg.http_port, ""),
            echo: None,
        });
    }
    if prefix.is_none() && info.architectures.is_empty() {
        return None; // an ordinary DHCPv6 client (an OS): an address, no boot file
    }
    let mut err = if info.architectures.is_empty() {
        IgnoreReason::NoArch
    } else {
        IgnoreReason::UnsupportedArch
    };
    let http_vendor = prefix.is_some_and(|p| &**p == "HTTPClient");
    for &a in &info.architectures {
        let http = http_vendor || is_http_arch(a);
        let binary = match ArchFamily::of(a) {
            ArchFamily::X64Efi if http => cfg.http_boot_binary.as_str(),
            ArchFamily::X64Efi => cfg.efi_binary.as_str(),
            ArchFamily::Arm64Efi => match &cfg.arm64_binary {
                Some(b) => b.as_str(),
                None => {
                    err = IgnoreReason::UnsupportedArchNoBinary;
                    continue;
                }
            },
            // BIOS PXE has no IPv6; other architectures are not booted.
            ArchFamily::Bios | ArchFamily::Unsupported => continue,
        };
        info.arch = Some(a);
        let (firmware, url, echo) = if http {
            let url = cfg.http_boot_url.expand_v6(ip, cfg.http_port, binary);
            (Firmware::UefiHttp, url, Some("HTTPClient"))
        } else {
            // No `PXEClient` echo: EDK2's PxeBcDxe takes an offer with an address *and*
            // `PXEClient` for a "BINL" offer and asks UDP 4011 of the URL's host for the boot
            // file again; without it, the offer is an ordinary DHCPv6 offer with a boot file
            // URL, which it boots from directly (ISC dhcpd's and dnsmasq's usual answer).
            (Firmware::UefiPxe, format!("tftp://[{ip}]/{binary}"), None)
        };
        info.firmware = Some(firmware);
        return Some(Boot { url, echo });
    }
    info.no_boot = Some(err);
    None
}

fn client_info(m: &Message<'_>) -> Client6 {
    Client6 {
        xid: m.xid_u32(),
        msg_type: m.msg_type,
        duid: m.option(opt::CLIENTID).unwrap_or_default().to_vec(),
        vendor_class: m
            .vendor_classes()
            .first()
            .map(|(_, d)| String::from_utf8_lossy(d).into_owned()),
        user_classes: m
            .user_classes()
            .iter()
            .map(|u| String::from_utf8_lossy(u).into_owned())
            .collect(),
        architectures: m.architectures(),
        arch: None,
        firmware: None,
        no_boot: None,
    }
}

/// How a message's Server Identifier must look.
enum ServerId {
    Forbidden,
    Required,
    Optional,
}

/// Decides what to do with one datagram. Pure: same input, same output; never panics.
pub fn decide6(cfg: &CheckedConfig, v6: &Checked6, ctx: &Context6<'_>, packet: &[u8]) -> Outcome6 {
    let m = match Message::parse(packet) {
        Ok(m) => m,
        Err(_) => return ignore(None, Ignore6::Malformed),
    };
    let (reply_type, sid) = match m.msg_type {
        msg::SOLICIT => (msg::ADVERTISE, ServerId::Forbidden),
        msg::REQUEST | msg::RENEW | msg::RELEASE | msg::DECLINE => (msg::REPLY, ServerId::Required),
        msg::CONFIRM | msg::REBIND => (msg::REPLY, ServerId::Forbidden),
        msg::INFORMATION_REQUEST => (msg::REPLY, ServerId::Optional),
        msg::RELAY_FORW => return ignore(None, Ignore6::Relayed),
        msg::ADVERTISE | msg::REPLY | msg::RECONFIGURE | msg::RELAY_REPL => {
            return ignore(None, Ignore6::NotClientMessage);
        }
        _ => return ignore(None, Ignore6::UnknownType),
    };
    let mut info = client_info(&m);
    let client_id = m.option(opt::CLIENTID);
    if client_id.is_none() && m.msg_type != msg::INFORMATION_REQUEST {
        return ignore(Some(info), Ignore6::NoClientId);
    }
    match (sid, m.option(opt::SERVERID)) {
        (ServerId::Forbidden, Some(_)) => return ignore(Some(info), Ignore6::UnexpectedServerId),
        (ServerId::Required, None) => return ignore(Some(info), Ignore6::OtherServer),
        (ServerId::Required | ServerId::Optional, Some(s)) if s != ctx.server_duid => {
            return ignore(Some(info), Ignore6::OtherServer);
        }
        _ => {}
    }
    let src = *ctx.source.ip();
    if (src.segments()[0] & 0xffc0) != 0xfe80 || ctx.source.port() == 0 {
        return ignore(Some(info), Ignore6::UnsafeSource);
    }

    let mut out = Vec::new();
    if let Some(c) = client_id {
        out.push(OptOut::new(opt::CLIENTID, c));
    }
    out.push(OptOut::new(opt::SERVERID, ctx.server_duid));
    let mut addresses = Vec::new();
    let mut reply_type = reply_type;
    let duid = client_id.unwrap_or_default();
    let ia_out =
        |ias: &[Ia], addresses: &mut Vec<Ipv6Addr>| -> Result<Vec<OptOut>, wire::TooLong> {
            let mut v = Vec::new();
            for ia in ias {
                v.push(ia_reply(v6, ctx, duid, ia, addresses)?);
            }
            Ok(v)
        };
    let result: Result<(), wire::TooLong> = (|| {
        match m.msg_type {
            msg::SOLICIT => {
                if v6.rapid_commit && m.has(opt::RAPID_COMMIT) {
                    reply_type = msg::REPLY;
                    out.push(OptOut::new(opt::RAPID_COMMIT, []));
                }
                out.extend(ia_out(&m.ias, &mut addresses)?);
            }
            msg::REQUEST | msg::RENEW | msg::REBIND => {
                out.extend(ia_out(&m.ias, &mut addresses)?);
            }
            msg::RELEASE | msg::DECLINE => {
                // Nothing is bound (addresses are derived, not stored): acknowledge.
                out.push(OptOut::status(status::SUCCESS, "acknowledged"));
            }
            msg::CONFIRM => {
                let addrs: Vec<Ipv6Addr> = m
                    .ias
                    .iter()
                    .flat_map(|ia| ia.addrs.iter().map(|a| a.addr))
                    .collect();
                if addrs.iter().all(|a| v6.in_prefix(*a)) {
                    out.push(OptOut::status(status::SUCCESS, "on link"));
                } else {
                    out.push(OptOut::status(status::NOT_ON_LINK, "not on this link"));
                }
            }
            _ => {} // INFORMATION-REQUEST: configuration only
        }
        Ok(())
    })();
    if m.msg_type == msg::CONFIRM && m.ias.iter().all(|ia| ia.addrs.is_empty()) {
        return ignore(Some(info), Ignore6::NothingToConfirm);
    }
    if m.msg_type == msg::INFORMATION_REQUEST && !m.ias.is_empty() {
        return ignore(Some(info), Ignore6::IaInInformationRequest);
    }
    if result.is_err() {
        return ignore(Some(info), Ignore6::EncodeFailed);
    }
    let mut boot_url = None;
    if !matches!(m.msg_type, msg::RELEASE | msg::DECLINE | msg::CONFIRM) {
        if !v6.dns_servers.is_empty() {
            let d: Vec<u8> = v6.dns_servers.iter().flat_map(|a| a.octets()).collect();
            out.push(OptOut::new(opt::DNS_SERVERS, d));
        }
        if let Some(b) = boot(cfg, ctx, &m, &mut info) {
            out.push(OptOut::new(opt::BOOTFILE_URL, b.url.as_bytes()));
            if info.firmware != Some(Firmware::Ipxe) && !v6.boot_file_params.is_empty() {
                let mut d = Vec::new();
                for p in &v6.boot_file_params {
                    d.extend_from_slice(&(p.len() as u16).to_be_bytes());
                    d.extend_from_slice(p.as_bytes());
                }
                out.push(OptOut::new(opt::BOOTFILE_PARAM, d));
            }
            if let Some(e) = b.echo {
                let mut d = ENTERPRISE_PXE.to_be_bytes().to_vec();
                d.extend_from_slice(&(e.len() as u16).to_be_bytes());
                d.extend_from_slice(e.as_bytes());
                out.push(OptOut::new(opt::VENDOR_CLASS, d));
            }
            boot_url = Some(b.url);
        }
    }
    let packet = match wire::encode(reply_type, m.xid, &out) {
        Ok(p) => p,
        Err(_) => return ignore(Some(info), Ignore6::EncodeFailed),
    };
    let dest = SocketAddrV6::new(src, CLIENT_PORT, 0, ctx.source.scope_id());
    Outcome6 {
        client: Some(info),
        decision: Decision6::Reply(Reply6 {
            packet,
            dest,
            msg_type: reply_type,
            addresses,
            boot_url,
        }),
    }
}

/// The reply's IA option for one of the client's IAs: IA_NA gets its derived address (and
/// any other address the client holds with lifetimes 0, RFC 8415 18.3.4); IA_TA and IA_PD
/// get a status: Kindling hands out neither.
fn ia_reply(
    v6: &Checked6,
    ctx: &Context6<'_>,
    duid: &[u8],
    ia: &Ia,
    addresses: &mut Vec<Ipv6Addr>,
) -> Result<OptOut, wire::TooLong> {
    let iaid = ia.iaid.to_be_bytes();
    match ia.code {
        opt::IA_NA => {
            let a = address_for(v6.prefix, duid, ia.iaid, &[ctx.server_addr]);
            addresses.push(a);
            let t1 = v6.preferred_secs / 2;
            let t2 = (u64::from(v6.preferred_secs) * 4 / 5) as u32;
            let mut fixed = iaid.to_vec();
            fixed.extend(t1.to_be_bytes());
            fixed.extend(t2.to_be_bytes());
            let mut inner = vec![iaaddr(a, v6.preferred_secs, v6.valid_secs)];
            for old in ia.addrs.iter().filter(|x| x.addr != a) {
                inner.push(iaaddr(old.addr, 0, 0));
            }
            OptOut::nested(opt::IA_NA, &fixed, &inner)
        }
        opt::IA_TA => OptOut::nested(
            opt::IA_TA,
            &iaid,
            &[OptOut::status(
                status::NO_ADDRS_AVAIL,
                "no temporary addresses",
            )],
        ),
        _ => {
            let mut fixed = iaid.to_vec();
            fixed.extend([0; 8]);
            OptOut::nested(
                opt::IA_PD,
                &fixed,
                &[OptOut::status(
                    status::NO_PREFIX_AVAIL,
                    "no prefix delegation",
                )],
            )
        }
    }
}

fn iaaddr(a: Ipv6Addr, preferred: u32, valid: u32) -> OptOut {
    let mut d = a.octets().to_vec();
    d.extend(preferred.to_be_bytes());
    d.extend(valid.to_be_bytes());
    OptOut::new(opt::IAADDR, d)
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
