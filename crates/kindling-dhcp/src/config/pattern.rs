//! The patterns the config matches against: MACs with wildcard octets, interface names with
//! `*`, and allow-list entries (a name or a subnet).

use std::net::Ipv4Addr;

/// A MAC pattern with per-octet wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacPattern([Option<u8>; 6]);

impl MacPattern {
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.trim().split([':', '-']).collect();
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
        Some(Self(out))
    }

    /// The MAC itself, when no octet is a wildcard.
    pub fn exact(&self) -> Option<[u8; 6]> {
        let mut m = [0u8; 6];
        for (o, p) in m.iter_mut().zip(self.0) {
            *o = p?;
        }
        Some(m)
    }

    pub fn matches(&self, mac: &[u8; 6]) -> bool {
        self.0
            .iter()
            .zip(mac)
            .all(|(p, b)| p.is_none_or(|p| p == *b))
    }
}

/// A name with `*` wildcards (matches any run of characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern(String);

impl NamePattern {
    pub fn new(s: &str) -> Self {
        Self(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard match with backtracking to the last '*'.
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(c) if s.get(si) == Some(c) => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == b'*'))
}

/// An allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceSelector {
    /// By name (wildcards allowed).
    Name(NamePattern),
    /// Interfaces with an address in this subnet. `prefix: None` means "use the interface's
    /// own netmask" (dnsmasq `dhcp-range=<addr>,proxy`).
    Subnet { addr: Ipv4Addr, prefix: Option<u8> },
}

impl InterfaceSelector {
    /// Does an interface named `name`, with address `ip`/`mask`, match?
    pub fn matches(&self, name: &str, ip: Ipv4Addr, mask: Ipv4Addr) -> bool {
        match self {
            Self::Name(p) => p.matches(name),
            Self::Subnet { addr, prefix } => {
                let m = match prefix {
                    Some(0) => 0u32,
                    Some(p) => u32::MAX << (32 - u32::from(*p).min(32)),
                    None => u32::from(mask),
                };
                u32::from(ip) & m == u32::from(*addr) & m
            }
        }
    }
}
