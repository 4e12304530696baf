//! Shared by the examples and by the unit tests in `src/ops.rs` (through `#[path]`): a
//! BIOS PXE client, its DISCOVER seen and OFFER answered on port 67, and a directory's
//! size. Uses only `kindling_dhcp` and `std`, so it compiles inside and outside the crate.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

use kindling_dhcp::{AnsweredEvent, ClientInfo, DhcpObserver, ListenPort, Reply, SeenEvent};

/// A BIOS PXE ROM's DISCOVER.
pub fn bios_client(xid: u32, mac: [u8; 6]) -> ClientInfo {
    ClientInfo {
        xid,
        mac: Some(mac),
        message_type: Some(kindling_dhcp::wire::MessageType::Discover),
        vendor_class: Some("PXEClient:Arch:00000:UNDI:002001".into()),
        vendor_prefix: Some("PXEClient".into()),
        architectures: vec![0],
        arch: Some(0),
        firmware: Some(kindling_dhcp::Firmware::BiosPxe),
        user_classes: Vec::new(),
        ciaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
    }
}

/// The broadcast OFFER of `file`.
pub fn offer(file: &str) -> Reply {
    Reply {
        packet: Vec::new(),
        dest: SocketAddrV4::new(Ipv4Addr::BROADCAST, 68),
        message_type: kindling_dhcp::wire::MessageType::Offer,
        file: file.into(),
        rule: None,
        lease: None,
    }
}

/// `c`'s DISCOVER seen and `reply` answered on port 67 of `s0`.
pub fn discover_offer(obs: &dyn DhcpObserver, c: &ClientInfo, reply: &Reply) {
    obs.seen(&SeenEvent {
        iface: "s0",
        port: ListenPort::Dhcp,
        source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        client: c,
    });
    obs.answered(&AnsweredEvent {
        iface: "s0",
        port: ListenPort::Dhcp,
        server_ip: Ipv4Addr::new(10, 0, 0, 1),
        client: c,
        reply,
    });
}

/// Bytes of the files directly in `dir` (0 if it cannot be read).
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
