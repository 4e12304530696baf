//! Broadcast replies on a packet socket.
//!
//! A proxy OFFER on port 67 goes to 255.255.255.255:68 (the client has no address yet).
//! Through a UDP socket every such datagram is routed (a fresh route entry each time,
//! broadcasts are not cached), and the kernel loops a copy back into the local stack, where
//! it is dropped. ISC dhcpd sends these on a packet socket for the same reason; so does
//! Kindling: the IPv4 and UDP headers are written here, the kernel adds the Ethernet header
//! (destination ff:ff:ff:ff:ff:ff) and hands the frame to the interface. Opening the socket
//! needs CAP_NET_RAW; without it, or on any send error, replies go through the UDP socket.
//!
//! The socket is opened with protocol 0, so it never receives anything.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};

const ETH_P_IP: u16 = 0x0800;
const IP_HEADER: usize = 20;
const UDP_HEADER: usize = 8;

/// A send-only packet socket on one interface.
pub struct RawSender {
    fd: OwnedFd,
    /// Ethernet broadcast on the interface, carrying IPv4.
    broadcast: libc::sockaddr_ll,
    src: Ipv4Addr,
    next_id: AtomicU16,
}

impl RawSender {
    /// Opens the socket on `iface`; `src` is the source address written into replies.
    pub fn open(iface: &str, src: Ipv4Addr) -> io::Result<RawSender> {
        let name = std::ffi::CString::new(iface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
        // SAFETY: a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: plain socket(2) call; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut broadcast: libc::sockaddr_ll = unsafe { MaybeUninit::zeroed().assume_init() };
        broadcast.sll_family = libc::AF_PACKET as u16;
        broadcast.sll_protocol = ETH_P_IP.to_be();
        broadcast.sll_ifindex = ifindex as i32;
        broadcast.sll_halen = 6;
        broadcast.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        Ok(RawSender {
            fd,
            broadcast,
            src,
            next_id: AtomicU16::new(1),
        })
    }

    /// IPv4 + UDP headers and `payload`, from `src_port` to `dest`.
    pub fn frame(&self, src_port: u16, dest: SocketAddrV4, payload: &[u8]) -> Option<Vec<u8>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        build_frame(self.src, src_port, dest, payload, id)
    }

    /// Sends the frames as broadcasts without blocking; returns how many the kernel took.
    pub fn send_batch(&self, frames: &[Vec<u8>]) -> io::Result<usize> {
        let mut addrs = vec![self.broadcast; frames.len()];
        crate::mmsg::send_each(
            self.fd.as_raw_fd(),
            frames.iter().map(Vec::as_slice),
            &mut addrs,
            libc::MSG_DONTWAIT,
        )
    }
}

/// One's-complement sum of 16-bit words (an odd last byte padded with zero).
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// IPv4 (no options, TTL 64, DF clear) + UDP (with checksum) + payload.
fn build_frame(
    src: Ipv4Addr,
    src_port: u16,
    dest: SocketAddrV4,
    payload: &[u8],
    id: u16,
) -> Option<Vec<u8>> {
    let udp_len = u16::try_from(UDP_HEADER + payload.len()).ok()?;
    let total = u16::try_from(IP_HEADER + UDP_HEADER + payload.len()).ok()?;
    let mut f = Vec::with_capacity(usize::from(total));
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&[0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dest.ip().octets());
    let ip_sum = fold(sum16(0, &f));
    f[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    f.extend_from_slice(&src_port.to_be_bytes());
    f.extend_from_slice(&dest.port().to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    // Pseudo-header: source, destination, zero, protocol, UDP length.
    let mut acc = sum16(0, &src.octets());
    acc = sum16(acc, &dest.ip().octets());
    acc += 17 + u32::from(udp_len);
    acc = sum16(acc, &f[IP_HEADER..]);
    let udp_sum = match fold(acc) {
        0 => 0xffff,
        s => s,
    };
    f[IP_HEADER + 6..IP_HEADER + 8].copy_from_slice(&udp_sum.to_be_bytes());
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_checksums_verify() {
        let payload: Vec<u8> = (0..301u16).map(|i| (i * 7) as u8).collect();
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dest = SocketAddrV4::new(Ipv4Addr::BROADCAST, 68);
        let f = build_frame(src, 67, dest, &payload, 0x1234).unwrap_or_default();
        assert_eq!(f.len(), 20 + 8 + 301);
        assert_eq!(f[0], 0x45);
        assert_eq!(u16::from_be_bytes([f[2], f[3]]), 329);
        assert_eq!(u16::from_be_bytes([f[4], f[5]]), 0x1234);
        assert_eq!((f[8], f[9]), (64, 17));
        assert_eq!(&f[12..16], &[10, 0, 0, 1]);
        assert_eq!(&f[16..20], &[255, 255, 255, 255]);
        // A correct IPv4 header sums to 0xffff (checksum included).
        assert_eq!(fold(sum16(0, &f[..20])), 0);
        assert_eq!(u16::from_be_bytes([f[20], f[21]]), 67);
        assert_eq!(u16::from_be_bytes([f[22], f[23]]), 68);
        assert_eq!(u16::from_be_bytes([f[24], f[25]]), 309);
        // Same for UDP with its pseudo-header.
        let mut acc = sum16(0, &f[12..20]);
        acc += 17 + 309;
        assert_eq!(fold(sum16(acc, &f[20..])), 0);
        assert_eq!(&f[28..], &payload[..]);
    }

    #[test]
    fn known_header_checksum() {
        // The classic example header (RFC 1071 style) with its published checksum 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(fold(sum16(0, &h)), 0xb861);
    }
}
