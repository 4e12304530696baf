//! DHCPv6 messages (RFC 8415): a panic-free parser of client messages and an encoder.
//!
//! A client message is `msg-type (1) | transaction-id (3) | options`, each option
//! `code (2) | length (2) | data`. IA_NA options nest IA Address options. Every length is
//! checked against what is left; nothing here indexes past a slice or panics.

use std::net::Ipv6Addr;

/// Message types.
pub mod msg {
    pub const SOLICIT: u8 = 1;
    pub const ADVERTISE: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const CONFIRM: u8 = 4;
    pub const RENEW: u8 = 5;
    pub const REBIND: u8 = 6;
    pub const REPLY: u8 = 7;
    pub const RELEASE: u8 = 8;
    pub const DECLINE: u8 = 9;
    pub const RECONFIGURE: u8 = 10;
    pub const INFORMATION_REQUEST: u8 = 11;
    pub const RELAY_FORW: u8 = 12;
    pub const RELAY_REPL: u8 = 13;
}

/// Option codes.
pub mod opt {
    pub const CLIENTID: u16 = 1;
    pub const SERVERID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_TA: u16 = 4;
    pub const IAADDR: u16 = 5;
    pub const ORO: u16 = 6;
    pub const PREFERENCE: u16 = 7;
    pub const ELAPSED_TIME: u16 = 8;
    pub const STATUS_CODE: u16 = 13;
    pub const RAPID_COMMIT: u16 = 14;
    pub const USER_CLASS: u16 = 15;
    pub const VENDOR_CLASS: u16 = 16;
    pub const DNS_SERVERS: u16 = 23;
    pub const IA_PD: u16 = 25;
    pub const BOOTFILE_URL: u16 = 59;
    pub const BOOTFILE_PARAM: u16 = 60;
    pub const CLIENT_ARCH_TYPE: u16 = 61;
}

/// Status codes (option 13).
pub mod status {
    pub const SUCCESS: u16 = 0;
    pub const NO_ADDRS_AVAIL: u16 = 2;
    pub const NO_BINDING: u16 = 3;
    pub const NOT_ON_LINK: u16 = 4;
    pub const NO_PREFIX_AVAIL: u16 = 6;
}

/// The IANA enterprise number of the PXE/HTTP Boot vendor classes (Intel).
pub const ENTERPRISE_PXE: u32 = 343;

/// Why a datagram is not a well-formed DHCPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the 4-byte header.
    Short,
    /// An option's header or data runs past the end of its container.
    TruncatedOption,
    /// An IA_NA / IA Address option shorter than its fixed part.
    BadIa,
}

/// One option: its code and data (borrowed from the datagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt<'a> {
    pub code: u16,
    pub data: &'a [u8],
}

/// Splits `buf` into options; any truncation is an error.
pub fn parse_options(mut buf: &[u8]) -> Result<Vec<Opt<'_>>, ParseError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (Some(h), rest) = (buf.get(..4), buf.get(4..).unwrap_or_default()) else {
            return Err(ParseError::TruncatedOption);
        };
        let code = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let data = rest.get(..len).ok_or(ParseError::TruncatedOption)?;
        out.push(Opt { code, data });
        buf = rest.get(len..).unwrap_or_default();
    }
    Ok(out)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Sequences of `u16 length | data` (user class, vendor class data); stops at the first
/// truncated entry.
pub fn length_prefixed(mut b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some(h) = b.get(..2) {
        let len = usize::from(u16::from_be_bytes([h[0], h[1]]));
        let Some(d) = b.get(2..2 + len) else { break };
        out.push(d);
        b = b.get(2 + len..).unwrap_or_default();
    }
    out
}

/// One IA Address inside an IA_NA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaAddr {
    pub addr: Ipv6Addr,
    pub preferred: u32,
    pub valid: u32,
}

/// An IA_NA (or IA_TA / IA_PD, whose addresses are not read) as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ia {
    pub code: u16,
    pub iaid: u32,
    pub addrs: Vec<IaAddr>,
}

fn parse_ia(o: &Opt<'_>) -> Result<Ia, ParseError> {
    let iaid = be32(o.data, 0).ok_or(ParseError::BadIa)?;
    let mut addrs = Vec::new();
    if o.code == opt::IA_NA {
        let nested = o.data.get(12..).ok_or(ParseError::BadIa)?;
        for n in parse_options(nested)? {
            if n.code != opt::IAADDR {
                continue;
            }
            let a: [u8; 16] = n
                .data
                .get(..16)
                .and_then(|s| s.try_into().ok())
                .ok_or(ParseError::BadIa)?;
            addrs.push(IaAddr {
                addr: Ipv6Addr::from(a),
                preferred: be32(n.data, 16).ok_or(ParseError::BadIa)?,
                valid: be32(n.data, 20).ok_or(ParseError::BadIa)?,
            });
        }
    }
    Ok(Ia {
        code: o.code,
        iaid,
        addrs,
    })
}

/// A parsed client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub msg_type: u8,
    /// The 24-bit transaction id.
    pub xid: [u8; 3],
    pub options: Vec<Opt<'a>>,
    /// Every IA_NA, IA_TA and IA_PD, in order.
    pub ias: Vec<Ia>,
}

impl<'a> Message<'a> {
    /// Parses a datagram. Relay messages (12, 13) parse too (their header differs: only
    /// `msg_type` is meaningful, and `options` is empty).
    pub fn parse(b: &'a [u8]) -> Result<Self, ParseError> {
        let h = b.get(..4).ok_or(ParseError::Short)?;
        let msg_type = h[0];
        let xid = [h[1], h[2], h[3]];
        if matches!(msg_type, msg::RELAY_FORW | msg::RELAY_REPL) {
            return Ok(Self {
                msg_type,
                xid,
                options: Vec::new(),
                ias: Vec::new(),
            });
        }
        let options = parse_options(b.get(4..).unwrap_or_default())?;
        let ias = options
            .iter()
            .filter(|o| matches!(o.code, opt::IA_NA | opt::IA_TA | opt::IA_PD))
            .map(parse_ia)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            msg_type,
            xid,
            options,
            ias,
        })
    }

    /// The transaction id as a number (logs).
    pub fn xid_u32(&self) -> u32 {
        u32::from_be_bytes([0, self.xid[0], self.xid[1], self.xid[2]])
    }

    /// The first option with this code.
    pub fn option(&self, code: u16) -> Option<&'a [u8]> {
        self.options.iter().find(|o| o.code == code).map(|o| o.data)
    }

    pub fn has(&self, code: u16) -> bool {
        self.options.iter().any(|o| o.code == code)
    }

    /// Option 15: every user class entry of every instance.
    pub fn user_classes(&self) -> Vec<&'a [u8]> {
        self.options
            .iter()
            .filter(|o| o.code == opt::USER_CLASS)
            .flat_map(|o| length_prefixed(o.data))
            .collect()
    }

    /// Option 16: every (enterprise number, vendor class data) entry.
    pub fn vendor_classes(&self) -> Vec<(u32, &'a [u8])> {
        let mut out = Vec::new();
        for o in self.options.iter().filter(|o| o.code == opt::VENDOR_CLASS) {
            if let Some(ent) = be32(o.data, 0) {
                for d in length_prefixed(o.data.get(4..).unwrap_or_default()) {
                    out.push((ent, d));
                }
            }
        }
        out
    }

    /// Option 61: every architecture type, in order.
    pub fn architectures(&self) -> Vec<u16> {
        self.options
            .iter()
            .filter(|o| o.code == opt::CLIENT_ARCH_TYPE)
            .flat_map(|o| o.data.chunks_exact(2))
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    /// Option 6: the option codes requested.
    pub fn requested(&self) -> Vec<u16> {
        self.option(opt::ORO)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect()
    }
}

/// An option to encode: a code and its data, or nested options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOut {
    pub code: u16,
    pub data: Vec<u8>,
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

impl OptOut {
    pub fn new(code: u16, data: impl Into<Vec<u8>>) -> Self {
        Self {
            code,
            data: data.into(),
        }
    }

    /// An option whose data is a fixed part followed by nested options.
    pub fn nested(code: u16, fixed: &[u8], inner: &[OptOut]) -> Result<Self, TooLong> {
        let mut data = fixed.to_vec();
        for o in inner {
            o.write(&mut data)?;
        }
        Ok(Self { code, data })
    }

    /// Status Code: `code | UTF-8 message`.
    pub fn status(code: u16, message: &str) -> Self {
        let mut d = code.to_be_bytes().to_vec();
        d.extend_from_slice(message.as_bytes());
        Self::new(opt::STATUS_CODE, d)
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), TooLong> {
        let len = u16::try_from(self.data.len()).map_err(|_| TooLong)?;
        out.extend_from_slice(&self.code.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Encodes a server message.
pub fn encode(msg_type: u8, xid: [u8; 3], options: &[OptOut]) -> Result<Vec<u8>, TooLong> {
    let mut out = vec![msg_type, xid[0], xid[1], xid[2]];
    for o in options {
        o.write(&mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(code: u16, data: &[u8]) -> Vec<u8> {
        let mut v = code.to_be_bytes().to_vec();
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn solicit() -> Vec<u8> {
        let mut p = vec![msg::SOLICIT, 0xab, 0xcd, 0xef];
        p.extend(tlv(opt::CLIENTID, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1]));
        let mut ia = 7u32.to_be_bytes().to_vec();
        ia.extend([0; 8]);
        let mut addr = "fd00::5".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        addr.extend(100u32.to_be_bytes());
        addr.extend(200u32.to_be_bytes());
        ia.extend(tlv(opt::IAADDR, &addr));
        p.extend(tlv(opt::IA_NA, &ia));
        p.extend(tlv(opt::USER_CLASS, &[0, 4, b'i', b'P', b'X', b'E']));
        p.extend(tlv(
            opt::VENDOR_CLASS,
            &[
                0, 0, 1, 0x57, 0, 10, b'H', b'T', b'T', b'P', b'C', b'l', b'i', b'e', b'n', b't',
            ],
        ));
        p.extend(tlv(opt::CLIENT_ARCH_TYPE, &[0, 16, 0, 7]));
        p.extend(tlv(opt::ORO, &[0, 59, 0, 23]));
        p
    }

    #[test]
    fn parses_a_solicit() {
        let p = solicit();
        let m = Message::parse(&p).unwrap();
        assert_eq!(m.msg_type, msg::SOLICIT);
        assert_eq!(m.xid_u32(), 0xabcdef);
        assert_eq!(m.option(opt::CLIENTID).unwrap().len(), 10);
        assert_eq!(m.ias.len(), 1);
        assert_eq!(m.ias[0].iaid, 7);
        assert_eq!(
            m.ias[0].addrs[0].addr,
            "fd00::5".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            (m.ias[0].addrs[0].preferred, m.ias[0].addrs[0].valid),
            (100, 200)
        );
        assert_eq!(m.user_classes(), vec![&b"iPXE"[..]]);
        assert_eq!(m.vendor_classes(), vec![(343, &b"HTTPClient"[..])]);
        assert_eq!(m.architectures(), vec![16, 7]);
        assert_eq!(m.requested(), vec![59, 23]);
    }

    #[test]
    fn encodes_what_it_parses() {
        let ia = OptOut::nested(
            opt::IA_NA,
            &[0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2],
            &[OptOut::new(opt::IAADDR, [1u8; 24])],
        )
        .unwrap();
        let b = encode(
            msg::REPLY,
            [1, 2, 3],
            &[OptOut::new(opt::CLIENTID, [1, 2]), ia],
        )
        .unwrap();
        let m = Message::parse(&b).unwrap();
        assert_eq!((m.msg_type, m.xid), (msg::REPLY, [1, 2, 3]));
        assert_eq!(m.ias[0].iaid, 9);
        assert_eq!(m.ias[0].addrs.len(), 1);
        assert!(encode(1, [0; 3], &[OptOut::new(1, vec![0; 70_000])]).is_err());
    }

    #[test]
    fn hostile_input_never_panics() {
        // Truncations of a valid message at every length.
        let p = solicit();
        for n in 0..p.len() {
            let _ = Message::parse(&p[..n]);
        }
        assert_eq!(Message::parse(&[1, 2]), Err(ParseError::Short));
        // An option claiming 65535 bytes.
        assert_eq!(
            Message::parse(&[1, 0, 0, 0, 0, 1, 0xff, 0xff, 1]),
            Err(ParseError::TruncatedOption)
        );
        // A 3-byte option header.
        assert_eq!(
            Message::parse(&[1, 0, 0, 0, 0, 1, 0]),
            Err(ParseError::TruncatedOption)
        );
        // An IA_NA shorter than its 12-byte fixed part.
        assert_eq!(
            Message::parse(&[1, 0, 0, 0, 0, 3, 0, 2, 0, 0]),
            Err(ParseError::BadIa)
        );
        // Nested garbage in an IA_NA: a truncated IAADDR, then an IAADDR too short.
        let mut ia = vec![0u8; 12];
        ia.extend([0, 5, 0, 30, 1]);
        let bad = [&[1u8, 0, 0, 0][..], &tlv(opt::IA_NA, &ia)].concat();
        assert_eq!(Message::parse(&bad), Err(ParseError::TruncatedOption));
        let mut ia = vec![0u8; 12];
        ia.extend(tlv(opt::IAADDR, &[0; 20]));
        let bad = [&[1u8, 0, 0, 0][..], &tlv(opt::IA_NA, &ia)].concat();
        assert_eq!(Message::parse(&bad), Err(ParseError::BadIa));
        // Odd-length arch and ORO lists, vendor class without enterprise, user class with
        // a length past the end: read what is whole, never panic.
        let mut odd = vec![1u8, 0, 0, 0];
        odd.extend(tlv(opt::CLIENT_ARCH_TYPE, &[0, 16, 0]));
        odd.extend(tlv(opt::ORO, &[0]));
        odd.extend(tlv(opt::VENDOR_CLASS, &[0, 0]));
        odd.extend(tlv(opt::USER_CLASS, &[0xff, 0xff, 1, 2]));
        let m = Message::parse(&odd).unwrap();
        assert_eq!(m.architectures(), vec![16]);
        assert!(m.requested().is_empty());
        assert!(m.vendor_classes().is_empty());
        assert!(m.user_classes().is_empty());
        // Pseudo-random bytes.
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let mut b = vec![0u8; (x % 97) as usize];
            for v in &mut b {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = (x & 0xff) as u8;
                if x.is_multiple_of(5) {
                    *v = 0;
                }
            }
            if let Ok(m) = Message::parse(&b) {
                let _ = (m.user_classes(), m.vendor_classes(), m.architectures());
            }
        }
    }
}
