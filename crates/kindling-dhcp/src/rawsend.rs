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

    /// Adds IPv4 + UDP headers and `payload`, from `src_port` to `dest`, to `frames`; false
    /// (nothing added) when the datagram would be over 65,535 bytes.
    pub fn push_frame(
        &self,
        frames: &mut Frames,
        src_port: u16,
        dest: SocketAddrV4,
        payload: &[u8],
    ) -> bool {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        frames.push(self.src, src_port, dest, payload, id)
    }

    /// Sends the frames as broadcasts without blocking; returns how many the kernel took
    /// (the first ones).
    pub fn send_batch(&self, frames: &Frames) -> io::Result<usize> {
        let mut addrs = vec![self.broadcast; frames.len()];
        crate::mmsg::send_each(
            self.fd.as_raw_fd(),
            frames.iter(),
            &mut addrs,
            libc::MSG_DONTWAIT,
        )
    }
}

/// Frames for one batch, back to back in one buffer (not a buffer each).
#[derive(Debug, Default)]
pub struct Frames {
    buf: Vec<u8>,
    /// Where each frame ends in `buf`.
    ends: Vec<usize>,
}

impl Frames {
    /// Adds IPv4 (no options, TTL 64, DF clear) + UDP (with checksum) + payload; false
    /// (nothing added) when the total would not fit IPv4's 16-bit length.
    fn push(
        &mut self,
        src: Ipv4Addr,
        src_port: u16,
        dest: SocketAddrV4,
        payload: &[u8],
        id: u16,
    ) -> bool {
        let (Ok(udp_len), Ok(total)) = (
            u16::try_from(UDP_HEADER + payload.len()),
            u16::try_from(IP_HEADER + UDP_HEADER + payload.len()),
        ) else {
            return false;
        };
        let f = &mut self.buf;
        let start = f.len();
        f.reserve(usize::from(total));
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&[0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dest.ip().octets());
        let ip_sum = checksum(&f[start..]);
        f[start + 10..start + 12].copy_from_slice(&ip_sum.to_be_bytes());
        f.extend_from_slice(&src_port.to_be_bytes());
        f.extend_from_slice(&dest.port().to_be_bytes());
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        // Pseudo-header: source, destination, zero, protocol, UDP length.
        let mut acc = sum16(0, &src.octets());
        acc = sum16(acc, &dest.ip().octets());
        acc += 17 + u32::from(udp_len);
        acc = sum16(acc, &f[start + IP_HEADER..]);
        let udp_sum = match fold(acc) {
            0 => 0xffff,
            s => s,
        };
        let at = start + IP_HEADER + 6;
        f[at..at + 2].copy_from_slice(&udp_sum.to_be_bytes());
        self.ends.push(f.len());
        true
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The frames, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| self.buf.get(start..end).unwrap_or_default())
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

/// The Internet checksum (RFC 1071) of `data`: IPv4 headers here, ICMP echoes in the
/// full mode's address probe.
pub(crate) fn checksum(data: &[u8]) -> u16 {
    fold(sum16(0, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_checksums_verify() {
        let payload: Vec<u8> = (0..301u16).map(|i| (i * 7) as u8).collect();
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dest = SocketAddrV4::new(Ipv4Addr::BROADCAST, 68);
        // After another frame in the same buffer: each frame's sums are its own.
        let mut frames = Frames {
            buf: vec![0xa5; 57],
            ends: vec![57],
        };
        assert!(frames.push(src, 67, dest, &payload, 0x1234));
        let f = &frames.buf[57..];
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
    fn frames_are_kept_apart() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dest = SocketAddrV4::new(Ipv4Addr::BROADCAST, 68);
        let mut frames = Frames::default();
        assert_eq!(frames.len(), 0);
        for (n, fill) in [(300, 1u8), (0, 2), (548, 3)] {
            assert!(frames.push(src, 67, dest, &vec![fill; n], u16::from(fill)));
        }
        // Too long for IPv4: refused, nothing added.
        assert!(!frames.push(src, 67, dest, &vec![9; 65_535 - 28 + 1], 9));
        assert_eq!(frames.len(), 3);
        let got: Vec<&[u8]> = frames.iter().collect();
        assert_eq!(got.len(), 3);
        for (f, (n, fill)) in got.iter().zip([(300, 1u8), (0, 2), (548, 3)]) {
            assert_eq!(f.len(), 28 + n);
            assert_eq!(u16::from_be_bytes([f[4], f[5]]), u16::from(fill));
            assert!(f[28..].iter().all(|b| *b == fill));
            assert_eq!(fold(sum16(0, &f[..20])), 0);
        }
        // The largest datagram IPv4 carries still fits.
        assert!(frames.push(src, 67, dest, &vec![7; 65_535 - 28], 7));
        assert_eq!(frames.iter().last().map(<[u8]>::len), Some(65_535));
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
