//! Hardware addresses parsed exactly like Go's `net.ParseMAC`, which is what
//! matchbox uses for the `mac` label and for `mac` selectors.
//!
//! Accepted forms (case-insensitive hex):
//! - `00:00:5e:00:53:01`, `00-00-5e-00-53-01` (iPXE `${mac:hexhyp}`)
//! - `0000.5e00.5301` (Cisco dotted)
//! - the same with 8 bytes (EUI-64) or 20 bytes (IP over InfiniBand)
//!
//! A bare `00005e005301` is rejected, as Go rejects it.

use std::fmt;

/// A parsed hardware address (6, 8 or 20 bytes).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(Vec<u8>);

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("address {0}: invalid MAC address")]
pub struct MacError(pub String);

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn byte_at(s: &[u8], at: usize) -> Option<u8> {
    let hi = hex(*s.get(at)?)?;
    let lo = hex(*s.get(at + 1)?)?;
    Some(hi << 4 | lo)
}

/// The bytes of an address parsed with Go's `net.ParseMAC` rules, held on the stack: its
/// buffer (up to 20 bytes) and its length.
fn parse_bytes(s: &str) -> Result<([u8; 20], usize), MacError> {
    let err = || MacError(s.to_string());
    let b = s.as_bytes();
    if b.len() < 14 {
        return Err(err());
    }
    let mut out = [0u8; 20];
    let n;
    if b[2] == b':' || b[2] == b'-' {
        let sep = b[2];
        if !(b.len() + 1).is_multiple_of(3) {
            return Err(err());
        }
        n = (b.len() + 1) / 3;
        if n != 6 && n != 8 && n != 20 {
            return Err(err());
        }
        for (i, o) in out.iter_mut().enumerate().take(n) {
            let x = i * 3;
            *o = byte_at(b, x).ok_or_else(err)?;
            if i + 1 < n && b[x + 2] != sep {
                return Err(err());
            }
        }
    } else if b[4] == b'.' {
        if !(b.len() + 1).is_multiple_of(5) {
            return Err(err());
        }
        n = 2 * (b.len() + 1) / 5;
        if n != 6 && n != 8 && n != 20 {
            return Err(err());
        }
        for i in 0..n / 2 {
            let x = i * 5;
            out[2 * i] = byte_at(b, x).ok_or_else(err)?;
            out[2 * i + 1] = byte_at(b, x + 2).ok_or_else(err)?;
            if i + 1 < n / 2 && b[x + 4] != b'.' {
                return Err(err());
            }
        }
    } else {
        return Err(err());
    }
    Ok((out, n))
}

impl Mac {
    /// Parses `s` with the rules of Go's `net.ParseMAC`.
    pub fn parse(s: &str) -> Result<Mac, MacError> {
        let (b, n) = parse_bytes(s)?;
        Ok(Mac(b[..n].to_vec()))
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Builds a MAC from raw bytes (as seen in a DHCP packet).
    pub fn from_bytes(b: &[u8]) -> Mac {
        Mac(b.to_vec())
    }

    /// iPXE's `${mac:hexhyp}` form: `52-54-00-12-34-56`.
    pub fn hexhyp(&self) -> String {
        self.join('-')
    }

    /// The bytes in hex, `sep` between them, in one allocation of the right size.
    pub(crate) fn join(&self, sep: char) -> String {
        let mut s = String::with_capacity(self.0.len() * 3);
        self.write_joined(&mut s, sep)
            .expect("writing to a String does not fail");
        s
    }

    fn write_joined(&self, w: &mut impl fmt::Write, sep: char) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                w.write_char(sep)?;
            }
            w.write_char(HEX[usize::from(b >> 4)] as char)?;
            w.write_char(HEX[usize::from(b & 0xf)] as char)?;
        }
        Ok(())
    }
}

impl fmt::Display for Mac {
    /// Go's `HardwareAddr.String()`: lower-case, colon separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_joined(f, ':')
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

/// Normalises a MAC string to Go's canonical form, or `None` if Go would reject it.
pub fn normalize_mac(s: &str) -> Option<String> {
    Mac::parse(s).ok().map(|m| m.join(':'))
}

/// A 6-byte (EUI-48) hardware address held by value: what DHCP packets carry and what the
/// boot timeline keys machines by. `Copy`, no allocation; text only when shown.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Parses `s` with Go's `net.ParseMAC` rules; only 6-byte addresses are accepted.
    pub fn parse(s: &str) -> Result<MacAddr, MacError> {
        match parse_bytes(s)? {
            (b, 6) => Ok(MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]])),
            _ => Err(MacError(s.to_string())),
        }
    }

    /// The raw bytes.
    pub fn bytes(&self) -> [u8; 6] {
        self.0
    }

    /// `52:54:00:12:34:56` as ASCII, without allocating.
    pub fn ascii(&self) -> [u8; 17] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b':'; 17];
        for (i, b) in self.0.iter().enumerate() {
            out[i * 3] = HEX[usize::from(b >> 4)];
            out[i * 3 + 1] = HEX[usize::from(b & 0xf)];
        }
        out
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> MacAddr {
        MacAddr(b)
    }
}

impl std::str::FromStr for MacAddr {
    type Err = MacError;
    fn from_str(s: &str) -> Result<MacAddr, MacError> {
        MacAddr::parse(s)
    }
}

impl fmt::Display for MacAddr {
    /// Lower-case, colon separated (Go's `HardwareAddr.String()`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.ascii();
        f.write_str(std::str::from_utf8(&a).unwrap_or_default())
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addr_parses_six_bytes_and_shows_canonical_text() {
        let m = MacAddr::parse("52-54-00-AB-cd-0F").expect("six bytes");
        assert_eq!(m, MacAddr([0x52, 0x54, 0, 0xab, 0xcd, 0x0f]));
        assert_eq!(m.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!("5254.00ab.cd0f".parse::<MacAddr>(), Ok(m));
        assert!(MacAddr::parse("00:00:00:00:fe:80:00:00").is_err());
        assert!(MacAddr::parse("525400abcd0f").is_err());
    }

    #[test]
    fn accepted_forms() {
        for (input, want) in [
            ("52:54:00:aa:bb:cc", "52:54:00:aa:bb:cc"),
            ("52-54-00-AA-BB-CC", "52:54:00:aa:bb:cc"),
            ("5254.00aa.bbcc", "52:54:00:aa:bb:cc"),
            ("52:54:00:AA:bb:cc", "52:54:00:aa:bb:cc"),
            ("02:00:5e:10:00:00:00:01", "02:00:5e:10:00:00:00:01"),
            ("0200.5e10.0000.0001", "02:00:5e:10:00:00:00:01"),
            (
                "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
                "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
            ),
        ] {
            assert_eq!(normalize_mac(input).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn rejected_forms() {
        for input in [
            "",
            "525400aabbcc",
            "52:54:00:aa:bb",
            "52:54:00:aa:bb:cc:",
            "52:54-00:aa:bb:cc",
            "52:54:00:aa:bb:gg",
            "5254.00aa.bbc",
            "5254:00aa:bbcc",
            "52:54:00:aa:bb:cc:dd",
            "not-a-mac",
            "52 54 00 aa bb cc",
            "ää:54:00:aa:bb:cc",
        ] {
            assert_eq!(normalize_mac(input), None, "{input:?} should be rejected");
        }
    }

    #[test]
    fn hexhyp() {
        let m = Mac::parse("52:54:00:12:34:56").unwrap();
        assert_eq!(m.hexhyp(), "52-54-00-12-34-56");
    }
}
