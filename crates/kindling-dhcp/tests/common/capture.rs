//! Seeing what went over a link: an AF_PACKET sniffer in a namespace, and pcap files.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::atomic::Ordering;

use kindling_testkit::Netns;

/// Reads UDP payloads (src ip, src port, payload) out of a pcap file of Ethernet frames.
pub fn pcap_udp(path: &Path) -> Vec<(Ipv4Addr, u16, Vec<u8>)> {
    let data = std::fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    if data.len() < 24 {
        return out;
    }
    let le = data[0..4] == [0xd4, 0xc3, 0xb2, 0xa1];
    let rd = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut i = 24;
    while i + 16 <= data.len() {
        let incl = rd(&data[i + 8..i + 12]) as usize;
        let frame = &data[i + 16..(i + 16 + incl).min(data.len())];
        i += 16 + incl;
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = ((ip[0] & 0x0f) as usize) * 4;
        if ip[9] != 17 || ip.len() < ihl + 8 {
            continue;
        }
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let udp = &ip[ihl..];
        let sport = u16::from_be_bytes([udp[0], udp[1]]);
        out.push((src, sport, udp[8..].to_vec()));
    }
    out
}

/// One IPv4/UDP datagram seen by a [`Sniffer`].
#[derive(Clone, Debug)]
pub struct Frame {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The BOOTP xid when this is a BOOTREPLY.
    pub fn reply_xid(&self) -> Option<u32> {
        let p = &self.payload;
        (p.len() >= 8 && p[0] == 2).then(|| u32::from_be_bytes([p[4], p[5], p[6], p[7]]))
    }
}

/// Captures every IPv4/UDP frame on one interface of a namespace (an AF_PACKET socket, in
/// and out), without tcpdump. Stopped (and its thread joined) by `stop` or on drop.
pub struct Sniffer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Frame>>>,
}

impl Sniffer {
    pub fn start(ns: &Netns, dev: &str) -> Self {
        use std::os::fd::{FromRawFd, OwnedFd};
        let dev = dev.to_string();
        let fd: OwnedFd = ns.run(move || unsafe {
            let proto = (libc::ETH_P_ALL as u16).to_be();
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            let fd = OwnedFd::from_raw_fd(fd);
            let name = std::ffi::CString::new(dev.clone()).unwrap();
            let index = libc::if_nametoindex(name.as_ptr());
            assert!(index > 0, "no interface {dev}");
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = index as i32;
            let r = libc::bind(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
            fd
        });
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut buf = vec![0u8; 65536];
            while !s2.load(Ordering::SeqCst) {
                let n = unsafe {
                    libc::recv(
                        std::os::fd::AsRawFd::as_raw_fd(&fd),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                        0,
                    )
                };
                if n <= 0 {
                    continue;
                }
                if let Some(f) = parse_frame(&buf[..n as usize]) {
                    out.push(f);
                }
            }
            out
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops capturing; every frame seen.
    pub fn stop(mut self) -> Vec<Frame> {
        self.finish()
    }

    fn finish(&mut self) -> Vec<Frame> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// An Ethernet frame (as AF_PACKET gives them, also on `lo`) to an IPv4/UDP [`Frame`].
fn parse_frame(frame: &[u8]) -> Option<Frame> {
    if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    if ip[9] != 17 || ip.len() < ihl + 8 {
        return None;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let udp = &ip[ihl..];
    Some(Frame {
        src: SocketAddrV4::new(src, u16::from_be_bytes([udp[0], udp[1]])),
        dst: SocketAddrV4::new(dst, u16::from_be_bytes([udp[2], udp[3]])),
        payload: udp[8..].to_vec(),
    })
}
