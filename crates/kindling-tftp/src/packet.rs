//! TFTP packet codec (RFC 1350, options per RFC 2347).
//!
//! Parsing never panics: every malformed input yields a [`PacketError`].

use std::fmt;

/// Opcode numbers from RFC 1350 / RFC 2347.
pub mod opcode {
    pub const RRQ: u16 = 1;
    pub const WRQ: u16 = 2;
    pub const DATA: u16 = 3;
    pub const ACK: u16 = 4;
    pub const ERROR: u16 = 5;
    pub const OACK: u16 = 6;
}

/// Largest block size allowed by RFC 2348.
pub const MAX_BLKSIZE: u16 = 65464;
/// Smallest block size allowed by RFC 2348.
pub const MIN_BLKSIZE: u16 = 8;
/// Block size used when the client negotiates none (RFC 1350).
pub const DEFAULT_BLKSIZE: u16 = 512;

/// TFTP error codes (RFC 1350, RFC 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    NotDefined,
    FileNotFound,
    AccessViolation,
    DiskFull,
    IllegalOperation,
    UnknownTid,
    FileExists,
    NoSuchUser,
    OptionRefused,
    Other(u16),
}

impl ErrorCode {
    pub fn from_u16(v: u16) -> Self {
        match v {
            0 => Self::NotDefined,
            1 => Self::FileNotFound,
            2 => Self::AccessViolation,
            3 => Self::DiskFull,
            4 => Self::IllegalOperation,
            5 => Self::UnknownTid,
            6 => Self::FileExists,
            7 => Self::NoSuchUser,
            8 => Self::OptionRefused,
            o => Self::Other(o),
        }
    }

    pub fn as_u16(self) -> u16 {
        match self {
            Self::NotDefined => 0,
            Self::FileNotFound => 1,
            Self::AccessViolation => 2,
            Self::DiskFull => 3,
            Self::IllegalOperation => 4,
            Self::UnknownTid => 5,
            Self::FileExists => 6,
            Self::NoSuchUser => 7,
            Self::OptionRefused => 8,
            Self::Other(o) => o,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u16())
    }
}

/// Transfer mode named in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Octet,
    /// Served byte for byte like octet (no CR/LF translation); see crate docs.
    Netascii,
    Mail,
}

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub filename: String,
    pub mode: Mode,
    /// Options in the order received; names lower-cased, values as sent.
    /// When a name appears twice only the first occurrence is kept.
    pub options: Vec<(String, String)>,
}

/// A decoded TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Rrq(Request),
    Wrq(Request),
    Data { block: u16, data: Vec<u8> },
    Ack { block: u16 },
    Error { code: ErrorCode, message: String },
    Oack { options: Vec<(String, String)> },
}

/// Why a datagram could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("packet shorter than 4 bytes ({0})")]
    TooShort(usize),
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    #[error("string field not NUL-terminated")]
    Unterminated,
    #[error("string field is not valid UTF-8")]
    NotUtf8,
    #[error("empty file name")]
    EmptyFilename,
    #[error("unknown transfer mode {0:?}")]
    UnknownMode(String),
}

/// Decode one datagram.
pub fn parse(buf: &[u8]) -> Result<Packet, PacketError> {
    let (op, rest) = match buf {
        [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
        _ => return Err(PacketError::TooShort(buf.len())),
    };
    match op {
        opcode::RRQ => parse_request(rest).map(Packet::Rrq),
        opcode::WRQ => parse_request(rest).map(Packet::Wrq),
        opcode::DATA => match rest {
            [a, b, data @ ..] => Ok(Packet::Data {
                block: u16::from_be_bytes([*a, *b]),
                data: data.to_vec(),
            }),
            _ => Err(PacketError::TooShort(buf.len())),
        },
        // Trailing bytes after the block number are tolerated (some stacks pad).
        opcode::ACK => match rest {
            [a, b, ..] => Ok(Packet::Ack {
                block: u16::from_be_bytes([*a, *b]),
            }),
            _ => Err(PacketError::TooShort(buf.len())),
        },
        opcode::ERROR => match rest {
            [a, b, msg @ ..] => {
                // Lenient: a missing terminator or bad UTF-8 still yields the code.
                let end = msg.iter().position(|&c| c == 0).unwrap_or(msg.len());
                let message =
                    String::from_utf8_lossy(msg.get(..end).unwrap_or_default()).into_owned();
                Ok(Packet::Error {
                    code: ErrorCode::from_u16(u16::from_be_bytes([*a, *b])),
                    message,
                })
            }
            _ => Err(PacketError::TooShort(buf.len())),
        },
        opcode::OACK => Ok(Packet::Oack {
            options: parse_options(rest)?,
        }),
        other => Err(PacketError::UnknownOpcode(other)),
    }
}

/// Split off one NUL-terminated string.
fn take_str(buf: &[u8]) -> Result<(&str, &[u8]), PacketError> {
    let pos = buf
        .iter()
        .position(|&c| c == 0)
        .ok_or(PacketError::Unterminated)?;
    let (s, rest) = buf.split_at(pos);
    let rest = rest.get(1..).unwrap_or_default();
    let s = std::str::from_utf8(s).map_err(|_| PacketError::NotUtf8)?;
    Ok((s, rest))
}

fn parse_request(buf: &[u8]) -> Result<Request, PacketError> {
    let (filename, rest) = take_str(buf)?;
    if filename.is_empty() {
        return Err(PacketError::EmptyFilename);
    }
    let (mode, rest) = take_str(rest)?;
    let mode = match mode.to_ascii_lowercase().as_str() {
        "octet" => Mode::Octet,
        "netascii" => Mode::Netascii,
        "mail" => Mode::Mail,
        _ => return Err(PacketError::UnknownMode(mode.to_string())),
    };
    Ok(Request {
        filename: filename.to_string(),
        mode,
        options: parse_options(rest)?,
    })
}

/// Parse `name\0value\0` pairs. A trailing incomplete pair and padding NULs are
/// ignored (seen from some PXE ROMs); non-UTF-8 options are skipped.
fn parse_options(mut buf: &[u8]) -> Result<Vec<(String, String)>, PacketError> {
    let mut out: Vec<(String, String)> = Vec::new();
    while !buf.is_empty() {
        let Some(npos) = buf.iter().position(|&c| c == 0) else {
            break;
        };
        let (name, rest) = buf.split_at(npos);
        let rest = rest.get(1..).unwrap_or_default();
        if name.is_empty() {
            buf = rest;
            continue;
        }
        let Some(vpos) = rest.iter().position(|&c| c == 0) else {
            break;
        };
        let (value, rest2) = rest.split_at(vpos);
        buf = rest2.get(1..).unwrap_or_default();
        let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value)) else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if out.iter().any(|(n, _)| *n == name) {
            continue;
        }
        out.push((name, value.to_string()));
    }
    Ok(out)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn mode_str(m: Mode) -> &'static str {
    match m {
        Mode::Octet => "octet",
        Mode::Netascii => "netascii",
        Mode::Mail => "mail",
    }
}

impl Packet {
    /// Encode into a fresh buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Packet::Rrq(r) | Packet::Wrq(r) => {
                let op = if matches!(self, Packet::Rrq(_)) {
                    opcode::RRQ
                } else {
                    opcode::WRQ
                };
                out.extend_from_slice(&op.to_be_bytes());
                put_str(&mut out, &r.filename);
                put_str(&mut out, mode_str(r.mode));
                for (n, v) in &r.options {
                    put_str(&mut out, n);
                    put_str(&mut out, v);
                }
            }
            Packet::Data { block, data } => {
                out.extend_from_slice(&opcode::DATA.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                out.extend_from_slice(&opcode::ACK.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => return encode_error(*code, message),
            Packet::Oack { options } => {
                out.extend_from_slice(&opcode::OACK.to_be_bytes());
                for (n, v) in options {
                    put_str(&mut out, n);
                    put_str(&mut out, v);
                }
            }
        }
        out
    }
}

/// Encode an ERROR packet. NUL bytes in the message are dropped.
pub fn encode_error(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.extend_from_slice(&opcode::ERROR.to_be_bytes());
    out.extend_from_slice(&code.as_u16().to_be_bytes());
    out.extend(message.bytes().filter(|&b| b != 0));
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rrq_with_options() {
        let raw = b"\x00\x01boot/undionly.kpxe\x00OCTET\x00BlkSize\x001468\x00tsize\x000\x00blksize\x00512\x00";
        let p = parse(raw).unwrap();
        let Packet::Rrq(r) = p else { panic!("not rrq") };
        assert_eq!(r.filename, "boot/undionly.kpxe");
        assert_eq!(r.mode, Mode::Octet);
        assert_eq!(
            r.options,
            vec![
                ("blksize".to_string(), "1468".to_string()),
                ("tsize".to_string(), "0".to_string())
            ]
        );
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(parse(b""), Err(PacketError::TooShort(0)));
        assert_eq!(parse(b"\x00"), Err(PacketError::TooShort(1)));
        assert_eq!(parse(b"\x00\x09xx"), Err(PacketError::UnknownOpcode(9)));
        assert_eq!(parse(b"\x00\x01abc"), Err(PacketError::Unterminated));
        assert_eq!(
            parse(b"\x00\x01abc\x00octet"),
            Err(PacketError::Unterminated)
        );
        assert_eq!(
            parse(b"\x00\x01\x00octet\x00"),
            Err(PacketError::EmptyFilename)
        );
        assert_eq!(
            parse(b"\x00\x01\xff\x00octet\x00"),
            Err(PacketError::NotUtf8)
        );
        assert!(matches!(
            parse(b"\x00\x01a\x00bogus\x00"),
            Err(PacketError::UnknownMode(_))
        ));
        assert_eq!(parse(b"\x00\x04\x01"), Err(PacketError::TooShort(3)));
    }

    #[test]
    fn roundtrip() {
        let pkts = vec![
            Packet::Rrq(Request {
                filename: "a".into(),
                mode: Mode::Octet,
                options: vec![("windowsize".into(), "16".into())],
            }),
            Packet::Wrq(Request {
                filename: "b/c".into(),
                mode: Mode::Netascii,
                options: vec![],
            }),
            Packet::Data {
                block: 65535,
                data: vec![1, 2, 3],
            },
            Packet::Ack { block: 7 },
            Packet::Error {
                code: ErrorCode::OptionRefused,
                message: "no".into(),
            },
            Packet::Oack {
                options: vec![("tsize".into(), "99".into())],
            },
        ];
        for p in pkts {
            assert_eq!(parse(&p.encode()).unwrap(), p);
        }
    }

    #[test]
    fn error_lenient_and_ack_padding() {
        assert_eq!(
            parse(b"\x00\x05\x00\x08abc").unwrap(),
            Packet::Error {
                code: ErrorCode::OptionRefused,
                message: "abc".into()
            }
        );
        assert_eq!(
            parse(b"\x00\x04\x00\x02\x00\x00").unwrap(),
            Packet::Ack { block: 2 }
        );
    }
}
