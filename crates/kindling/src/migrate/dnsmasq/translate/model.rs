//! What the translation works with: its options and output, what each client should get
//! ([`Want`]), the client groups and planned rules, and URL and architecture helpers.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use kindling_dhcp::config::{ArchSpec, OneOrMany, RuleConfig};

use crate::migrate::dnsmasq::parse::MacPattern;
use crate::migrate::probe::Client;

/// How to translate.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Name of the source, for the header.
    pub source: String,
    /// The address Kindling will have on the boot network (default: guessed from the
    /// configuration).
    pub server_ip: Option<Ipv4Addr>,
    /// Keep netboot.xyz menu URLs instead of pointing those machines at Kindling's menu.
    pub keep_netboot_xyz: bool,
}

/// The result: the TOML text and warnings for stderr.
#[derive(Debug, Clone)]
pub struct Output {
    pub toml: String,
    pub warnings: Vec<String>,
    /// Clients for which Kindling and dnsmasq differ.
    pub differences: usize,
}

/// What a client should get from Kindling to match dnsmasq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Want {
    /// Firmware: this TFTP file from this host.
    Binary(String),
    /// iPXE: this URL (a Kindling URL template).
    Url(String),
    /// UEFI HTTP Boot: this URL.
    HttpFile(String),
    LocalBoot,
    Ignore,
    /// Nothing Kindling can or needs to match.
    Any,
}

/// A set of clients: the default MAC, or a MAC pattern the configuration names.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub(super) pattern: Option<MacPattern>,
    pub(super) mac: [u8; 6],
    pub(super) tag: Option<String>,
    pub(super) lines: Vec<usize>,
}

#[derive(Debug, Clone)]
pub(super) struct Planned {
    pub(super) rule: RuleConfig,
    pub(super) lines: BTreeSet<usize>,
    pub(super) clients: Vec<Client>,
}

/// Standard iPXE binaries: handing one of them to iPXE again is a chainload loop.
pub(super) const IPXE_BINARIES: [&str; 8] = [
    "undionly.kpxe",
    "undionly.kkpxe",
    "undionly.0",
    "ipxe.efi",
    "snponly.efi",
    "ipxe.pxe",
    "snp.efi",
    "ipxe.kpxe",
];

pub(super) const MENU_URL: &str = "http://{server_ip}:{http_port}/menu.ipxe";

pub(super) fn is_url(s: &str) -> bool {
    s.contains("://")
}

/// (scheme, host, port, path) of a URL.
pub(super) fn split_url(u: &str) -> Option<(String, String, u16, String)> {
    let (scheme, rest) = u.split_once("://")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        "tftp" => 69,
        _ => 0,
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (hostport, default),
    };
    Some((
        scheme.to_ascii_lowercase(),
        host.to_string(),
        port,
        path.to_string(),
    ))
}

/// `http:///host/...` (a typo in matchbox's documented recipe) is `http://host/...`.
pub(super) fn fix_url(u: &str) -> String {
    for scheme in ["http", "https", "tftp"] {
        let bad = format!("{scheme}:///");
        if u.len() > bad.len()
            && u[..bad.len()].eq_ignore_ascii_case(&bad)
            && !u[bad.len()..].starts_with('/')
        {
            return format!("{scheme}://{}", &u[bad.len()..]);
        }
    }
    u.to_string()
}

pub(super) fn is_netboot_xyz(u: &str) -> bool {
    let l = u.to_ascii_lowercase();
    if !(l.starts_with("http://") || l.starts_with("https://")) {
        return false;
    }
    l.contains("netboot.xyz")
        || l.contains("netbootxyz")
        || split_url(&l).is_some_and(|(_, _, _, p)| p.rsplit('/').next() == Some("menu.ipxe"))
}

pub(super) fn arch_label(a: u16) -> &'static str {
    match a {
        0 => "bios",
        7 => "efi-x64",
        9 => "efi-bc",
        11 => "efi-arm64",
        16 => "http-x64",
        _ => "",
    }
}

pub(super) fn arch_spec(arches: &[u16]) -> Option<OneOrMany<ArchSpec>> {
    let v: Vec<ArchSpec> = arches
        .iter()
        .map(|a| match arch_label(*a) {
            "" => ArchSpec::Number(*a),
            n => ArchSpec::Name(n.into()),
        })
        .collect();
    match v.len() {
        0 => None,
        1 => v.into_iter().next().map(OneOrMany::One),
        _ => Some(OneOrMany::Many(v)),
    }
}

pub(super) fn arches_of(spec: &Option<OneOrMany<ArchSpec>>) -> Vec<u16> {
    let items: Vec<&ArchSpec> = match spec {
        None => Vec::new(),
        Some(OneOrMany::One(a)) => vec![a],
        Some(OneOrMany::Many(v)) => v.iter().collect(),
    };
    items
        .into_iter()
        .filter_map(|a| match a {
            ArchSpec::Number(n) => Some(*n),
            ArchSpec::Name(n) => kindling_dhcp::arch::parse_arch(n),
        })
        .collect()
}

pub(super) fn mask_prefix(m: Ipv4Addr) -> u32 {
    u32::from(m).leading_ones()
}

pub(super) fn same_net(a: Ipv4Addr, b: Ipv4Addr, mask: Ipv4Addr) -> bool {
    u32::from(a) & u32::from(mask) == u32::from(b) & u32::from(mask)
}
