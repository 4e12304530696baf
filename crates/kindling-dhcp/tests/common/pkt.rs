//! The DHCP client packet builder of this crate's tests: what PXE, UEFI HTTP Boot and iPXE
//! firmware send, encoded with dhcproto (an independent implementation). One copy, used by
//! the unit tests of the decision core (`src/tests.rs`, through `#[path]`) and by the
//! namespace tests (`tests/common`).
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

use dhcproto::v4::{self, DhcpOption};
use dhcproto::{Encodable, Encoder};

/// The client's MAC unless a test sets another.
pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// Option 97 as firmware sends it: type 0, then a 16-byte GUID.
pub const GUID: [u8; 17] = [
    0, 0xde, 0xad, 0xbe, 0xef, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
];

/// The address the site's DHCP server leased to the client (the namespace lab's client
/// address): ciaddr of the port-4011 REQUEST.
pub const LEASE: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);

static XIDS: AtomicU32 = AtomicU32::new(0);

/// A transaction id not used before by this process (the pid in the middle bits keeps
/// test processes that run at once apart).
pub fn next_xid() -> u32 {
    let n = XIDS.fetch_add(1, Ordering::SeqCst);
    0x4b00_0000 | (std::process::id() << 8 & 0x00ff_ff00) | (n & 0xff)
}

/// A client packet: a DISCOVER from the constructors, changed field by field.
#[derive(Clone, Debug)]
pub struct Pkt {
    pub xid: u32,
    pub msg: v4::MessageType,
    /// Option 60.
    pub vendor: Option<Vec<u8>>,
    /// Option 93, every entry (dhcproto would encode only the first).
    pub arch: Vec<u16>,
    /// Option 77, as sent.
    pub user_class: Option<Vec<u8>>,
    /// iPXE's option 175.
    pub opt175: bool,
    /// Option 97 ([`GUID`]).
    pub guid: bool,
    /// Option 94 (UNDI 3.16).
    pub ndi: bool,
    /// PXE boot item (option 43 sub-option 71): type, layer.
    pub boot_item: Option<(u16, u16)>,
    pub mac: [u8; 6],
    pub ciaddr: Ipv4Addr,
    /// When set, the packet is relayed (hops 1).
    pub giaddr: Ipv4Addr,
    /// The address the site's DHCP server leased (ciaddr of [`Pkt::to_4011`]).
    pub lease: Ipv4Addr,
}

impl Pkt {
    pub fn new(vendor: impl AsRef<[u8]>, arch: &[u16]) -> Self {
        Self {
            xid: next_xid(),
            msg: v4::MessageType::Discover,
            vendor: Some(vendor.as_ref().to_vec()),
            arch: arch.to_vec(),
            user_class: None,
            opt175: false,
            guid: true,
            ndi: true,
            boot_item: None,
            mac: MAC,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            lease: LEASE,
        }
    }

    pub fn bios() -> Self {
        Self::new("PXEClient:Arch:00000:UNDI:002001", &[0])
    }

    pub fn uefi(a: u16) -> Self {
        Self::new(format!("PXEClient:Arch:{a:05}:UNDI:003016"), &[a])
    }

    pub fn http(a: u16) -> Self {
        Self::new(format!("HTTPClient:Arch:{a:05}:UNDI:003001"), &[a])
    }

    pub fn ipxe(mut self) -> Self {
        self.user_class = Some(b"iPXE".to_vec());
        self
    }

    /// The follow-up REQUEST to port 4011 from the address the real DHCP server leased.
    pub fn to_4011(&self, boot_item: Option<(u16, u16)>) -> Self {
        let mut p = self.clone();
        p.msg = v4::MessageType::Request;
        p.ciaddr = p.lease;
        p.boot_item = boot_item;
        p.giaddr = Ipv4Addr::UNSPECIFIED;
        p
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut m = v4::Message::new_with_id(
            self.xid,
            self.ciaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            self.giaddr,
            &self.mac,
        );
        if !self.giaddr.is_unspecified() {
            m.set_hops(1);
        }
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(self.msg));
        if let Some(v) = &self.vendor {
            o.insert(DhcpOption::ClassIdentifier(v.clone()));
        }
        if self.guid {
            o.insert(DhcpOption::ClientMachineIdentifier(GUID.to_vec()));
        }
        if self.ndi {
            o.insert(DhcpOption::ClientNetworkInterface(1, 3, 16));
        }
        o.insert(DhcpOption::MaxMessageSize(1464));
        if let Some(u) = &self.user_class {
            o.insert(DhcpOption::UserClass(u.clone()));
        }
        if self.opt175 {
            o.insert(DhcpOption::Unknown(v4::UnknownOption::new(
                175.into(),
                vec![0xb1, 0x05, 0x01, 0x80, 0x86, 0x10, 0x0e],
            )));
        }
        if let Some((t, l)) = self.boot_item {
            let t = t.to_be_bytes();
            let l = l.to_be_bytes();
            o.insert(DhcpOption::VendorExtensions(vec![
                71, 4, t[0], t[1], l[0], l[1], 255,
            ]));
        }
        let mut out = Vec::new();
        m.encode(&mut Encoder::new(&mut out)).unwrap();
        // dhcproto encodes only one option-93 value: put the full list in by hand.
        if !self.arch.is_empty() {
            assert_eq!(out.pop(), Some(255), "dhcproto ends the options with END");
            out.push(93);
            out.push((self.arch.len() * 2) as u8);
            for a in &self.arch {
                out.extend_from_slice(&a.to_be_bytes());
            }
            out.push(255);
        }
        out
    }
}
