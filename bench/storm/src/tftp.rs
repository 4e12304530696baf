//! TFTP read as iPXE's PXE ROM loader does it: RRQ with blksize 1468 and tsize 0 (no
//! windowsize), lock-step ACKs, retransmission of the last packet after 1 s of silence.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::timeout;

pub const BLKSIZE: usize = 1468;
const RETRANSMIT: Duration = Duration::from_secs(1);
/// Retransmissions of one ACK before the transfer is abandoned.
const MAX_TIMEOUTS: u32 = 10;
/// Transfers restarted after an ERROR (e.g. "server busy") before giving up, and RRQs
/// resent while nothing answers: the same 30 tries of 1 s whether a full server refuses a
/// request (Kindling) or drops it (dnsmasq).
const MAX_RESTARTS: u32 = 30;

const RRQ: u16 = 1;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

pub fn rrq(file: &str) -> Vec<u8> {
    let mut p = RRQ.to_be_bytes().to_vec();
    for s in [file, "octet", "blksize", &BLKSIZE.to_string(), "tsize", "0"] {
        p.extend_from_slice(s.as_bytes());
        p.push(0);
    }
    p
}

pub fn ack(block: u16) -> [u8; 4] {
    let b = block.to_be_bytes();
    [0, ACK as u8, b[0], b[1]]
}

#[derive(Debug, PartialEq)]
pub enum Packet<'a> {
    Data(u16, &'a [u8]),
    Oack(Vec<(String, String)>),
    Error(u16, String),
}

pub fn parse(p: &[u8]) -> Option<Packet<'_>> {
    if p.len() < 4 {
        return None;
    }
    let op = u16::from_be_bytes([p[0], p[1]]);
    let strings = |b: &[u8]| -> Vec<String> {
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        b.split(|&c| c == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    };
    match op {
        DATA => Some(Packet::Data(u16::from_be_bytes([p[2], p[3]]), &p[4..])),
        ERROR => Some(Packet::Error(
            u16::from_be_bytes([p[2], p[3]]),
            strings(&p[4..]).into_iter().next().unwrap_or_default(),
        )),
        OACK => {
            let s = strings(&p[2..]);
            Some(Packet::Oack(
                s.chunks(2)
                    .filter(|c| c.len() == 2)
                    .map(|c| (c[0].to_ascii_lowercase(), c[1].clone()))
                    .collect(),
            ))
        }
        _ => None,
    }
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub bytes: u64,
    /// Retransmissions after 1 s of silence.
    pub retries: u32,
    /// Transfers refused with an ERROR and started again after 1 s.
    pub errors: u32,
}

/// Reads `file` from `server:69` out of `sock` (bound to the machine's address and its own
/// port).
pub async fn fetch(sock: &UdpSocket, server: SocketAddrV4, file: &str) -> io::Result<Outcome> {
    let mut out = Outcome::default();
    let mut buf = vec![0u8; 65536];
    'restart: loop {
        let mut last: Vec<u8> = rrq(file);
        let mut dest = SocketAddr::V4(server);
        let mut tid: Option<SocketAddr> = None;
        let mut blksize = 512usize;
        let mut tsize: Option<u64> = None;
        let mut expect: u16 = 1;
        let mut got = 0u64;
        let mut timeouts = 0;
        sock.send_to(&last, dest).await?;
        loop {
            let (n, from) = match timeout(RETRANSMIT, sock.recv_from(&mut buf)).await {
                Ok(r) => r?,
                Err(_) => {
                    timeouts += 1;
                    let limit = if tid.is_none() {
                        MAX_RESTARTS
                    } else {
                        MAX_TIMEOUTS
                    };
                    if timeouts > limit {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "tftp: no answer"));
                    }
                    out.retries += 1;
                    sock.send_to(&last, dest).await?;
                    continue;
                }
            };
            if tid.is_some_and(|t| t != from) {
                continue; // another transfer's stray packet
            }
            match parse(&buf[..n]) {
                Some(Packet::Error(code, msg)) => {
                    out.errors += 1;
                    if out.errors > MAX_RESTARTS {
                        return Err(io::Error::other(format!("tftp error {code}: {msg}")));
                    }
                    tokio::time::sleep(RETRANSMIT).await;
                    continue 'restart;
                }
                Some(Packet::Oack(opts)) if tid.is_none() => {
                    tid = Some(from);
                    dest = from;
                    for (k, v) in opts {
                        match k.as_str() {
                            "blksize" => blksize = v.parse().unwrap_or(512),
                            "tsize" => tsize = v.parse().ok(),
                            _ => {}
                        }
                    }
                    last = ack(0).to_vec();
                    timeouts = 0;
                    sock.send_to(&last, dest).await?;
                }
                Some(Packet::Data(block, data)) => {
                    if tid.is_none() {
                        tid = Some(from); // the server ignored the options
                        dest = from;
                    }
                    if block == expect {
                        got += data.len() as u64;
                        last = ack(block).to_vec();
                        timeouts = 0;
                        sock.send_to(&last, dest).await?;
                        if data.len() < blksize {
                            if let Some(t) = tsize.filter(|&t| t != got) {
                                return Err(io::Error::other(format!(
                                    "tftp: tsize {t}, received {got}"
                                )));
                            }
                            out.bytes = got;
                            return Ok(out);
                        }
                        expect = expect.wrapping_add(1);
                    } else if block == expect.wrapping_sub(1) {
                        sock.send_to(&last, dest).await?; // our ACK was lost: say it again
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrq_has_blksize_and_tsize_but_no_windowsize() {
        let p = rrq("undionly.kpxe");
        assert_eq!(&p[..2], &[0, 1]);
        assert_eq!(
            &p[2..],
            b"undionly.kpxe\0octet\0blksize\x001468\0tsize\x000\0"
        );
        assert!(!p.windows(10).any(|w| w == b"windowsize"));
    }

    #[test]
    fn parses_server_packets() {
        assert_eq!(
            parse(b"\0\x06blksize\x001468\0TSIZE\x0074213\0"),
            Some(Packet::Oack(vec![
                ("blksize".into(), "1468".into()),
                ("tsize".into(), "74213".into())
            ]))
        );
        assert_eq!(
            parse(b"\0\x03\x01\x02abc"),
            Some(Packet::Data(0x0102, b"abc"))
        );
        assert_eq!(
            parse(b"\0\x05\0\x03server busy\0"),
            Some(Packet::Error(3, "server busy".into()))
        );
        assert_eq!(parse(b"\0\x04\0\x01"), None);
        assert_eq!(ack(0x1234), [0, 4, 0x12, 0x34]);
    }
}
