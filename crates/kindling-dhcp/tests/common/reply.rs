//! Replies as a client sees them: collected by xid from a socket, decoded with dhcproto, and
//! followed through the port-4011 step the way a PXE client would.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::{self, DhcpOption, OptionCode};
use dhcproto::{Decodable, Decoder};

use super::pkt::Pkt;

/// A decoded reply.
#[derive(Clone, Debug)]
pub struct Got {
    pub from: SocketAddrV4,
    pub msg: v4::Message,
}

impl Got {
    pub fn file(&self) -> String {
        nul_trim(self.msg.fname())
    }
    pub fn sname(&self) -> String {
        nul_trim(self.msg.sname())
    }
    pub fn msg_type(&self) -> v4::MessageType {
        self.msg.opts().msg_type().expect("option 53")
    }
    pub fn opt54(&self) -> Option<Ipv4Addr> {
        match self.msg.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
            _ => None,
        }
    }
    pub fn opt60(&self) -> Option<String> {
        match self.msg.opts().get(OptionCode::ClassIdentifier) {
            Some(DhcpOption::ClassIdentifier(v)) => Some(String::from_utf8_lossy(v).into()),
            _ => None,
        }
    }
    pub fn opt43(&self) -> Option<Vec<u8>> {
        match self.msg.opts().get(OptionCode::VendorExtensions) {
            Some(DhcpOption::VendorExtensions(v)) => Some(v.clone()),
            _ => None,
        }
    }
    pub fn opt97(&self) -> Option<Vec<u8>> {
        match self.msg.opts().get(OptionCode::ClientMachineIdentifier) {
            Some(DhcpOption::ClientMachineIdentifier(v)) => Some(v.clone()),
            _ => None,
        }
    }
    /// PXE sub-options of option 43 as (code, data).
    pub fn pxe_subs(&self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let Some(d) = self.opt43() else { return out };
        let mut i = 0;
        while i + 1 < d.len() && d[i] != 255 {
            let len = d[i + 1] as usize;
            if i + 2 + len > d.len() {
                break;
            }
            out.push((d[i], d[i + 2..i + 2 + len].to_vec()));
            i += 2 + len;
        }
        out
    }
}

fn nul_trim(b: Option<&[u8]>) -> String {
    b.map(|f| {
        String::from_utf8_lossy(f)
            .trim_end_matches('\0')
            .to_string()
    })
    .unwrap_or_default()
}

/// Sends `pkt` to `dest` and collects every reply with the same xid for `window` (after the
/// first reply, 300 ms more to catch duplicates).
pub fn exchange(sock: &UdpSocket, pkt: &Pkt, dest: SocketAddrV4, window: Duration) -> Vec<Got> {
    sock.send_to(&pkt.bytes(), dest).expect("send");
    collect(sock, pkt.xid, window)
}

pub fn collect(sock: &UdpSocket, xid: u32, window: Duration) -> Vec<Got> {
    let mut out = Vec::new();
    let mut deadline = Instant::now() + window;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((n, SocketAddr::V4(from))) => {
                let Ok(msg) = v4::Message::decode(&mut Decoder::new(&buf[..n])) else {
                    continue;
                };
                if msg.xid() != xid || msg.opcode() != v4::Opcode::BootReply {
                    continue;
                }
                if out.is_empty() {
                    deadline = deadline.min(Instant::now() + Duration::from_millis(300));
                }
                out.push(Got { from, msg });
            }
            Ok(_) => {}
            Err(_) => {}
        }
    }
    out
}

/// Exactly one reply expected.
pub fn one(mut v: Vec<Got>, what: &str) -> Got {
    assert_eq!(v.len(), 1, "{what}: expected exactly one reply, got {v:#?}");
    v.remove(0)
}

/// Asserts the invariants of every proxy reply.
pub fn check_proxy_reply(g: &Got, server: Ipv4Addr) {
    assert_eq!(
        g.msg.yiaddr(),
        Ipv4Addr::UNSPECIFIED,
        "yiaddr must be 0: {g:#?}"
    );
    assert_eq!(g.opt54(), Some(server), "option 54");
}

/// Where a real PXE client would end up after this offer: (TFTP/HTTP server, file), doing the
/// 4011 step when the offer asks for it (menu item, or no option 43 and no file).
pub fn resolve_boot(
    sock4011: &UdpSocket,
    discover: &Pkt,
    offer: &Got,
) -> (Ipv4Addr, String, Option<Got>) {
    let subs = offer.pxe_subs();
    let menu = subs.iter().find(|(c, _)| *c == 9).map(|(_, d)| d.clone());
    let dc = subs
        .iter()
        .find(|(c, _)| *c == 6)
        .map(|(_, d)| d.first().copied().unwrap_or(0));
    let server = if offer.msg.siaddr().is_unspecified() {
        offer.opt54().unwrap()
    } else {
        offer.msg.siaddr()
    };
    let item = match (&menu, dc) {
        (Some(m), dc) if dc != Some(8) && m.len() >= 2 => {
            Some((u16::from_be_bytes([m[0], m[1]]), 0))
        }
        _ => None,
    };
    if item.is_none() && !offer.file().is_empty() {
        return (server, offer.file(), None);
    }
    let req = discover.to_4011(item);
    let ack = one(
        exchange(
            sock4011,
            &req,
            SocketAddrV4::new(server, 4011),
            Duration::from_secs(2),
        ),
        "4011 ACK",
    );
    assert_eq!(ack.msg_type(), v4::MessageType::Ack);
    let srv = if ack.msg.siaddr().is_unspecified() {
        server
    } else {
        ack.msg.siaddr()
    };
    (srv, ack.file(), Some(ack))
}

/// Every BOOTREPLY read from `sock` for `window`, whatever its xid.
pub fn collect_all(sock: &UdpSocket, window: Duration) -> Vec<Got> {
    let mut out = Vec::new();
    let deadline = Instant::now() + window;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((n, SocketAddr::V4(from))) = sock.recv_from(&mut buf)
            && let Ok(msg) = v4::Message::decode(&mut Decoder::new(&buf[..n]))
            && msg.opcode() == v4::Opcode::BootReply
        {
            out.push(Got { from, msg });
        }
    }
    out
}
