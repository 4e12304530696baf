//! The model of a dnsmasq configuration: the lines and the options that matter to network
//! boot, as [`super::parse`] reads them.

use std::net::Ipv4Addr;

/// One non-empty, non-comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number.
    pub no: usize,
    /// The line as written (trimmed, comment kept out).
    pub text: String,
    /// The option name before `=`.
    pub key: String,
    /// Whether there was an `=`.
    pub has_value: bool,
    /// The value split at commas outside quotes, quotes removed, spaces around commas gone.
    pub args: Vec<String>,
}

/// A tag condition: `tag:x` (must be set) or `tag:!x` / `tag:#x` (must not be set). A
/// trailing `*` (tag-if only) matches any tag with that prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub tag: String,
    pub negated: bool,
}

impl Cond {
    pub(super) fn parse(t: &str) -> Cond {
        match t.strip_prefix('!').or_else(|| t.strip_prefix('#')) {
            Some(rest) => Cond {
                tag: rest.to_string(),
                negated: true,
            },
            None => Cond {
                tag: t.to_string(),
                negated: false,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub line: usize,
    pub set: Option<String>,
    pub filter: Vec<Cond>,
    pub start: Ipv4Addr,
    pub end: Option<Ipv4Addr>,
    pub proxy: bool,
    pub netmask: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PxeService {
    pub line: usize,
    pub conds: Vec<Cond>,
    pub csa: u16,
    pub menu: String,
    /// A file served by this host (dnsmasq appends `.0` when it has no dot).
    pub basename: Option<String>,
    /// dnsmasq's boot server type: 0 local boot, an integer given, or 0x8000+ for basenames.
    pub boot_type: u16,
    pub server: Option<Ipv4Addr>,
    pub server_name: Option<String>,
}

/// `pxe-prompt=[tag:..,]<prompt>[,<timeout>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PxePrompt {
    pub line: usize,
    pub conds: Vec<Cond>,
    pub text: String,
    /// The timeout as written (`None`: not given).
    pub timeout: Option<String>,
}

/// A `pxe-prompt` timeout as written, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptTimeout {
    /// Not given: dnsmasq waits for a key (255).
    Absent,
    /// Not only digits: dnsmasq ignores it and waits for a key (255).
    NotANumber,
    /// Digits (saturating at `u64::MAX`).
    Secs(u64),
}

impl PxePrompt {
    pub fn timeout(&self) -> PromptTimeout {
        match &self.timeout {
            None => PromptTimeout::Absent,
            // dnsmasq's atoi_check: digits only (an empty string passes, as 0).
            Some(t) if t.chars().all(|c| c.is_ascii_digit()) => {
                PromptTimeout::Secs(t.chars().fold(0u64, |n, c| {
                    n.saturating_mul(10)
                        .saturating_add(u64::from(c as u8 - b'0'))
                }))
            }
            Some(_) => PromptTimeout::NotANumber,
        }
    }

    /// The timeout byte dnsmasq sends: `atoi` of the digits with only the low byte kept
    /// (300 is 44), 255 when not given or not a number.
    pub fn dnsmasq_timeout(&self) -> u8 {
        match self.timeout() {
            PromptTimeout::Secs(n) if n <= i64::MAX as u64 => (n & 0xff) as u8,
            _ => 255,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpBoot {
    pub line: usize,
    pub conds: Vec<Cond>,
    pub file: String,
    pub server: Option<Ipv4Addr>,
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassKind {
    Vendor,
    User,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassMatch {
    pub line: usize,
    pub tag: String,
    pub kind: ClassKind,
    pub needle: Vec<u8>,
}

/// A MAC pattern: six octets, `None` for `*`.
pub type MacPattern = [Option<u8>; 6];

pub fn mac_matches(p: &MacPattern, mac: &[u8; 6]) -> bool {
    p.iter().zip(mac).all(|(p, b)| p.is_none_or(|p| p == *b))
}

pub fn mac_text(p: &MacPattern) -> String {
    p.iter()
        .map(|o| o.map(|b| format!("{b:02x}")).unwrap_or_else(|| "*".into()))
        .collect::<Vec<_>>()
        .join(":")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacMatch {
    pub line: usize,
    pub tag: String,
    pub pattern: MacPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchValue {
    /// The option is present.
    Present,
    /// Substring anywhere in the option.
    Text(Vec<u8>),
    /// An element of the option seen as an array of `bytes.len()`-byte values.
    Int(Vec<u8>),
    /// Left-anchored bytes with a wildcard mask (bit set = byte is `*`).
    Hex(Vec<u8>, u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptMatch {
    pub line: usize,
    pub tag: String,
    pub option: u8,
    pub value: MatchValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagIf {
    pub line: usize,
    pub sets: Vec<String>,
    pub conds: Vec<Cond>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub line: usize,
    pub macs: Vec<MacPattern>,
    pub sets: Vec<String>,
    pub filter: Vec<Cond>,
    pub addr: Option<Ipv4Addr>,
    pub ignore: bool,
    pub has_client_id: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignore {
    pub line: usize,
    pub conds: Vec<Cond>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delay {
    pub line: usize,
    pub conds: Vec<Cond>,
    pub secs: u32,
}

/// What became of a line (filled by the parser for malformed lines, by the translator for
/// the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Translated; the text says into what.
    Done(String),
    /// Cannot be expressed; the text says why.
    NotTranslated(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Default)]
pub struct Conf {
    pub lines: Vec<Line>,
    pub ranges: Vec<Range>,
    pub pxe_services: Vec<PxeService>,
    pub pxe_prompts: Vec<PxePrompt>,
    pub boots: Vec<DhcpBoot>,
    pub classes: Vec<ClassMatch>,
    pub macs: Vec<MacMatch>,
    pub matches: Vec<OptMatch>,
    pub tag_ifs: Vec<TagIf>,
    pub hosts: Vec<Host>,
    pub ignores: Vec<Ignore>,
    pub delays: Vec<Delay>,
    /// `dhcp-pxe-vendor` (None: dnsmasq's default, `PXEClient`).
    pub pxe_vendors: Option<Vec<String>>,
    /// Whether PXE is on at all (a `pxe-service` or `pxe-prompt` line).
    pub enable_pxe: bool,
    /// Lines the parser could not read, with why.
    pub malformed: Vec<(usize, String)>,
}

impl Conf {
    pub fn line(&self, no: usize) -> Option<&Line> {
        self.lines.iter().find(|l| l.no == no)
    }
}
