//! Conflict detection before an offer: one ICMP echo to the address (as dnsmasq does, and
//! Kea's ping-check), on a raw socket (root or CAP_NET_RAW). An answer means another host
//! uses the address, whatever the lease table says.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::rawsend::checksum;

/// Echo requests in flight at most; beyond, offers go out without the check (a flood of new
/// clients must not pile up blocking threads).
pub(super) const MAX_PROBES: usize = 64;

/// An echo request with `id` and `seq`.
fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(b"kindling dhcp probe");
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// Is `datagram` (an IPv4 packet as a raw socket returns it) an echo reply from `from` with
/// `id` and `seq`?
fn is_reply(datagram: &[u8], from: Ipv4Addr, id: u16, seq: u16) -> bool {
    let Some(&v) = datagram.first() else {
        return false;
    };
    let ihl = usize::from(v & 0x0f) * 4;
    let src = match datagram.get(12..16) {
        Some(s) => Ipv4Addr::new(s[0], s[1], s[2], s[3]),
        None => return false,
    };
    let Some(icmp) = datagram.get(ihl..) else {
        return false;
    };
    src == from
        && icmp.first() == Some(&0)
        && icmp.get(4..6) == Some(&id.to_be_bytes()[..])
        && icmp.get(6..8) == Some(&seq.to_be_bytes()[..])
}

/// Sends one echo request to `ip` and waits up to `timeout` for its reply: `Ok(true)` when
/// something answered. Blocking: run it on a blocking thread.
pub(super) fn echo(ip: Ipv4Addr, timeout: Duration, id: u16, seq: u16) -> io::Result<bool> {
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
    let dest = SocketAddrV4::new(ip, 0);
    sock.send_to(&echo_request(id, seq), &dest.into())?;
    let deadline = Instant::now() + timeout;
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        match sock.recv(&mut buf) {
            Ok(n) => {
                // SAFETY: `recv` initialised the first `n` bytes.
                let got: &[u8] =
                    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n.min(1500)) };
                if is_reply(got, ip, id, seq) {
                    return Ok(true);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_checksums_to_zero_and_replies_are_matched() {
        let p = echo_request(0x1234, 7);
        assert_eq!(checksum(&p), 0);
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 9, 10, 0, 0, 1,
        ];
        let mut reply = p.clone();
        reply[0] = 0;
        ip.extend_from_slice(&reply);
        let from = Ipv4Addr::new(10, 0, 0, 9);
        assert!(is_reply(&ip, from, 0x1234, 7));
        assert!(!is_reply(&ip, Ipv4Addr::new(10, 0, 0, 8), 0x1234, 7));
        assert!(!is_reply(&ip, from, 0x1235, 7));
        assert!(!is_reply(&ip[..22], from, 0x1234, 7));
        assert!(!is_reply(&[], from, 0x1234, 7));
    }
}
