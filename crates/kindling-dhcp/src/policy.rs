//! The sans-I/O decision core: a datagram plus its interface context in, a reply (bytes and
//! destination) or a reason for silence out. No sockets, no clocks, no config files.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use crate::arch::{ArchFamily, arch_name};
use crate::config::{CheckedConfig, Rule, Target};
pub use crate::dest::{UnsafeAddr, check_destination};
use crate::opt43;
use crate::ratelimit::Key;
use crate::wire::{self, MessageType, ParseError, ReplyFields, Request, opt};
pub use crate::wire::{format_mac, mac_ascii};

/// The DHCP server port.
pub const DHCP_SERVER_PORT: u16 = 67;
/// The DHCP client port.
pub const DHCP_CLIENT_PORT: u16 = 68;
/// The PXE boot server port.
pub const PXE_PORT: u16 = 4011;

/// Which of our ports a datagram arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenPort {
    /// UDP 67: DISCOVERs (answered with proxy OFFERs).
    Dhcp,
    /// UDP 4011: PXE boot-server REQUEST/INFORM (answered with ACKs).
    Pxe,
}

impl ListenPort {
    pub fn number(self) -> u16 {
        match self {
            Self::Dhcp => DHCP_SERVER_PORT,
            Self::Pxe => PXE_PORT,
        }
    }
}

/// Where a datagram came from.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The receiving interface.
    pub iface: &'a str,
    /// Our address on that interface (or its `advertise` override).
    pub server_ip: Ipv4Addr,
    /// The port it arrived on.
    pub port: ListenPort,
    /// The datagram's source address.
    pub source: SocketAddrV4,
    /// Every IPv4 address of this host with its netmask (all interfaces, not only this one).
    /// Replies never go to one of them, nor to the broadcast or network address of their
    /// subnets ([`check_destination`]). `server_ip` counts as ours even when missing here.
    pub local: &'a [(Ipv4Addr, Ipv4Addr)],
    /// The client's own Secure Boot setting (its group's `secure_boot`, looked up by MAC by
    /// the shell for port-4011 packets): wins over the rules and the default. `None`: they
    /// decide.
    pub secure_boot: Option<bool>,
}

/// Why Kindling stayed silent. Each has a stable snake_case label for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IgnoreReason {
    /// Not a well-formed DHCP packet (short, bad cookie, bad hlen, truncated option).
    Malformed,
    /// A BOOTREPLY or other non-request op code.
    NotBootRequest,
    /// Arrived on an interface that the deny list excludes.
    InterfaceExcluded,
    /// Option 60 does not start with a PXE prefix: an ordinary DHCP client.
    NotPxe,
    /// A message type a proxy never answers (RELEASE, DECLINE, missing option 53, ...).
    NotDiscoverOrRequest,
    /// A REQUEST/INFORM on port 67: it is for the real DHCP server.
    RequestOnDhcpPort,
    /// A DISCOVER sent to port 4011.
    DiscoverOnProxyPort,
    /// Not Ethernet (htype 1, hlen 6).
    UnsupportedHardware,
    /// A firmware client without option 93.
    NoArch,
    /// No entry of option 93 is an architecture Kindling boots.
    UnsupportedArch,
    /// arm64 firmware but no `arm64_binary` is configured (never a dead-end answer).
    UnsupportedArchNoBinary,
    /// A rule with `target = "ignore"` matched.
    RuleIgnore,
    /// A rule with `target = "local_boot"` matched a client that gets no local-boot menu.
    LocalBoot,
    /// The boot file or URL does not fit the 128-byte `file` field.
    FileTooLong,
    /// The reply could not be encoded (should not happen).
    EncodeFailed,
    /// A relayed request (`giaddr` set) whose `giaddr` is no unicast address of another host
    /// (broadcast, multicast, loopback, one of ours, ...): never sent (a reflection attempt).
    UnsafeGiaddr,
    /// A port-4011 request whose source address (where the ACK would go) is no unicast
    /// address of another host, or whose source port is 0.
    UnsafeSource,
    /// Over the per-MAC rate limit (`dhcp.rate_limit`); decided by the shell, not [`decide`].
    RateLimitedMac,
    /// Over the per-source-address rate limit of a client that has an address.
    RateLimitedIp,
    /// Over the (larger) per-source-address rate limit of a relay (`giaddr` set).
    RateLimitedRelay,
    /// A port-4011 request for a boot item that is not in `dhcp.pxe_menu`.
    UnknownBootItem,
    /// Full mode: a RELEASE, applied (no reply is due).
    LeaseReleased,
    /// Full mode: a DECLINE (the client found its address in use), applied: the address is
    /// held back for a while.
    LeaseDeclined,
    /// Full mode: a REQUEST that chose another server's offer.
    OtherServerChosen,
    /// Full mode: no free address in the client's subnet.
    NoFreeAddress,
    /// Full mode, `authoritative = false`: a REQUEST for an address this server cannot give.
    NotAuthoritative,
    /// Full mode in a fleet: the ACK's claim in the shared store could not be made (the
    /// store did not answer, or too many claims in flight); the client asks again.
    SharedStoreUnavailable,
}

impl IgnoreReason {
    /// Every reason, in label order of the enum (for metrics).
    pub const ALL: [IgnoreReason; 27] = [
        Self::Malformed,
        Self::NotBootRequest,
        Self::InterfaceExcluded,
        Self::NotPxe,
        Self::NotDiscoverOrRequest,
        Self::RequestOnDhcpPort,
        Self::DiscoverOnProxyPort,
        Self::UnsupportedHardware,
        Self::NoArch,
        Self::UnsupportedArch,
        Self::UnsupportedArchNoBinary,
        Self::RuleIgnore,
        Self::LocalBoot,
        Self::FileTooLong,
        Self::EncodeFailed,
        Self::UnsafeGiaddr,
        Self::UnsafeSource,
        Self::RateLimitedMac,
        Self::RateLimitedIp,
        Self::RateLimitedRelay,
        Self::UnknownBootItem,
        Self::LeaseReleased,
        Self::LeaseDeclined,
        Self::OtherServerChosen,
        Self::NoFreeAddress,
        Self::NotAuthoritative,
        Self::SharedStoreUnavailable,
    ];

    /// The stable label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NotBootRequest => "not_boot_request",
            Self::InterfaceExcluded => "interface_excluded",
            Self::NotPxe => "not_pxe",
            Self::NotDiscoverOrRequest => "not_discover_or_request",
            Self::RequestOnDhcpPort => "request_on_dhcp_port",
            Self::DiscoverOnProxyPort => "discover_on_proxy_port",
            Self::UnsupportedHardware => "unsupported_hardware",
            Self::NoArch => "no_arch",
            Self::UnsupportedArch => "unsupported_arch",
            Self::UnsupportedArchNoBinary => "unsupported_arch_no_binary",
            Self::RuleIgnore => "rule_ignore",
            Self::LocalBoot => "local_boot",
            Self::FileTooLong => "file_too_long",
            Self::EncodeFailed => "encode_failed",
            Self::UnsafeGiaddr => "unsafe_giaddr",
            Self::UnsafeSource => "unsafe_source",
            Self::RateLimitedMac => "rate_limited_mac",
            Self::RateLimitedIp => "rate_limited_ip",
            Self::RateLimitedRelay => "rate_limited_relay",
            Self::UnknownBootItem => "unknown_boot_item",
            Self::LeaseReleased => "lease_released",
            Self::LeaseDeclined => "lease_declined",
            Self::OtherServerChosen => "other_server_chosen",
            Self::NoFreeAddress => "no_free_address",
            Self::NotAuthoritative => "not_authoritative",
            Self::SharedStoreUnavailable => "shared_store_unavailable",
        }
    }

    /// The ordinary flow of a LAN, not a failure: non-PXE DHCP clients, a PXE client's
    /// REQUEST on 67 (for the site's DHCP server), RELEASE/DECLINE/..., BOOTREPLYs. Every
    /// client on the LAN sends these: they are logged at debug and never join a boot
    /// timeline. (A malformed packet or non-Ethernet hardware has no MAC, so it never
    /// reaches a timeline either; it is logged, rate-limited, as a possible problem.)
    pub fn is_ordinary(self) -> bool {
        matches!(
            self,
            Self::NotPxe
                | Self::RequestOnDhcpPort
                | Self::NotDiscoverOrRequest
                | Self::NotBootRequest
                | Self::LeaseReleased
                | Self::OtherServerChosen
                | Self::NotAuthoritative
        )
    }

    /// Index into [`IgnoreReason::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl Key {
    /// The reason a datagram over this key's budget is dropped with.
    pub fn reason(self) -> IgnoreReason {
        match self {
            Self::Mac(_) => IgnoreReason::RateLimitedMac,
            Self::Ip(_) => IgnoreReason::RateLimitedIp,
            Self::Relay(_) => IgnoreReason::RateLimitedRelay,
        }
    }
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What kind of client this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Firmware {
    /// iPXE (option 77 contains `iPXE`, or option 175 present): gets an HTTP URL.
    Ipxe,
    /// BIOS PXE ROM (arch 0).
    BiosPxe,
    /// UEFI PXE (arch 7, 9, 11).
    UefiPxe,
    /// UEFI HTTP Boot (option 60 `HTTPClient`).
    UefiHttp,
}

impl Firmware {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ipxe => "ipxe",
            Self::BiosPxe => "bios_pxe",
            Self::UefiPxe => "uefi_pxe",
            Self::UefiHttp => "uefi_http",
        }
    }

    /// The firmware of a [`Firmware::label`].
    pub fn from_label(s: &str) -> Option<Self> {
        [Self::Ipxe, Self::BiosPxe, Self::UefiPxe, Self::UefiHttp]
            .into_iter()
            .find(|f| f.label() == s)
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What Kindling learned about the client (for logs, metrics and the boot timeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub xid: u32,
    pub mac: Option<[u8; 6]>,
    pub message_type: Option<MessageType>,
    /// Option 60, lossily decoded.
    pub vendor_class: Option<String>,
    /// The matched PXE prefix (echoed in option 60): the configuration's copy.
    pub vendor_prefix: Option<Arc<str>>,
    /// Every entry of option 93.
    pub architectures: Vec<u16>,
    /// The entry Kindling chose.
    pub arch: Option<u16>,
    pub firmware: Option<Firmware>,
    /// Option 77 entries, lossily decoded.
    pub user_classes: Vec<String>,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
}

impl ClientInfo {
    /// `aa:bb:cc:dd:ee:ff`, or `-`.
    pub fn mac_string(&self) -> String {
        match self.mac {
            Some(m) => format_mac(&m),
            None => "-".into(),
        }
    }
}

/// An encoded reply and where to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The UDP payload. `yiaddr` is always 0.
    pub packet: Vec<u8>,
    /// Destination address and port.
    pub dest: SocketAddrV4,
    /// OFFER (port 67) or ACK (port 4011).
    pub message_type: MessageType,
    /// The `file` field ("" when the client is sent on to port 4011).
    pub file: String,
    /// The matching rule's name, if any.
    pub rule: Option<String>,
    /// Full mode: the address handed out (`yiaddr`), `None` for proxy replies and NAKs.
    pub lease: Option<Ipv4Addr>,
}

/// The decision for one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Reply(Reply),
    Ignore(IgnoreReason),
}

/// A decision plus what was learned about the client (None when the packet did not parse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub client: Option<ClientInfo>,
    pub decision: Decision,
}

/// Does `hay` contain `needle` (an empty needle is in everything)?
pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

struct Classified<'c> {
    firmware: Firmware,
    arch: Option<u16>,
    /// TFTP binary name for firmware clients.
    binary: Option<&'c str>,
}

/// Picks the architecture to serve from every entry of option 93.
fn classify<'c>(
    cfg: &'c CheckedConfig,
    arches: &[u16],
    http: bool,
    ipxe: bool,
) -> Result<Classified<'c>, IgnoreReason> {
    let mut err = if arches.is_empty() {
        IgnoreReason::NoArch
    } else {
        IgnoreReason::UnsupportedArch
    };
    for &a in arches {
        let bin = match ArchFamily::of(a) {
            ArchFamily::Bios if http => None,
            ArchFamily::Bios => Some((Firmware::BiosPxe, cfg.bios_binary.as_str())),
            ArchFamily::X64Efi if http => Some((Firmware::UefiHttp, cfg.http_boot_binary.as_str())),
            ArchFamily::X64Efi => Some((Firmware::UefiPxe, cfg.efi_binary.as_str())),
            ArchFamily::Arm64Efi => match &cfg.arm64_binary {
                Some(b) if http => Some((Firmware::UefiHttp, b.as_str())),
                Some(b) => Some((Firmware::UefiPxe, b.as_str())),
                None => {
                    err = IgnoreReason::UnsupportedArchNoBinary;
                    None
                }
            },
            ArchFamily::Unsupported => None,
        };
        if let Some((fw, b)) = bin {
            return Ok(Classified {
                firmware: if ipxe { Firmware::Ipxe } else { fw },
                arch: Some(a),
                binary: Some(b),
            });
        }
    }
    if ipxe {
        // iPXE is already running: it only needs a URL, whatever the architecture.
        return Ok(Classified {
            firmware: Firmware::Ipxe,
            arch: arches.first().copied(),
            binary: None,
        });
    }
    Err(err)
}

/// The boot file of a Secure Boot client: Debian's (or the operator's) signed shim, named
/// with its directory, where shim fetches `grubx64.efi` from (docs/secure-boot.md).
pub const SECURE_BOOT_FILE: &str = "secureboot/shimx64.efi";

/// Does this x86-64 UEFI PXE client get [`SECURE_BOOT_FILE`]? Its group's `secure_boot`
/// (`ctx.secure_boot`) decides, else the matching rule's, else `secure_boot_default`; never
/// for arm64 (no shim is served).
fn secure_boot(
    cfg: &CheckedConfig,
    ctx: &Context<'_>,
    rule: Option<&Rule>,
    arch: Option<u16>,
) -> bool {
    arch.is_some_and(|a| ArchFamily::of(a) == ArchFamily::X64Efi)
        && ctx
            .secure_boot
            .or(rule.and_then(|r| r.secure_boot))
            .unwrap_or(cfg.secure_boot_default)
}

fn rule_matches(rule: &Rule, ctx: &Context<'_>, req: &Request, info: &ClientInfo) -> bool {
    if let Some(p) = &rule.mac
        && !info.mac.is_some_and(|m| p.matches(&m))
    {
        return false;
    }
    if !rule.arch.is_empty() && !info.arch.is_some_and(|a| rule.arch.contains(&a)) {
        return false;
    }
    if let Some(uc) = &rule.user_class
        && !req.user_classes().iter().any(|e| contains(e, uc))
    {
        return false;
    }
    if let Some(vc) = &rule.vendor_class
        && !req
            .option(opt::VENDOR_CLASS)
            .is_some_and(|v| contains(v, vc))
    {
        return false;
    }
    if let Some(p) = &rule.interface
        && !p.matches(ctx.iface)
    {
        return false;
    }
    true
}

/// Decides what to do with one datagram. Pure: same input, same output; never panics.
pub fn decide(cfg: &CheckedConfig, ctx: &Context<'_>, packet: &[u8]) -> Outcome {
    let req = match Request::parse(packet) {
        Ok(r) => r,
        Err(ParseError::NotRequest) => return ignore(None, IgnoreReason::NotBootRequest),
        Err(_) => return ignore(None, IgnoreReason::Malformed),
    };
    let mut info = client_info(cfg, &req);
    if cfg.is_excluded(ctx.iface) {
        return ignore(Some(info), IgnoreReason::InterfaceExcluded);
    }
    if info.vendor_prefix.is_none() {
        return ignore(Some(info), IgnoreReason::NotPxe);
    }
    let reply_type = match (ctx.port, info.message_type) {
        (ListenPort::Dhcp, Some(MessageType::Discover)) => MessageType::Offer,
        (ListenPort::Dhcp, Some(MessageType::Request | MessageType::Inform)) => {
            return ignore(Some(info), IgnoreReason::RequestOnDhcpPort);
        }
        (ListenPort::Pxe, Some(MessageType::Request | MessageType::Inform)) => MessageType::Ack,
        (ListenPort::Pxe, Some(MessageType::Discover)) => {
            return ignore(Some(info), IgnoreReason::DiscoverOnProxyPort);
        }
        _ => return ignore(Some(info), IgnoreReason::NotDiscoverOrRequest),
    };
    match boot(cfg, ctx, &req, &mut info, reply_type) {
        Ok((fields, rule)) => finish(ctx, &req, info, fields, rule),
        Err(r) => ignore(Some(info), r),
    }
}

/// What the request says about its client (for logs, metrics, the boot timeline, rules).
pub(crate) fn client_info(cfg: &CheckedConfig, req: &Request) -> ClientInfo {
    let vendor = req.option(opt::VENDOR_CLASS);
    let prefix = vendor.and_then(|v| {
        cfg.vendor_prefixes
            .iter()
            .find(|p| v.starts_with(p.as_bytes()))
    });
    ClientInfo {
        xid: req.header.xid,
        mac: req.mac(),
        message_type: req.message_type(),
        vendor_class: vendor.map(|v| String::from_utf8_lossy(v).into_owned()),
        vendor_prefix: prefix.cloned(),
        architectures: req.architectures(),
        arch: None,
        firmware: None,
        user_classes: req
            .user_classes()
            .iter()
            .map(|u| String::from_utf8_lossy(u).into_owned())
            .collect(),
        ciaddr: req.header.ciaddr,
        giaddr: req.header.giaddr,
    }
}

/// The boot answer to a PXE client (`info.vendor_prefix` set): the reply's fields without
/// an address (borrowing from the request and the configuration), and the matching rule's
/// name; or why it gets none. Fills in `info`'s architecture and firmware.
pub(crate) fn boot<'a>(
    cfg: &'a CheckedConfig,
    ctx: &Context<'_>,
    req: &'a Request,
    info: &mut ClientInfo,
    reply_type: MessageType,
) -> Result<(ReplyFields<'a>, Option<String>), IgnoreReason> {
    let Some(prefix) = info.vendor_prefix.as_deref() else {
        return Err(IgnoreReason::NotPxe);
    };
    let http = prefix == "HTTPClient";
    // The prefix is the start of the client's option 60 (`client_info`): echoed from there.
    let vendor_class = req
        .option(opt::VENDOR_CLASS)
        .and_then(|v| v.get(..prefix.len()))
        .unwrap_or_default();
    // `info`'s user classes are option 77's entries as text: an "iPXE" in the bytes is
    // one in the text.
    let ipxe = info.user_classes.iter().any(|u| u.contains("iPXE"))
        || req.option(opt::IPXE_ENCAP).is_some();
    if info.mac.is_none() {
        return Err(IgnoreReason::UnsupportedHardware);
    }
    let class = classify(cfg, &info.architectures, http, ipxe)?;
    info.arch = class.arch;
    info.firmware = Some(class.firmware);

    let rule = cfg.rules.iter().find(|r| rule_matches(r, ctx, req, info));
    let target = rule.map(|r| &r.target).unwrap_or(&Target::Script);
    let ip = ctx.server_ip;

    let mut fields = ReplyFields {
        message_type: reply_type,
        htype: req.header.htype,
        hlen: req.header.hlen,
        xid: req.header.xid,
        flags: 0x8000, // broadcast, as dnsmasq forces for proxy replies
        ciaddr: req.header.ciaddr,
        siaddr: ip, // next-server: always set (iPXE ignores proxy offers without it)
        giaddr: req.header.giaddr,
        chaddr: req.header.chaddr,
        sname: None,
        file: String::new(),
        server_id: ip,
        vendor_class,
        client_uuid: req.option(opt::CLIENT_UUID),
        vendor_options: None,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        options: Vec::new(),
    };
    let boot_item = req.pxe_boot_item();
    let on_4011 = ctx.port == ListenPort::Pxe;

    let menu = cfg.pxe_menu.as_ref();
    match target {
        Target::Ignore => return Err(IgnoreReason::RuleIgnore),
        Target::LocalBoot => {
            if class.firmware == Firmware::BiosPxe && !on_4011 {
                fields.vendor_options = Some(opt43::local_boot_menu("Boot from local disk").into());
            } else {
                return Err(IgnoreReason::LocalBoot);
            }
        }
        Target::Script | Target::Url(_) => match class.firmware {
            Firmware::Ipxe => {
                fields.file = match target {
                    Target::Url(u) => u.expand(ip, cfg.http_port),
                    _ => cfg.script_url.expand(ip, cfg.http_port),
                };
                // iPXE's `pxebs` (and its PXE menu) asks 4011 for a boot item and drops an
                // ACK that does not echo it.
                if let (Some((t, l)), true) = (boot_item, on_4011) {
                    fields.vendor_options = Some(opt43::boot_item(t, l).into());
                }
            }
            Firmware::BiosPxe => {
                let binary = class.binary.unwrap_or_default();
                fields.sname = Some(ip);
                match (menu, boot_item) {
                    // The menu: no file yet, the ROM asks 4011 for the item chosen.
                    (Some(m), _) if !on_4011 => {
                        fields.vendor_options = Some(m.option43(ip).into());
                        fields.sname = None;
                    }
                    (Some(m), Some((t, l))) => {
                        let Some(item) = m.item(t) else {
                            return Err(IgnoreReason::UnknownBootItem);
                        };
                        fields.file = item.file.as_deref().unwrap_or(binary).to_string();
                        fields.vendor_options = Some(m.item_ack(t, l).into());
                    }
                    (_, Some((t, l))) if on_4011 => {
                        fields.file = binary.to_string();
                        fields.vendor_options = Some(opt43::boot_item(t, l).into());
                    }
                    _ => {
                        fields.file = binary.to_string();
                        fields.vendor_options = Some(Cow::Borrowed(opt43::USE_FILE_FIELD));
                    }
                }
            }
            Firmware::UefiPxe => {
                // Port 67: no option 43 and no file, siaddr set: the firmware asks port 4011
                // (the path EDK2 and every UEFI PXE stack accept; dnsmasq shows UEFI no menu
                // either).
                if on_4011 {
                    fields.file = if secure_boot(cfg, ctx, rule, class.arch) {
                        SECURE_BOOT_FILE.to_string()
                    } else {
                        class.binary.unwrap_or_default().to_string()
                    };
                    fields.sname = Some(ip);
                }
                if let (Some((t, l)), true) = (boot_item, on_4011) {
                    fields.vendor_options = Some(Cow::Owned(match menu {
                        Some(m) if m.item(t).is_some() => m.item_ack(t, l),
                        _ => opt43::boot_item(t, l),
                    }));
                }
            }
            Firmware::UefiHttp => {
                fields.file = cfg.http_boot_url.expand_binary(
                    ip,
                    cfg.http_port,
                    class.binary.unwrap_or_default(),
                );
            }
        },
    }

    if fields.file.len() > wire::MAX_FILE {
        return Err(IgnoreReason::FileTooLong);
    }
    Ok((fields, rule.map(|r| r.name.clone())))
}

/// Encodes the reply and chooses its destination.
pub(crate) fn finish(
    ctx: &Context<'_>,
    req: &Request,
    info: ClientInfo,
    fields: ReplyFields<'_>,
    rule: Option<String>,
) -> Outcome {
    let packet = match fields.encode() {
        Ok(p) => p,
        Err(wire::EncodeError::FileTooLong) => {
            return ignore(Some(info), IgnoreReason::FileTooLong);
        }
    };
    let dest = match destination(ctx, req) {
        Ok(d) => d,
        Err(r) => return ignore(Some(info), r),
    };
    Outcome {
        client: Some(info),
        decision: Decision::Reply(Reply {
            packet,
            dest,
            message_type: fields.message_type,
            file: fields.file,
            rule,
            lease: None,
        }),
    }
}

/// Where a reply goes, or why it goes nowhere.
///
/// * Relayed (`giaddr` set): `giaddr:67`, if `giaddr` passes [`check_destination`].
/// * Port 67, not relayed: `255.255.255.255:68` on the receiving interface, or the source
///   address at port 68 when the client has that address as `ciaddr`, did not ask for a
///   broadcast and the address passes the check. A `ciaddr` that is not the packet's source
///   is never a destination.
/// * Port 4011: the packet's source address and port (as the PXE spec and dnsmasq do),
///   never `ciaddr`; the source must pass the check and its port must not be 0.
fn destination(ctx: &Context<'_>, req: &Request) -> Result<SocketAddrV4, IgnoreReason> {
    let h = &req.header;
    let src = *ctx.source.ip();
    match ctx.port {
        ListenPort::Dhcp => {
            if !h.giaddr.is_unspecified() {
                check_destination(h.giaddr, ctx.server_ip, ctx.local)
                    .map_err(|_| IgnoreReason::UnsafeGiaddr)?;
                Ok(SocketAddrV4::new(h.giaddr, DHCP_SERVER_PORT))
            } else if !h.ciaddr.is_unspecified()
                && h.ciaddr == src
                && h.flags & 0x8000 == 0
                && check_destination(src, ctx.server_ip, ctx.local).is_ok()
            {
                Ok(SocketAddrV4::new(src, DHCP_CLIENT_PORT))
            } else {
                Ok(SocketAddrV4::new(Ipv4Addr::BROADCAST, DHCP_CLIENT_PORT))
            }
        }
        ListenPort::Pxe => {
            if ctx.source.port() == 0 {
                return Err(IgnoreReason::UnsafeSource);
            }
            check_destination(src, ctx.server_ip, ctx.local)
                .map_err(|_| IgnoreReason::UnsafeSource)?;
            Ok(ctx.source)
        }
    }
}

pub(crate) fn ignore(client: Option<ClientInfo>, reason: IgnoreReason) -> Outcome {
    Outcome {
        client,
        decision: Decision::Ignore(reason),
    }
}

/// A short human description of an architecture number (`7 (efi-x64)`).
pub fn describe_arch(a: u16) -> String {
    match arch_name(a) {
        Some(n) => format!("{a} ({n})"),
        None => a.to_string(),
    }
}
