//! DHCP as BIOS PXE firmware speaks it: the DISCOVER (broadcast from 0.0.0.0, as a ROM
//! without an address sends it), the port-4011 REQUEST, and the parsing of the proxy's
//! OFFER and ACK. Encoding and parsing are written here (no Kindling crate), so the tool
//! measures every server the same way.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
pub const PXE_PORT: u16 = 4011;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Offsets in the BOOTP header.
const XID: usize = 4;
const CIADDR: usize = 12;
const SIADDR: usize = 20;
const CHADDR: usize = 28;
const SNAME: usize = 44;
const FILE: usize = 108;
const OPTIONS: usize = 236;
pub const VENDOR_CLASS: &[u8] = b"PXEClient:Arch:00000:UNDI:002001";

pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const ACK: u8 = 5;

/// One simulated machine as DHCP sees it.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    pub xid: u32,
    pub mac: [u8; 6],
    pub uuid: [u8; 16],
}

/// A BOOTREQUEST from `c`: `msg_type`, `ciaddr`, and for port 4011 the boot item
/// (option 43, PXE_BOOT_ITEM: type and layer) chosen from the OFFER.
pub fn encode(
    c: &Client,
    msg_type: u8,
    ciaddr: Ipv4Addr,
    boot_item: Option<(u16, u16)>,
) -> Vec<u8> {
    let mut p = vec![0u8; OPTIONS];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[XID..XID + 4].copy_from_slice(&c.xid.to_be_bytes());
    if ciaddr.is_unspecified() {
        p[10] = 0x80; // broadcast flag, as PXE ROMs set it
    }
    p[CIADDR..CIADDR + 4].copy_from_slice(&ciaddr.octets());
    p[CHADDR..CHADDR + 6].copy_from_slice(&c.mac);
    p.extend_from_slice(&MAGIC);
    let mut opt = |code: u8, val: &[u8]| {
        p.push(code);
        p.push(val.len() as u8);
        p.extend_from_slice(val);
    };
    opt(53, &[msg_type]);
    opt(57, &1260u16.to_be_bytes()); // maximum message size
    opt(
        55,
        &[
            1, 2, 3, 5, 6, 11, 12, 13, 15, 16, 17, 18, 43, 54, 60, 66, 67, 128, 129, 130, 131,
        ],
    );
    opt(93, &[0, 0]); // client architecture: x86 BIOS
    opt(94, &[1, 2, 1]); // network interface: UNDI 2.1
    let mut uuid = [0u8; 17];
    uuid[1..].copy_from_slice(&c.uuid);
    opt(97, &uuid);
    opt(60, VENDOR_CLASS);
    if let Some((t, l)) = boot_item {
        let mut v = vec![71, 4];
        v.extend_from_slice(&t.to_be_bytes());
        v.extend_from_slice(&l.to_be_bytes());
        v.push(255);
        opt(43, &v);
    }
    p.push(255);
    // Pad to the 300-byte BOOTP minimum, as firmware does.
    if p.len() < 300 {
        p.resize(300, 0);
    }
    p
}

/// What the tool reads from a BOOTREPLY.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub xid: u32,
    pub mac: [u8; 6],
    pub msg_type: u8,
    pub siaddr: Ipv4Addr,
    pub file: String,
    pub vendor_class: Vec<u8>,
    /// The boot item to ask port 4011 for: option 43's PXE_BOOT_ITEM (71), else the first
    /// item of its PXE_BOOT_MENU (9), with layer 0.
    pub boot_item: Option<(u16, u16)>,
}

impl Reply {
    /// A proxy's answer to PXE firmware says `PXEClient` in option 60.
    pub fn is_pxe(&self) -> bool {
        self.vendor_class.starts_with(b"PXEClient")
    }
}

pub fn parse(p: &[u8]) -> Option<Reply> {
    if p.len() < OPTIONS + 4 || p[0] != 2 || p[OPTIONS..OPTIONS + 4] != MAGIC {
        return None;
    }
    let cstr = |b: &[u8]| {
        let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    let mut r = Reply {
        xid: u32::from_be_bytes(p[XID..XID + 4].try_into().ok()?),
        mac: p[CHADDR..CHADDR + 6].try_into().ok()?,
        siaddr: Ipv4Addr::from(<[u8; 4]>::try_from(&p[SIADDR..SIADDR + 4]).ok()?),
        file: cstr(&p[FILE..FILE + 128]),
        msg_type: 0,
        vendor_class: Vec::new(),
        boot_item: None,
    };
    let _sname = cstr(&p[SNAME..SNAME + 64]);
    for (code, val) in options(&p[OPTIONS + 4..]) {
        match code {
            53 if !val.is_empty() => r.msg_type = val[0],
            60 => r.vendor_class = val.to_vec(),
            67 if r.file.is_empty() => r.file = cstr(val),
            43 => {
                for (sub, v) in options(val) {
                    match sub {
                        71 if v.len() >= 4 => {
                            r.boot_item = Some((
                                u16::from_be_bytes([v[0], v[1]]),
                                u16::from_be_bytes([v[2], v[3]]),
                            ))
                        }
                        9 if v.len() >= 3 && r.boot_item.is_none() => {
                            r.boot_item = Some((u16::from_be_bytes([v[0], v[1]]), 0))
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(r)
}

/// Code/value pairs of a DHCP option area (pad 0 skipped, stops at 255 or a truncation).
fn options(mut b: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        loop {
            match *b.first()? {
                0 => b = &b[1..],
                255 => return None,
                code => {
                    let len = *b.get(1)? as usize;
                    let val = b.get(2..2 + len)?;
                    b = &b[2 + len..];
                    return Some((code, val));
                }
            }
        }
    })
}

/// IPv4 + UDP headers around `payload`, from 0.0.0.0:68 to 255.255.255.255:67.
pub fn ip_udp_broadcast(payload: &[u8]) -> Vec<u8> {
    let (src, dst) = (Ipv4Addr::UNSPECIFIED.octets(), Ipv4Addr::BROADCAST.octets());
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut f = Vec::with_capacity(total);
    f.extend_from_slice(&[0x45, 0x00]);
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]); // id, flags, TTL, UDP, checksum
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let sum = checksum(&[&f[..20]]);
    f[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    f.extend_from_slice(&SERVER_PORT.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    let sum = match checksum(&[&pseudo, &f[20..]]) {
        0 => 0xffff,
        s => s,
    };
    f[26..28].copy_from_slice(&sum.to_be_bytes());
    f
}

/// The Internet checksum of the concatenated parts (each part of even length but the last).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for part in parts {
        for w in part.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The shared DHCP side of all machines: DISCOVERs leave through a packet socket (source
/// 0.0.0.0, like firmware without an address, so a server's per-address limits see what
/// they would see in a real storm), and one task reads the broadcast replies on port 68 and
/// hands each to the machine whose xid it carries.
pub struct Broadcast {
    packet: OwnedFd,
    ifindex: i32,
    waiting: Arc<Mutex<HashMap<u32, mpsc::UnboundedSender<Reply>>>>,
}

impl Broadcast {
    pub fn open(iface: &str) -> io::Result<Arc<Self>> {
        let name = std::ffi::CString::new(iface)?;
        // SAFETY: plain libc calls on a NUL-terminated name and a new descriptor.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // Protocol 0: the socket only sends. With ETH_P_IP it would be handed a clone of
        // every IPv4 packet the namespace receives (all the HTTP bytes), which it never reads.
        // SAFETY: a new socket, owned by the OwnedFd at once.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a valid descriptor that nothing else owns.
        let packet = unsafe { OwnedFd::from_raw_fd(fd) };

        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        s.set_reuse_address(true)?;
        s.set_broadcast(true)?;
        s.bind_device(Some(iface.as_bytes()))?;
        s.set_recv_buffer_size(8 << 20)?;
        s.set_nonblocking(true)?;
        s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT)).into())?;
        let rx = UdpSocket::from_std(s.into())?;
        let b = Arc::new(Broadcast {
            packet,
            ifindex,
            waiting: Arc::default(),
        });
        let waiting = b.waiting.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok(n) = rx.recv(&mut buf).await {
                let Some(r) = parse(&buf[..n]) else { continue };
                if let Some(tx) = waiting.lock().unwrap().get(&r.xid) {
                    let _ = tx.send(r);
                }
            }
        });
        Ok(b)
    }

    /// Replies carrying `xid` go to the returned receiver until [`Broadcast::unregister`].
    pub fn register(&self, xid: u32) -> mpsc::UnboundedReceiver<Reply> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.waiting.lock().unwrap().insert(xid, tx);
        rx
    }

    pub fn unregister(&self, xid: u32) {
        self.waiting.lock().unwrap().remove(&xid);
    }

    /// Broadcasts one DHCP payload from 0.0.0.0:68 to 255.255.255.255:67.
    pub fn send(&self, payload: &[u8]) -> io::Result<()> {
        let frame = ip_udp_broadcast(payload);
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid starting value.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        to.sll_ifindex = self.ifindex;
        to.sll_halen = 6;
        to.sll_addr[..6].fill(0xff);
        // SAFETY: valid buffer and address of the stated lengths.
        let n = unsafe {
            libc::sendto(
                self.packet.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client {
            xid: 0x1234_5678,
            mac: [0x52, 0x54, 0, 1, 2, 3],
            uuid: [7; 16],
        }
    }

    #[test]
    fn discover_layout() {
        let p = encode(&client(), DISCOVER, Ipv4Addr::UNSPECIFIED, None);
        assert!(p.len() >= 300);
        assert_eq!(&p[..3], &[1, 1, 6]);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0x56, 0x78]);
        assert_eq!(p[10], 0x80);
        assert_eq!(&p[28..34], &[0x52, 0x54, 0, 1, 2, 3]);
        assert_eq!(&p[236..240], &MAGIC);
        let opts: HashMap<u8, Vec<u8>> = options(&p[240..]).map(|(c, v)| (c, v.to_vec())).collect();
        assert_eq!(opts[&53], vec![DISCOVER]);
        assert_eq!(opts[&60], VENDOR_CLASS.to_vec());
        assert_eq!(opts[&93], vec![0, 0]);
        assert_eq!(opts[&97].len(), 17);
        assert_eq!(opts[&97][0], 0);
        assert!(!opts.contains_key(&43));
    }

    #[test]
    fn request_4011_carries_boot_item_and_ciaddr() {
        let ip = Ipv4Addr::new(10, 78, 0, 5);
        let p = encode(&client(), REQUEST, ip, Some((0x8000, 0)));
        assert_eq!(p[10], 0);
        assert_eq!(&p[12..16], &ip.octets());
        let o43 = options(&p[240..])
            .find(|(c, _)| *c == 43)
            .unwrap()
            .1
            .to_vec();
        assert_eq!(o43, vec![71, 4, 0x80, 0, 0, 0, 255]);
    }

    /// A proxy OFFER as dnsmasq shapes one: a menu in option 43, no file.
    #[test]
    fn parse_offer_with_menu() {
        let mut p = encode(&client(), DISCOVER, Ipv4Addr::UNSPECIFIED, None);
        p.truncate(240);
        p[0] = 2;
        p[20..24].copy_from_slice(&[192, 168, 78, 1]);
        p.extend_from_slice(&[53, 1, OFFER, 60, 9]);
        p.extend_from_slice(b"PXEClient");
        p.extend_from_slice(&[43, 12, 6, 1, 7, 9, 6, 0x80, 0, 3, b'a', b'b', b'c', 255]);
        p.push(255);
        let r = parse(&p).unwrap();
        assert_eq!(r.xid, 0x1234_5678);
        assert_eq!(r.msg_type, OFFER);
        assert!(r.is_pxe());
        assert_eq!(r.siaddr, Ipv4Addr::new(192, 168, 78, 1));
        assert_eq!(r.boot_item, Some((0x8000, 0)));
        assert_eq!(r.file, "");
    }

    #[test]
    fn parse_ack_with_file_and_item() {
        let mut p = encode(&client(), REQUEST, Ipv4Addr::UNSPECIFIED, None);
        p.truncate(240);
        p[0] = 2;
        p[108..121].copy_from_slice(b"undionly.kpxe");
        p.extend_from_slice(&[53, 1, ACK, 43, 7, 71, 4, 0, 0, 0, 0, 255, 255]);
        let r = parse(&p).unwrap();
        assert_eq!(r.msg_type, ACK);
        assert_eq!(r.file, "undionly.kpxe");
        assert_eq!(r.boot_item, Some((0, 0)));
        assert!(!r.is_pxe());
        // A request is no reply; garbage is nothing.
        assert!(parse(&encode(&client(), DISCOVER, Ipv4Addr::UNSPECIFIED, None)).is_none());
        assert!(parse(&[2; 100]).is_none());
    }

    #[test]
    fn ip_udp_headers() {
        let f = ip_udp_broadcast(&[1, 2, 3]);
        assert_eq!(f.len(), 31);
        assert_eq!(checksum(&[&f[..20]]), 0, "IPv4 header checksum verifies");
        assert_eq!(&f[12..20], &[0, 0, 0, 0, 255, 255, 255, 255]);
        assert_eq!(&f[20..24], &[0, 68, 0, 67]);
        let mut pseudo = vec![0, 0, 0, 0, 255, 255, 255, 255, 0, 17, 0, 11];
        pseudo.extend_from_slice(&f[20..]);
        assert_eq!(checksum(&[&pseudo]), 0, "UDP checksum verifies");
    }
}
