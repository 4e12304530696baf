//! dnsmasq configuration text to a model. Sans-I/O: text in, model out; never panics. The
//! reading follows dnsmasq 2.90's `read_file` and `one_opt` (comments, quotes, commas,
//! `tag:`/`net:`/`set:` prefixes) for the DHCP and TFTP options that matter to network boot.

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
    fn parse(t: &str) -> Cond {
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
    pub pxe_prompts: Vec<usize>,
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

/// Splits one raw line as dnsmasq's `read_file` does: `#` after white space (or at the
/// start) outside quotes starts a comment; quotes are removed; commas inside quotes do not
/// split. Returns (text without comment, args of the value) or an error.
/// (text without comment, key, whether there was an `=`, args).
type Lexed = (String, String, bool, Vec<String>);

fn lex(raw: &str) -> Result<Option<Lexed>, String> {
    // First pass: cut the comment, find the extent of the text.
    let mut text = String::new();
    let mut in_quote = false;
    let mut white = true;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quote {
            text.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    text.push(n);
                }
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        if c == '"' {
            in_quote = true;
            text.push(c);
            white = false;
            continue;
        }
        if c.is_whitespace() {
            white = true;
            text.push(' ');
            continue;
        }
        if white && c == '#' {
            break;
        }
        white = false;
        text.push(c);
    }
    if in_quote {
        return Err("missing closing \"".into());
    }
    let text = text.trim().to_string();
    if text.is_empty() {
        return Ok(None);
    }
    let (key, value, has_value) = match text.find('=') {
        Some(i) if !text[..i].contains('"') => (
            text[..i].trim().to_string(),
            text[i + 1..].trim().to_string(),
            true,
        ),
        _ => (text.clone(), String::new(), false),
    };
    // Second pass: split the value at commas outside quotes, unquote.
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if in_quote {
            match c {
                '"' => in_quote = false,
                '\\' => match chars.next() {
                    Some('t') => cur.push('\t'),
                    Some('n') => cur.push('\n'),
                    Some('r') => cur.push('\r'),
                    Some('b') => cur.push('\u{8}'),
                    Some('e') => cur.push('\u{1b}'),
                    Some(o @ ('"' | '\\')) => cur.push(o),
                    Some(o) => {
                        cur.push('\\');
                        cur.push(o);
                    }
                    None => cur.push('\\'),
                },
                o => cur.push(o),
            }
            continue;
        }
        match c {
            '"' => in_quote = true,
            ',' => {
                args.push(cur.trim().to_string());
                cur.clear();
            }
            o => cur.push(o),
        }
    }
    if has_value {
        args.push(cur.trim().to_string());
    }
    Ok(Some((text, key, has_value, args)))
}

/// `tag:`/`net:` prefixes at the front of `args`, removed.
fn take_conds(args: &mut Vec<String>) -> Vec<Cond> {
    let mut conds = Vec::new();
    while args.len() > 1 {
        let a = &args[0];
        let Some(t) = a.strip_prefix("tag:").or_else(|| a.strip_prefix("net:")) else {
            break;
        };
        conds.push(Cond::parse(t));
        args.remove(0);
    }
    conds
}

fn set_prefix(a: &str) -> &str {
    a.strip_prefix("set:").unwrap_or(a)
}

/// dnsmasq's `parse_hex` for a MAC: six octets, hex or `*`, `:` or `-` separated, an optional
/// `N-` hardware type in front.
pub fn parse_mac(s: &str) -> Option<MacPattern> {
    let s = s.trim();
    let s = match s.split_once('-') {
        Some((t, rest)) if t.len() <= 2 && rest.matches(':').count() == 5 => rest,
        _ => s,
    };
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut out = [None; 6];
    for (slot, p) in out.iter_mut().zip(parts) {
        if p == "*" {
            continue;
        }
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *slot = Some(u8::from_str_radix(p, 16).ok()?);
    }
    Some(out)
}

const CSA: [&str; 12] = [
    "x86PC",
    "PC98",
    "IA64_EFI",
    "Alpha",
    "Arc_x86",
    "Intel_Lean_Client",
    "IA32_EFI",
    "x86-64_EFI",
    "Xscale_EFI",
    "BC_EFI",
    "ARM32_EFI",
    "ARM64_EFI",
];

/// dnsmasq's CSA name (or number) for a `pxe-service`.
pub fn parse_csa(s: &str) -> Option<u16> {
    if let Some(i) = CSA.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Some(i as u16);
    }
    s.parse().ok()
}

/// Option names dnsmasq knows that matter for `dhcp-match`, with the byte size of an
/// integer value (0: none).
fn option_by_name(name: &str) -> Option<(u8, usize)> {
    Some(match name {
        "client-arch" => (93, 2),
        "user-class" => (77, 0),
        "vendor-class" => (60, 0),
        "client-machine-id" => (97, 0),
        "bootfile-name" => (67, 0),
        "tftp-server" => (66, 0),
        "hostname" => (12, 0),
        "vendor-id-encap" | "vendor-encap" => (43, 0),
        "client-interface-id" => (94, 0),
        "max-message-size" => (57, 2),
        "agent-id" => (82, 0),
        _ => return None,
    })
}

fn integer_size(option: u8) -> usize {
    match option {
        93 | 57 => 2,
        _ => 0,
    }
}

/// The value of a `dhcp-match`, as dnsmasq's `parse_dhcp_opt` characterises it.
fn match_value(option: u8, size: usize, v: &str) -> Result<MatchValue, String> {
    if v.is_empty() {
        return Ok(MatchValue::Present);
    }
    let is_dec = v.bytes().all(|c| c.is_ascii_digit());
    if is_dec {
        let n: u64 = v.parse().map_err(|_| format!("bad number {v:?}"))?;
        let size = if size > 0 {
            size
        } else if n > 0xffff {
            4
        } else if n > 0xff {
            2
        } else {
            1
        };
        let bytes = (0..size)
            .rev()
            .map(|i| ((n >> (i * 8)) & 0xff) as u8)
            .collect();
        let _ = option;
        return Ok(MatchValue::Int(bytes));
    }
    let is_hex = v.contains(':')
        && v.split(':').all(|p| {
            p == "*" || (!p.is_empty() && p.len() <= 2 && p.bytes().all(|c| c.is_ascii_hexdigit()))
        });
    if is_hex {
        let mut bytes = Vec::new();
        let mut mask = 0u32;
        for (i, p) in v.split(':').enumerate() {
            if p == "*" {
                if i < 32 {
                    mask |= 1 << i;
                }
                bytes.push(0);
            } else {
                bytes.push(u8::from_str_radix(p, 16).map_err(|_| format!("bad hex {v:?}"))?);
            }
        }
        return Ok(MatchValue::Hex(bytes, mask));
    }
    Ok(MatchValue::Text(v.as_bytes().to_vec()))
}

/// Parses a configuration text. Never fails: lines it cannot read are listed in
/// `malformed` (and are otherwise ignored, as dnsmasq would refuse to start).
pub fn parse(text: &str) -> Conf {
    let mut c = Conf::default();
    let mut boottype: u32 = 0x8000;
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let lexed = match lex(raw) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                c.lines.push(Line {
                    no,
                    text: raw.trim().to_string(),
                    key: String::new(),
                    has_value: false,
                    args: Vec::new(),
                });
                c.malformed.push((no, e));
                continue;
            }
        };
        let (text, key, has_value, args) = lexed;
        c.lines.push(Line {
            no,
            text,
            key: key.clone(),
            has_value,
            args: args.clone(),
        });
        if let Err(e) = parse_line(&mut c, no, &key, args, &mut boottype) {
            c.malformed.push((no, e));
        }
    }
    c
}

fn need(args: &[String], n: usize, what: &str) -> Result<(), String> {
    if args.len() < n || args.iter().take(n).any(|a| a.is_empty()) {
        return Err(format!("expected {what}"));
    }
    Ok(())
}

fn parse_line(
    c: &mut Conf,
    no: usize,
    key: &str,
    mut args: Vec<String>,
    boottype: &mut u32,
) -> Result<(), String> {
    match key {
        "dhcp-range" => {
            let mut set = None;
            let mut filter = Vec::new();
            while args.len() > 1 {
                let a = &args[0];
                let addressy = a
                    .chars()
                    .all(|ch| ch == ' ' || ch == '.' || ch == ':' || ch.is_ascii_hexdigit());
                if addressy {
                    break;
                }
                if let Some(t) = a.strip_prefix("tag:").or_else(|| a.strip_prefix("net:")) {
                    if !t.is_empty() {
                        filter.push(Cond::parse(t));
                    }
                } else if set.is_some() {
                    return Err("only one set: tag allowed".into());
                } else {
                    set = Some(set_prefix(a).to_string());
                }
                args.remove(0);
            }
            need(&args, 2, "<start>,<end>|proxy|static[,<netmask>...]")?;
            let start: Ipv4Addr = args[0].parse().map_err(|_| {
                format!(
                    "{:?} is not an IPv4 address (IPv6 ranges are not for PXE)",
                    args[0]
                )
            })?;
            let (proxy, end) = match args[1].as_str() {
                "proxy" => (true, None),
                "static" => (false, None),
                a => (
                    false,
                    Some(
                        a.parse::<Ipv4Addr>()
                            .map_err(|_| format!("bad range end {a:?}"))?,
                    ),
                ),
            };
            let netmask = args
                .get(2)
                .filter(|a| a.contains('.'))
                .and_then(|a| a.parse::<Ipv4Addr>().ok());
            c.ranges.push(Range {
                line: no,
                set,
                filter,
                start,
                end,
                proxy,
                netmask,
            });
        }
        "pxe-service" => {
            let conds = take_conds(&mut args);
            need(
                &args,
                2,
                "[tag:..,]<CSA>,<menu text>[,<basename>|<type>][,<server>]",
            )?;
            let csa = parse_csa(&args[0]).ok_or_else(|| format!("unknown CSA {:?}", args[0]))?;
            let menu = args[1].clone();
            let (basename, boot_type) = match args.get(2) {
                None => (None, 0u16),
                Some(a) => match a.parse::<u16>() {
                    Ok(t) => (None, t),
                    Err(_) => {
                        let t = (*boottype).min(0xffff) as u16;
                        *boottype += 1;
                        (Some(a.clone()), t)
                    }
                },
            };
            let (server, server_name) = match args.get(3) {
                None => (None, None),
                Some(a) => match a.parse::<Ipv4Addr>() {
                    Ok(ip) => (Some(ip), None),
                    Err(_) => (None, Some(a.clone())),
                },
            };
            c.pxe_services.push(PxeService {
                line: no,
                conds,
                csa,
                menu,
                basename,
                boot_type,
                server,
                server_name,
            });
            c.enable_pxe = true;
        }
        "pxe-prompt" => {
            let _ = take_conds(&mut args);
            need(&args, 1, "[tag:..,]<prompt>[,<timeout>]")?;
            c.pxe_prompts.push(no);
            c.enable_pxe = true;
        }
        "dhcp-boot" => {
            let conds = take_conds(&mut args);
            need(
                &args,
                1,
                "[tag:..,]<file>[,<servername>[,<server address>]]",
            )?;
            let (server, server_name) = match args.get(2) {
                None => (None, None),
                Some(a) => match a.parse::<Ipv4Addr>() {
                    Ok(ip) => (Some(ip), None),
                    Err(_) => (None, Some(a.clone())),
                },
            };
            c.boots.push(DhcpBoot {
                line: no,
                conds,
                file: args[0].clone(),
                server,
                server_name,
            });
        }
        "dhcp-vendorclass" | "dhcp-userclass" => {
            need(&args, 2, "set:<tag>,<class>")?;
            if args.len() > 2 {
                return Err("enterprise: vendor classes are not supported".into());
            }
            c.classes.push(ClassMatch {
                line: no,
                tag: set_prefix(&args[0]).to_string(),
                kind: if key == "dhcp-vendorclass" {
                    ClassKind::Vendor
                } else {
                    ClassKind::User
                },
                needle: args[1].as_bytes().to_vec(),
            });
        }
        "dhcp-mac" => {
            need(&args, 2, "set:<tag>,<MAC address>")?;
            let pattern =
                parse_mac(&args[1]).ok_or_else(|| format!("bad MAC address {:?}", args[1]))?;
            c.macs.push(MacMatch {
                line: no,
                tag: set_prefix(&args[0]).to_string(),
                pattern,
            });
        }
        "dhcp-match" => {
            need(
                &args,
                2,
                "set:<tag>,<option number>|option:<name>[,<value>]",
            )?;
            let tag = set_prefix(&args[0]).to_string();
            let o = &args[1];
            let (option, size) = if let Some(n) = o.strip_prefix("option:") {
                match n.parse::<u8>() {
                    Ok(v) => (v, integer_size(v)),
                    Err(_) => {
                        option_by_name(n).ok_or_else(|| format!("unknown option name {n:?}"))?
                    }
                }
            } else if o.starts_with("vi-encap:") || o.starts_with("option6:") {
                return Err(format!("{o} matches are not supported"));
            } else {
                let v: u8 = o.parse().map_err(|_| format!("bad option {o:?}"))?;
                (v, integer_size(v))
            };
            let value = match_value(option, size, &args[2..].join(","))?;
            c.matches.push(OptMatch {
                line: no,
                tag,
                option,
                value,
            });
        }
        "tag-if" => {
            let mut t = TagIf {
                line: no,
                sets: Vec::new(),
                conds: Vec::new(),
            };
            for a in &args {
                if let Some(s) = a.strip_prefix("set:") {
                    t.sets.push(s.to_string());
                } else if let Some(s) = a.strip_prefix("tag:") {
                    t.conds.push(Cond::parse(s));
                } else {
                    return Err(format!("bad tag-if part {a:?}"));
                }
            }
            if t.sets.is_empty() {
                return Err("tag-if sets no tag".into());
            }
            c.tag_ifs.push(t);
        }
        "dhcp-host" => {
            let mut h = Host {
                line: no,
                macs: Vec::new(),
                sets: Vec::new(),
                filter: Vec::new(),
                addr: None,
                ignore: false,
                has_client_id: false,
            };
            for a in &args {
                if a.contains(':') {
                    if a.len() >= 3 && a[..3].eq_ignore_ascii_case("id:") {
                        h.has_client_id = true;
                    } else if let Some(t) =
                        a.strip_prefix("net:").or_else(|| a.strip_prefix("set:"))
                    {
                        h.sets.push(t.to_string());
                    } else if let Some(t) = a.strip_prefix("tag:") {
                        h.filter.push(Cond::parse(t));
                    } else if a.starts_with('[') {
                        // IPv6 address: not for PXE.
                    } else {
                        h.macs
                            .push(parse_mac(a).ok_or_else(|| format!("bad MAC address {a:?}"))?);
                    }
                } else if let Ok(ip) = a.parse::<Ipv4Addr>() {
                    h.addr = Some(ip);
                } else if a == "ignore" {
                    h.ignore = true;
                }
            }
            c.hosts.push(h);
        }
        "dhcp-ignore" => {
            let conds = args
                .iter()
                .map(|a| {
                    Cond::parse(
                        a.strip_prefix("tag:")
                            .or_else(|| a.strip_prefix("net:"))
                            .unwrap_or(a),
                    )
                })
                .collect();
            c.ignores.push(Ignore { line: no, conds });
        }
        "dhcp-reply-delay" => {
            let conds = take_conds(&mut args);
            need(&args, 1, "[tag:..,]<seconds>")?;
            let secs = args[0]
                .parse()
                .map_err(|_| format!("bad delay {:?}", args[0]))?;
            c.delays.push(Delay {
                line: no,
                conds,
                secs,
            });
        }
        "dhcp-pxe-vendor" => {
            need(&args, 1, "<vendor>[,...]")?;
            c.pxe_vendors
                .get_or_insert_with(Vec::new)
                .extend(args.iter().filter(|a| !a.is_empty()).cloned());
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_quotes_and_commas() {
        let c = parse(
            "# a comment\n\
             pxe-service=tag:#ipxe,x86PC,\"PXE, chainload\",undionly.kpxe   # trailing\n\
             tag-if=set:netboot-xyz, tag:ipxe, tag:netboot\n\
             dhcp-boot=a#b\n",
        );
        assert_eq!(c.lines.len(), 3);
        assert_eq!(c.lines[0].no, 2);
        assert_eq!(
            c.lines[0].args,
            vec!["tag:#ipxe", "x86PC", "PXE, chainload", "undionly.kpxe"]
        );
        let s = &c.pxe_services[0];
        assert_eq!(
            s.conds,
            vec![Cond {
                tag: "ipxe".into(),
                negated: true
            }]
        );
        assert_eq!((s.csa, s.boot_type), (0, 0x8000));
        assert_eq!(s.basename.as_deref(), Some("undionly.kpxe"));
        assert_eq!(c.tag_ifs[0].sets, vec!["netboot-xyz"]);
        assert_eq!(c.tag_ifs[0].conds.len(), 2);
        // '#' not after white space is part of the value.
        assert_eq!(c.boots[0].file, "a#b");
        assert!(c.malformed.is_empty());
    }

    #[test]
    fn ranges_services_and_matches() {
        let c = parse(
            "dhcp-range=set:lab,tag:eth1,192.168.1.1,proxy,255.255.255.0\n\
             dhcp-range=10.0.0.10,10.0.0.50,12h\n\
             pxe-service=X86-64_EFI,\"x\",ipxe.efi,10.0.0.5\n\
             pxe-service=x86PC,\"Boot from local disk\"\n\
             pxe-service=BC_EFI,\"y\",snponly.efi\n\
             dhcp-match=set:efi,option:client-arch,7\n\
             dhcp-match=set:ipxe,175\n\
             dhcp-match=set:http,175,19\n\
             dhcp-match=set:v,60,PXEClient:Arch:00007\n\
             dhcp-host=02:1a:4a:16:01:9c,set:install,10.0.0.20,ignore\n\
             dhcp-mac=set:vm,52:54:00:*:*:*\n",
        );
        assert!(c.malformed.is_empty(), "{:?}", c.malformed);
        assert_eq!(c.ranges[0].set.as_deref(), Some("lab"));
        assert!(c.ranges[0].proxy);
        assert_eq!(c.ranges[0].netmask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert!(!c.ranges[1].proxy);
        assert_eq!(c.pxe_services[0].server, Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(c.pxe_services[0].csa, 7);
        assert_eq!(c.pxe_services[1].boot_type, 0);
        assert_eq!(c.pxe_services[2].boot_type, 0x8001);
        assert_eq!(c.matches[0].value, MatchValue::Int(vec![0, 7]));
        assert_eq!(c.matches[1].value, MatchValue::Present);
        assert_eq!(c.matches[2].value, MatchValue::Int(vec![19]));
        assert_eq!(
            c.matches[3].value,
            MatchValue::Text(b"PXEClient:Arch:00007".to_vec())
        );
        assert_eq!(c.hosts[0].sets, vec!["install"]);
        assert!(c.hosts[0].ignore);
        assert_eq!(c.macs[0].pattern[3], None);
    }

    #[test]
    fn bad_lines_are_listed_not_fatal() {
        let c = parse(
            "pxe-service=x86PC\n\
             dhcp-mac=set:x,zz:zz\n\
             dhcp-range=fe80::1,proxy\n\
             pxe-prompt=\"unterminated\n\
             dhcp-match=set:x,option:no-such-option\n\
             tag-if=tag:a\n\
             \u{0}\u{ff}=\n",
        );
        assert_eq!(c.malformed.len(), 6, "{:?}", c.malformed);
        assert_eq!(c.lines.len(), 7);
    }
}
