//! Fuzzes the proxy DHCP decision input: arbitrary datagrams, both ports, two configurations.
//! Invariants: never panics; every reply has yiaddr 0, is at least 300 bytes, carries option
//! 53 first and goes to port 67, 68 or the source port.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::OnceLock;

use kindling_dhcp::config::{ArchSpec, OneOrMany, RuleConfig, TargetKind};
use kindling_dhcp::{CheckedConfig, Context, Decision, DhcpConfig, ListenPort, decide};
use libfuzzer_sys::fuzz_target;

fn configs() -> &'static [CheckedConfig; 2] {
    static C: OnceLock<[CheckedConfig; 2]> = OnceLock::new();
    C.get_or_init(|| {
        let plain = DhcpConfig {
            enabled: true,
            interfaces: vec!["eth0".into()],
            ..DhcpConfig::default()
        };
        let rich = DhcpConfig {
            arm64_binary: Some("snp-arm64.efi".into()),
            vendor_prefixes: vec!["HW-Client".into()],
            proxy_port_4011: false,
            rules: vec![
                RuleConfig {
                    mac: Some("52:54:*:*:*:*".into()),
                    user_class: Some("iPXE".into()),
                    url: Some("http://{server_ip}:{http_port}/menu.ipxe".into()),
                    ..RuleConfig::default()
                },
                RuleConfig {
                    arch: Some(OneOrMany::One(ArchSpec::Name("bios".into()))),
                    vendor_class: Some("Arch:00000".into()),
                    target: Some(TargetKind::LocalBoot),
                    ..RuleConfig::default()
                },
                RuleConfig {
                    arch: Some(OneOrMany::Many(vec![ArchSpec::Number(9)])),
                    target: Some(TargetKind::Ignore),
                    ..RuleConfig::default()
                },
            ],
            ..plain.clone()
        };
        [plain.validate().unwrap(), rich.validate().unwrap()]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, packet)) = data.split_first() else {
        return;
    };
    let cfg = &configs()[(sel & 1) as usize];
    let port = if sel & 2 == 0 {
        ListenPort::Dhcp
    } else {
        ListenPort::Pxe
    };
    // Sources include 10.0.0.0 (network), .1 (ours) and .63 but never .255: some are unsafe.
    let source = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, sel >> 2), 68 + u16::from(sel >> 7));
    let ctx = Context {
        iface: "eth0",
        server_ip: Ipv4Addr::new(10, 0, 0, 1),
        port,
        source,
        local: &[(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(255, 255, 255, 0))],
    };
    if let Decision::Reply(r) = decide(cfg, &ctx, packet).decision {
        assert_eq!(&r.packet[16..20], &[0, 0, 0, 0], "yiaddr must be 0");
        assert!(r.packet.len() >= 300);
        assert_eq!(&r.packet[240..242], &[53, 1]);
        assert!([67, 68, source.port()].contains(&r.dest.port()));
        // Never to a broadcast, multicast, loopback or own address, except the port-67
        // broadcast to clients on the link.
        let dest = *r.dest.ip();
        if !(dest == Ipv4Addr::BROADCAST && r.dest.port() == 68) {
            assert!(
                kindling_dhcp::check_destination(dest, ctx.server_ip, ctx.local).is_ok(),
                "unsafe destination {}",
                r.dest
            );
        }
        if port == ListenPort::Pxe {
            assert_eq!(r.dest, source, "4011 ACKs go to the source");
        }
    }
});
