//! One line split as dnsmasq's `read_file` does, and the values inside options: tag
//! conditions, MAC patterns, client system architectures, `dhcp-match` values.

use super::conf::{Cond, MacPattern, MatchValue};

/// Splits one raw line as dnsmasq's `read_file` does: `#` after white space (or at the
/// start) outside quotes starts a comment; quotes are removed; commas inside quotes do not
/// split. Returns (text without comment, args of the value) or an error.
/// (text without comment, key, whether there was an `=`, args).
pub(super) type Lexed = (String, String, bool, Vec<String>);

pub(super) fn lex(raw: &str) -> Result<Option<Lexed>, String> {
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
pub(super) fn take_conds(args: &mut Vec<String>) -> Vec<Cond> {
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

pub(super) fn set_prefix(a: &str) -> &str {
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
pub(super) fn option_by_name(name: &str) -> Option<(u8, usize)> {
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

pub(super) fn integer_size(option: u8) -> usize {
    match option {
        93 | 57 => 2,
        _ => 0,
    }
}

/// The value of a `dhcp-match`, as dnsmasq's `parse_dhcp_opt` characterises it.
pub(super) fn match_value(option: u8, size: usize, v: &str) -> Result<MatchValue, String> {
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
