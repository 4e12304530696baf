//! Cost of the boot timeline on the proxy-DHCP path: one DISCOVER seen + one OFFER
//! answered per iteration, cycling over N machines (retries after the first round).
//!
//! ```text
//! cargo run --release -p kindling-ops --example observer_bench -- 10000 2000000
//! ```
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use kindling_dhcp::{AnsweredEvent, DhcpObserver, ListenPort, SeenEvent};
use kindling_ops::{Ops, OpsConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let machines: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let n: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let ops = Ops::in_memory(&OpsConfig::default());
    let source = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
    let reply = kindling_dhcp::Reply {
        packet: Vec::new(),
        dest: SocketAddrV4::new(Ipv4Addr::BROADCAST, 68),
        message_type: kindling_dhcp::wire::MessageType::Offer,
        file: "undionly.kpxe".into(),
        rule: None,
    };
    let clients: Vec<kindling_dhcp::ClientInfo> = (0..machines.max(1))
        .map(|i| kindling_dhcp::ClientInfo {
            xid: i,
            mac: Some([0x52, 0x54, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]),
            message_type: Some(kindling_dhcp::wire::MessageType::Discover),
            vendor_class: Some("PXEClient:Arch:00000:UNDI:002001".into()),
            vendor_prefix: Some("PXEClient".into()),
            architectures: vec![0],
            arch: Some(0),
            firmware: Some(kindling_dhcp::Firmware::BiosPxe),
            user_classes: Vec::new(),
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
        })
        .collect();
    let t = Instant::now();
    for i in 0..n {
        let c = &clients[(i % machines.max(1)) as usize];
        ops.seen(&SeenEvent {
            iface: "s0",
            port: ListenPort::Dhcp,
            source,
            client: c,
        });
        ops.answered(&AnsweredEvent {
            iface: "s0",
            port: ListenPort::Dhcp,
            server_ip: Ipv4Addr::new(10, 0, 0, 1),
            client: c,
            reply: &reply,
        });
    }
    let el = t.elapsed();
    ops.flush();
    println!(
        "{n} exchanges over {machines} machines: {:.0} ns per exchange (seen + answered), {} machines stored",
        el.as_nanos() as f64 / f64::from(n),
        ops.machines().len()
    );
}
