//! Unit tests of the decision core: every case of issue 3, no sockets. Replies are decoded with
//! `dhcproto` (an independent implementation) to check the encoder too.

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::{self, DhcpOption, OptionCode};
use dhcproto::{Decodable, Decoder};

use crate::config::DhcpConfig;
use crate::policy::{
    Context, Decision, Firmware, IgnoreReason, ListenPort, UnsafeAddr, check_destination, decide,
};
use crate::{CheckedConfig, Outcome};

/// The client packet builder, shared with the namespace tests.
#[path = "../tests/common/pkt.rs"]
mod pkt;
use pkt::{GUID, MAC, Pkt};

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
const MASK24: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);
/// The host's addresses: the served interface, loopback, and a second interface.
const LOCAL: &[(Ipv4Addr, Ipv4Addr)] = &[
    (SERVER, MASK24),
    (Ipv4Addr::LOCALHOST, Ipv4Addr::new(255, 0, 0, 0)),
    (Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(255, 255, 0, 0)),
];

fn cfg(extra: &str) -> CheckedConfig {
    let text = format!("enabled = true\ninterfaces = [\"eth0\"]\n{extra}");
    toml::from_str::<DhcpConfig>(&text)
        .unwrap()
        .validate()
        .unwrap()
}

fn run(cfg: &CheckedConfig, port: ListenPort, p: &Pkt) -> Outcome {
    run_on(cfg, "eth0", port, p)
}

fn run_on(cfg: &CheckedConfig, iface: &str, port: ListenPort, p: &Pkt) -> Outcome {
    decide_pkt(cfg, &ctx_for(iface, port, p), p)
}

/// The context `p` arrives in on `iface`'s `port` (from its client port, or its relay).
fn ctx_for<'a>(iface: &'a str, port: ListenPort, p: &Pkt) -> Context<'a> {
    let source = if p.giaddr.is_unspecified() {
        SocketAddrV4::new(p.ciaddr, if port == ListenPort::Pxe { 4011 } else { 68 })
    } else {
        SocketAddrV4::new(p.giaddr, 67)
    };
    Context {
        iface,
        server_ip: SERVER,
        port,
        source,
        local: LOCAL,
        secure_boot: None,
    }
}

/// Decides `p`, checking that the core read the xid that was sent (`reply` checks that the
/// reply echoes it).
fn decide_pkt(cfg: &CheckedConfig, ctx: &Context<'_>, p: &Pkt) -> Outcome {
    let o = decide(cfg, ctx, &p.bytes());
    if let Some(c) = &o.client {
        assert_eq!(c.xid, p.xid);
    }
    o
}

struct Got {
    msg: v4::Message,
    dest: SocketAddrV4,
    file: String,
}

fn reply(o: &Outcome) -> Got {
    let Decision::Reply(r) = &o.decision else {
        panic!("expected a reply, got {:?}", o.decision);
    };
    let msg = v4::Message::decode(&mut Decoder::new(&r.packet)).expect("dhcproto decodes it");
    // Invariants of every proxy reply.
    assert_eq!(msg.yiaddr(), Ipv4Addr::UNSPECIFIED, "yiaddr must be 0");
    assert_eq!(msg.siaddr(), SERVER, "siaddr (next-server) always set");
    assert_eq!(msg.opcode(), v4::Opcode::BootReply);
    let sent = o.client.as_ref().map(|c| c.xid);
    assert_eq!(Some(msg.xid()), sent, "the reply echoes the request's xid");
    assert_eq!(msg.chaddr().len(), 6);
    assert!(msg.flags().broadcast());
    assert_eq!(
        msg.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(r.packet[240..243], [53, 1, r.message_type.to_u8()]);
    let file = msg
        .fname()
        .map(|f| {
            String::from_utf8_lossy(f)
                .trim_end_matches('\0')
                .to_string()
        })
        .unwrap_or_default();
    assert_eq!(file, r.file);
    Got {
        msg,
        dest: r.dest,
        file,
    }
}

fn sname(g: &Got) -> String {
    g.msg
        .sname()
        .map(|f| {
            String::from_utf8_lossy(f)
                .trim_end_matches('\0')
                .to_string()
        })
        .unwrap_or_default()
}

fn opt60(g: &Got) -> Vec<u8> {
    match g.msg.opts().get(OptionCode::ClassIdentifier) {
        Some(DhcpOption::ClassIdentifier(v)) => v.clone(),
        other => panic!("no option 60: {other:?}"),
    }
}

fn opt43(g: &Got) -> Option<Vec<u8>> {
    match g.msg.opts().get(OptionCode::VendorExtensions) {
        Some(DhcpOption::VendorExtensions(v)) => Some(v.clone()),
        _ => None,
    }
}

fn opt97(g: &Got) -> Option<Vec<u8>> {
    match g.msg.opts().get(OptionCode::ClientMachineIdentifier) {
        Some(DhcpOption::ClientMachineIdentifier(v)) => Some(v.clone()),
        _ => None,
    }
}

fn msg_type(g: &Got) -> v4::MessageType {
    g.msg.opts().msg_type().unwrap()
}

fn ignored(o: &Outcome) -> IgnoreReason {
    match o.decision {
        Decision::Ignore(r) => r,
        _ => panic!("expected silence, got {:?}", o.decision),
    }
}

const BCAST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::BROADCAST, 68);

#[test]
fn bios_discover_gets_undionly_with_discovery_control_8() {
    let o = run(&cfg(""), ListenPort::Dhcp, &Pkt::bios());
    let g = reply(&o);
    assert_eq!(msg_type(&g), v4::MessageType::Offer);
    assert_eq!(g.file, "undionly.kpxe");
    assert_eq!(sname(&g), "192.168.77.1");
    assert_eq!(opt43(&g), Some(vec![6, 1, 8, 255]));
    assert_eq!(opt60(&g), b"PXEClient");
    assert_eq!(opt97(&g), Some(GUID.to_vec()));
    assert_eq!(g.dest, BCAST);
    assert_eq!(g.msg.chaddr(), &MAC);
    assert_eq!(o.client.unwrap().firmware, Some(Firmware::BiosPxe));
}

#[test]
fn bios_4011_request_gets_ack_with_file_and_boot_item_echo() {
    let mut p = Pkt::bios().to_4011(None);
    p.boot_item = Some((0x8000, 0));
    let o = run(&cfg(""), ListenPort::Pxe, &p);
    let g = reply(&o);
    assert_eq!(msg_type(&g), v4::MessageType::Ack);
    assert_eq!(g.file, "undionly.kpxe");
    assert_eq!(opt43(&g), Some(vec![71, 4, 0x80, 0, 0, 0, 255]));
    assert_eq!(g.msg.ciaddr(), p.ciaddr);
    assert_eq!(g.dest, SocketAddrV4::new(p.ciaddr, 4011));
    // Without a boot item: discovery control 8.
    let o = run(&cfg(""), ListenPort::Pxe, &Pkt::bios().to_4011(None));
    assert_eq!(opt43(&reply(&o)), Some(vec![6, 1, 8, 255]));
}

#[test]
fn uefi_x64_discover_is_sent_to_4011_for_arch_7_and_9() {
    for a in [7, 9] {
        let o = run(&cfg(""), ListenPort::Dhcp, &Pkt::uefi(a));
        let g = reply(&o);
        assert_eq!(msg_type(&g), v4::MessageType::Offer);
        assert_eq!(g.file, "", "no file on port 67: the firmware asks 4011");
        assert_eq!(opt43(&g), None, "no option 43 for UEFI on port 67");
        assert_eq!(opt60(&g), b"PXEClient");
        assert_eq!(opt97(&g), Some(GUID.to_vec()));
        assert_eq!(o.client.unwrap().firmware, Some(Firmware::UefiPxe));
    }
}

#[test]
fn uefi_x64_4011_request_gets_the_efi_binary() {
    for a in [7, 9] {
        let o = run(&cfg(""), ListenPort::Pxe, &Pkt::uefi(a).to_4011(None));
        let g = reply(&o);
        assert_eq!(msg_type(&g), v4::MessageType::Ack);
        assert_eq!(g.file, "snponly.efi");
        assert_eq!(sname(&g), "192.168.77.1");
        assert_eq!(opt43(&g), None);
        assert_eq!(opt60(&g), b"PXEClient");
    }
    let o = run(
        &cfg("efi_binary = \"ipxe.efi\""),
        ListenPort::Pxe,
        &Pkt::uefi(7).to_4011(None),
    );
    assert_eq!(reply(&o).file, "ipxe.efi");
    // INFORM is answered like REQUEST.
    let mut p = Pkt::uefi(7).to_4011(None);
    p.msg = v4::MessageType::Inform;
    assert_eq!(
        reply(&run(&cfg(""), ListenPort::Pxe, &p)).file,
        "snponly.efi"
    );
}

#[test]
fn proxy_port_4011_false_is_refused_with_the_reason() {
    let text = "enabled = true\ninterfaces = [\"eth0\"]\nproxy_port_4011 = false\n";
    let err = toml::from_str::<DhcpConfig>(text)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("dhcp.proxy_port_4011"), "{err}");
    assert!(err.contains("EDK2"), "{err}");
    // `true` (the old default) still loads.
    cfg("proxy_port_4011 = true");
}

const MENU: &str = "[pxe_menu]\nprompt = \"Press F8 for menu\"\ntimeout_secs = 5\n\
[[pxe_menu.items]]\ntext = \"Boot from local disk\"\ntarget = \"local_boot\"\n\
[[pxe_menu.items]]\ntext = \"Install Fedora CoreOS\"\n\
[[pxe_menu.items]]\ntext = \"Memory test\"\nfile = \"memtest.bin\"\n";

#[test]
fn bios_gets_the_menu_and_each_item_its_file_with_the_item_echoed() {
    let c = cfg(MENU);
    let g = reply(&run(&c, ListenPort::Dhcp, &Pkt::bios()));
    assert_eq!(g.file, "");
    let o43 = opt43(&g).unwrap();
    // Discovery control 3, boot servers 0x8000 and 0x8001 at this server, then the menu.
    assert_eq!(
        o43[..17],
        [
            6, 1, 3, 8, 14, 0x80, 0, 1, 192, 168, 77, 1, 0x80, 1, 1, 192, 168
        ]
    );
    assert!(o43.ends_with(b"\x0a\x12\x05Press F8 for menu\xff"));
    for (item, file) in [(0x8000, "undionly.kpxe"), (0x8001, "memtest.bin")] {
        let p = Pkt::bios().to_4011(Some((item, 0)));
        let g = reply(&run(&c, ListenPort::Pxe, &p));
        assert_eq!(g.file, file);
        let o43 = opt43(&g).unwrap();
        assert_eq!(o43[..6], [71, 4, (item >> 8) as u8, item as u8, 0, 0]);
        assert_eq!(o43[6..9], [10, 18, 5]);
    }
    // Local boot (0) never reaches a server; an item that is not in the menu is refused.
    for item in [0, 0x8002, 0x1234] {
        let p = Pkt::bios().to_4011(Some((item, 0)));
        assert_eq!(
            ignored(&run(&c, ListenPort::Pxe, &p)),
            IgnoreReason::UnknownBootItem
        );
    }
    // UEFI (like dnsmasq) and iPXE get no menu: the usual answers.
    let g = reply(&run(&c, ListenPort::Dhcp, &Pkt::uefi(9)));
    assert_eq!((g.file.as_str(), opt43(&g)), ("", None));
    let g = reply(&run(
        &c,
        ListenPort::Pxe,
        &Pkt::uefi(9).to_4011(Some((0x8000, 0))),
    ));
    assert_eq!(g.file, "snponly.efi");
    let g = reply(&run(&c, ListenPort::Dhcp, &Pkt::bios().ipxe()));
    assert_eq!(g.file, "http://192.168.77.1:8080/boot.ipxe");
}

#[test]
fn menus_that_a_rom_cannot_read_are_refused() {
    // No items: no menu.
    assert_eq!(
        cfg("[pxe_menu]\nprompt = \"x\"\nitems = []\n").pxe_menu,
        None
    );
    for (extra, key) in [
        (
            "[[pxe_menu.items]]\ntext = \"x\"\ntarget = \"local_boot\"\nfile = \"a\"\n",
            "items[0].file",
        ),
        ("[[pxe_menu.items]]\ntext = \"\"\n", "items[0].text"),
        (
            &format!("[[pxe_menu.items]]\ntext = \"{}\"\n", "x".repeat(240)),
            "more than the 255",
        ),
    ] {
        let text = format!("enabled = true\ninterfaces = [\"eth0\"]\n{extra}");
        let err = toml::from_str::<DhcpConfig>(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{extra}: {err}");
    }
}

#[test]
fn ipxe_asking_4011_for_a_boot_item_gets_it_echoed() {
    // iPXE's `pxebs net0 0x8000` (and its PXE menu) drops an ACK without the item.
    let p = Pkt::bios().ipxe().to_4011(Some((0x8000, 0)));
    let g = reply(&run(&cfg(""), ListenPort::Pxe, &p));
    assert_eq!(g.file, "http://192.168.77.1:8080/boot.ipxe");
    assert_eq!(opt43(&g), Some(vec![71, 4, 0x80, 0, 0, 0, 255]));
    // Without an item, no option 43 (as before).
    let p = Pkt::bios().ipxe().to_4011(None);
    assert_eq!(opt43(&reply(&run(&cfg(""), ListenPort::Pxe, &p))), None);
}

#[test]
fn http_boot_url_is_configurable() {
    let c = cfg("http_boot_url = \"https://boot.example/efi/{binary}?from={server_ip}\"");
    let g = reply(&run(&c, ListenPort::Dhcp, &Pkt::http(16)));
    assert_eq!(
        g.file,
        "https://boot.example/efi/ipxe.efi?from=192.168.77.1"
    );
    let text = "enabled = true\ninterfaces = [\"eth0\"]\nhttp_boot_url = \"tftp://x/{binary}\"\n";
    let err = toml::from_str::<DhcpConfig>(text)
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("dhcp.http_boot_url"), "{err}");
}

#[test]
fn ipxe_by_user_class_or_option_175_gets_the_script_url() {
    for p in [
        Pkt::bios().ipxe(),
        Pkt::uefi(7).ipxe(),
        Pkt {
            opt175: true,
            ..Pkt::bios()
        },
        Pkt {
            // RFC 3004 length-prefixed user class.
            user_class: Some(b"\x04iPXE".to_vec()),
            ..Pkt::uefi(7)
        },
    ] {
        let o = run(&cfg(""), ListenPort::Dhcp, &p);
        let g = reply(&o);
        assert_eq!(msg_type(&g), v4::MessageType::Offer);
        assert_eq!(g.file, "http://192.168.77.1:8080/boot.ipxe");
        assert_eq!(opt43(&g), None);
        assert_eq!(opt60(&g), b"PXEClient");
        assert_eq!(o.client.unwrap().firmware, Some(Firmware::Ipxe));
    }
    // And on 4011 (iPXE's ProxyDHCPREQUEST).
    let o = run(
        &cfg("http_port = 9000"),
        ListenPort::Pxe,
        &Pkt::bios().ipxe().to_4011(None),
    );
    assert_eq!(reply(&o).file, "http://192.168.77.1:9000/boot.ipxe");
}

#[test]
fn http_boot_arch_16_gets_an_absolute_url_and_httpclient() {
    let o = run(&cfg(""), ListenPort::Dhcp, &Pkt::http(16));
    let g = reply(&o);
    assert_eq!(opt60(&g), b"HTTPClient");
    assert_eq!(g.file, "http://192.168.77.1:8080/tftp/ipxe.efi");
    assert_eq!(opt43(&g), None);
    assert_eq!(o.client.unwrap().firmware, Some(Firmware::UefiHttp));
}

#[test]
fn arm64_needs_a_binary() {
    for p in [Pkt::uefi(11), Pkt::http(19)] {
        let o = run(&cfg(""), ListenPort::Dhcp, &p);
        assert_eq!(ignored(&o), IgnoreReason::UnsupportedArchNoBinary);
    }
    let c = cfg("arm64_binary = \"snp-arm64.efi\"");
    let g = reply(&run(&c, ListenPort::Dhcp, &Pkt::uefi(11)));
    assert_eq!(g.file, "");
    assert_eq!(opt43(&g), None);
    let g = reply(&run(&c, ListenPort::Pxe, &Pkt::uefi(11).to_4011(None)));
    assert_eq!(g.file, "snp-arm64.efi");
    let g = reply(&run(&c, ListenPort::Dhcp, &Pkt::http(19)));
    assert_eq!(g.file, "http://192.168.77.1:8080/tftp/snp-arm64.efi");
    // iPXE on arm64 only needs the script.
    let g = reply(&run(&cfg(""), ListenPort::Dhcp, &Pkt::uefi(11).ipxe()));
    assert_eq!(g.file, "http://192.168.77.1:8080/boot.ipxe");
}

#[test]
fn every_entry_of_option_93_is_read() {
    // An unsupported first entry followed by x64 UEFI.
    let p = Pkt::new(b"PXEClient", &[6, 7]);
    let o = run(&cfg(""), ListenPort::Dhcp, &p);
    reply(&o);
    assert_eq!(o.client.as_ref().unwrap().arch, Some(7));
    assert_eq!(o.client.unwrap().architectures, vec![6, 7]);
    // arm64 first without a binary, then x64.
    let p = Pkt::new(b"PXEClient", &[11, 9]);
    assert_eq!(
        run(&cfg(""), ListenPort::Dhcp, &p).client.unwrap().arch,
        Some(9)
    );
}

#[test]
fn other_arches_and_missing_arch_are_ignored() {
    for a in [1, 2, 6, 10, 15, 18, 41, 300] {
        let p = Pkt::new(b"PXEClient", &[a]);
        assert_eq!(
            ignored(&run(&cfg(""), ListenPort::Dhcp, &p)),
            IgnoreReason::UnsupportedArch,
            "arch {a}"
        );
    }
    let p = Pkt::new(b"PXEClient", &[]);
    assert_eq!(
        ignored(&run(&cfg(""), ListenPort::Dhcp, &p)),
        IgnoreReason::NoArch
    );
    // BIOS cannot HTTP boot.
    assert_eq!(
        ignored(&run(&cfg(""), ListenPort::Dhcp, &Pkt::http(0))),
        IgnoreReason::UnsupportedArch
    );
}

#[test]
fn option_97_is_echoed_only_if_sent_and_94_is_optional() {
    let p = Pkt {
        guid: false,
        ndi: false,
        ..Pkt::bios()
    };
    let g = reply(&run(&cfg(""), ListenPort::Dhcp, &p));
    assert_eq!(opt97(&g), None);
    assert_eq!(g.file, "undionly.kpxe");
}

#[test]
fn ordinary_dhcp_clients_get_nothing() {
    for vendor in [
        None,
        Some(&b"MSFT 5.0"[..]),
        Some(&b"udhcp 1.35.0"[..]),
        Some(&b"PXEClien"[..]),
    ] {
        let p = Pkt {
            vendor: vendor.map(<[u8]>::to_vec),
            ..Pkt::bios()
        };
        assert_eq!(
            ignored(&run(&cfg(""), ListenPort::Dhcp, &p)),
            IgnoreReason::NotPxe
        );
    }
}

#[test]
fn message_types_per_port() {
    let c = cfg("");
    let mut p = Pkt::bios();
    p.msg = v4::MessageType::Request;
    assert_eq!(
        ignored(&run(&c, ListenPort::Dhcp, &p)),
        IgnoreReason::RequestOnDhcpPort
    );
    p.msg = v4::MessageType::Release;
    assert_eq!(
        ignored(&run(&c, ListenPort::Dhcp, &p)),
        IgnoreReason::NotDiscoverOrRequest
    );
    p.msg = v4::MessageType::Discover;
    assert_eq!(
        ignored(&run(&c, ListenPort::Pxe, &p)),
        IgnoreReason::DiscoverOnProxyPort
    );
}

#[test]
fn vendor_prefixes_are_configurable_and_echoed() {
    let p = Pkt::new(b"HW-Client:Arch:00000", &[0]);
    assert_eq!(
        ignored(&run(&cfg(""), ListenPort::Dhcp, &p)),
        IgnoreReason::NotPxe
    );
    let g = reply(&run(
        &cfg("vendor_prefixes = [\"HW-Client\"]"),
        ListenPort::Dhcp,
        &p,
    ));
    assert_eq!(opt60(&g), b"HW-Client");
}

#[test]
fn relayed_discover_goes_to_giaddr_67() {
    let p = Pkt {
        giaddr: Ipv4Addr::new(10, 55, 0, 1),
        ..Pkt::bios()
    };
    let o = run(&cfg(""), ListenPort::Dhcp, &p);
    let g = reply(&o);
    assert_eq!(g.dest, SocketAddrV4::new(Ipv4Addr::new(10, 55, 0, 1), 67));
    assert_eq!(g.msg.giaddr(), Ipv4Addr::new(10, 55, 0, 1));
    assert_eq!(g.file, "undionly.kpxe");
}

#[test]
fn excluded_interface_is_ignored_even_if_a_packet_arrives() {
    let c = cfg("exclude_interfaces = [\"virbr*\"]");
    assert_eq!(
        ignored(&run_on(&c, "virbr0", ListenPort::Dhcp, &Pkt::bios())),
        IgnoreReason::InterfaceExcluded
    );
}

const SEED_RULES: &str = r#"
[[rules]]
name = "netboot-xyz"
mac = "02:1a:4a:16:01:9c"
url = "http://10.10.254.200:8081/menus/menu.ipxe"
"#;

#[test]
fn seed_rules_route_one_mac_to_netboot_xyz() {
    let c = cfg(SEED_RULES);
    let netboot_mac = [0x02, 0x1a, 0x4a, 0x16, 0x01, 0x9c];
    // Firmware of that machine still gets iPXE first.
    let p = Pkt {
        mac: netboot_mac,
        ..Pkt::bios()
    };
    assert_eq!(reply(&run(&c, ListenPort::Dhcp, &p)).file, "undionly.kpxe");
    // Its iPXE gets the netboot.xyz menu.
    let p = Pkt {
        mac: netboot_mac,
        ..Pkt::bios().ipxe()
    };
    let o = run(&c, ListenPort::Dhcp, &p);
    let Decision::Reply(r) = &o.decision else {
        panic!()
    };
    assert_eq!(r.rule.as_deref(), Some("netboot-xyz"));
    assert_eq!(r.file, "http://10.10.254.200:8081/menus/menu.ipxe");
    // Everybody else's iPXE gets Kindling's script.
    let g = reply(&run(&c, ListenPort::Dhcp, &Pkt::bios().ipxe()));
    assert_eq!(g.file, "http://192.168.77.1:8080/boot.ipxe");
}

#[test]
fn rules_match_in_order_on_every_key() {
    let c = cfg(r#"
[[rules]]
name = "skip-vms"
mac = "52:54:00:*:*:*"
interface = "eth1"
target = "ignore"
[[rules]]
name = "arm"
arch = "efi-arm64"
target = "ignore"
[[rules]]
name = "custom"
user_class = "kindling"
url = "http://{server_ip}:{http_port}/custom.ipxe"
[[rules]]
name = "hp"
vendor_class = "HW-"
target = "local_boot"
[[rules]]
name = "uefi-local"
arch = ["efi-x64", "efi-bc"]
target = "local_boot"
[[rules]]
name = "bios-local"
arch = "bios"
mac = "aa:*:*:*:*:*"
target = "local_boot"
"#);
    // Interface key: eth1 ignored, eth0 not.
    assert_eq!(
        ignored(&run_on(&c, "eth1", ListenPort::Dhcp, &Pkt::bios())),
        IgnoreReason::RuleIgnore
    );
    assert_eq!(
        reply(&run(&c, ListenPort::Dhcp, &Pkt::bios())).file,
        "undionly.kpxe"
    );
    // User class substring (RFC 3004 list).
    let p = Pkt {
        user_class: Some(b"\x04iPXE\x08kindling".to_vec()),
        ..Pkt::bios()
    };
    assert_eq!(
        reply(&run(&c, ListenPort::Dhcp, &p)).file,
        "http://192.168.77.1:8080/custom.ipxe"
    );
    // Local boot: UEFI stays silent.
    assert_eq!(
        ignored(&run(&c, ListenPort::Dhcp, &Pkt::uefi(9))),
        IgnoreReason::LocalBoot
    );
    // Local boot: BIOS gets a one-item type-0 menu.
    let p = Pkt {
        mac: [0xaa, 0, 0, 0, 0, 1],
        ..Pkt::bios()
    };
    let g = reply(&run(&c, ListenPort::Dhcp, &p));
    assert_eq!(g.file, "");
    let o43 = opt43(&g).unwrap();
    assert_eq!(&o43[..3], &[6, 1, 3]);
    assert!(o43.windows(2).any(|w| w == [9, 23]), "{o43:?}");
    // Arch by name.
    let c2 = cfg("arm64_binary = \"a.efi\"\n[[rules]]\narch = \"efi-arm64\"\ntarget = \"ignore\"");
    assert_eq!(
        ignored(&run(&c2, ListenPort::Dhcp, &Pkt::uefi(11))),
        IgnoreReason::RuleIgnore
    );
}

#[test]
fn malformed_and_hostile_input_never_panics_and_never_sets_yiaddr() {
    let c = cfg("arm64_binary = \"a.efi\"\nvendor_prefixes = [\"X\"]");
    let seeds = [
        Pkt::bios().bytes(),
        Pkt::uefi(7).to_4011(None).bytes(),
        Pkt::http(16).bytes(),
        Pkt::bios().ipxe().bytes(),
    ];
    // Deterministic xorshift mutation of valid packets.
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut replies = 0;
    for i in 0..20_000 {
        let mut b = seeds[i % seeds.len()].clone();
        let n = next() % 6;
        for _ in 0..=n {
            let r = next();
            match r % 4 {
                0 if !b.is_empty() => {
                    let at = (r >> 8) as usize % b.len();
                    b[at] = (r >> 32) as u8;
                }
                1 => {
                    let at = (r >> 8) as usize % (b.len() + 1);
                    b.truncate(at);
                }
                2 => b.push((r >> 16) as u8),
                _ if b.len() > 240 => {
                    let at = 240 + (r >> 8) as usize % (b.len() - 240);
                    b[at] = [43, 60, 77, 93, 97, 175, 52, 0, 255][(r >> 40) as usize % 9];
                }
                _ => {}
            }
        }
        for port in [ListenPort::Dhcp, ListenPort::Pxe] {
            let ctx = Context {
                iface: "eth0",
                server_ip: SERVER,
                port,
                source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
                local: LOCAL,
                secure_boot: None,
            };
            if let Decision::Reply(r) = decide(&c, &ctx, &b).decision {
                replies += 1;
                assert_eq!(&r.packet[16..20], &[0, 0, 0, 0]);
                assert!(r.packet.len() >= 300);
            }
        }
    }
    assert!(
        replies > 1000,
        "the mutations should still produce replies: {replies}"
    );
    let ctx = Context {
        iface: "eth0",
        server_ip: SERVER,
        port: ListenPort::Dhcp,
        source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        local: LOCAL,
        secure_boot: None,
    };
    let mut b = Pkt::bios().bytes();
    b[2] = 200; // hlen past chaddr: dhcproto's Message::chaddr() would panic here
    assert_eq!(
        decide(&c, &ctx, &b).decision,
        Decision::Ignore(IgnoreReason::Malformed)
    );
    let mut b = Pkt::bios().bytes();
    b[0] = 2;
    assert_eq!(
        decide(&c, &ctx, &b).decision,
        Decision::Ignore(IgnoreReason::NotBootRequest)
    );
    let mut b = Pkt::bios().bytes();
    b.truncate(b.len() - 3); // option 93 cut short
    assert_eq!(
        decide(&c, &ctx, &b).decision,
        Decision::Ignore(IgnoreReason::Malformed)
    );
    let mut b = Pkt::bios().bytes();
    b[1] = 6; // token ring: no MAC to route by
    assert_eq!(
        decide(&c, &ctx, &b).decision,
        Decision::Ignore(IgnoreReason::UnsupportedHardware)
    );
}

fn decide_from(port: ListenPort, source: SocketAddrV4, p: &Pkt) -> Outcome {
    let ctx = Context {
        iface: "eth0",
        server_ip: SERVER,
        port,
        source,
        local: LOCAL,
        secure_boot: None,
    };
    decide_pkt(&cfg(""), &ctx, p)
}

/// Addresses no reply may go to, with the class the check gives them.
const UNSAFE: &[(Ipv4Addr, UnsafeAddr)] = &[
    (Ipv4Addr::UNSPECIFIED, UnsafeAddr::Unspecified),
    (Ipv4Addr::new(0, 1, 2, 3), UnsafeAddr::Unspecified),
    (Ipv4Addr::BROADCAST, UnsafeAddr::Broadcast),
    (Ipv4Addr::new(224, 0, 0, 1), UnsafeAddr::Multicast),
    (Ipv4Addr::new(239, 255, 255, 250), UnsafeAddr::Multicast),
    (Ipv4Addr::new(240, 0, 0, 1), UnsafeAddr::Reserved),
    (Ipv4Addr::new(254, 1, 2, 3), UnsafeAddr::Reserved),
    (Ipv4Addr::LOCALHOST, UnsafeAddr::Loopback),
    (Ipv4Addr::new(127, 9, 9, 9), UnsafeAddr::Loopback),
    (Ipv4Addr::new(169, 254, 1, 1), UnsafeAddr::LinkLocal),
    (SERVER, UnsafeAddr::Own),
    (Ipv4Addr::new(10, 9, 0, 1), UnsafeAddr::Own),
    (
        Ipv4Addr::new(192, 168, 77, 255),
        UnsafeAddr::SubnetBroadcast,
    ),
    (Ipv4Addr::new(192, 168, 77, 0), UnsafeAddr::SubnetBroadcast),
    (Ipv4Addr::new(10, 9, 255, 255), UnsafeAddr::SubnetBroadcast),
];

#[test]
fn destination_check_accepts_only_unicast_addresses_of_other_hosts() {
    for (a, kind) in UNSAFE {
        assert_eq!(check_destination(*a, SERVER, LOCAL), Err(*kind), "{a}");
    }
    for a in [
        Ipv4Addr::new(192, 168, 77, 2),
        Ipv4Addr::new(192, 168, 77, 254),
        Ipv4Addr::new(10, 55, 0, 1),
        Ipv4Addr::new(10, 9, 0, 255), // inside a /16: an ordinary host
        Ipv4Addr::new(223, 255, 255, 254),
        Ipv4Addr::new(1, 1, 1, 1),
    ] {
        assert_eq!(check_destination(a, SERVER, LOCAL), Ok(()), "{a}");
    }
    // Our own address counts even when the interface list does not have it yet.
    assert_eq!(check_destination(SERVER, SERVER, &[]), Err(UnsafeAddr::Own));
    // Link-local is fine on a link-local network.
    let ll = Ipv4Addr::new(169, 254, 0, 1);
    assert_eq!(
        check_destination(Ipv4Addr::new(169, 254, 7, 7), ll, &[]),
        Ok(())
    );
    // /31 and /32 have no broadcast address.
    let p2p = [(
        Ipv4Addr::new(10, 1, 1, 0),
        Ipv4Addr::new(255, 255, 255, 254),
    )];
    assert_eq!(
        check_destination(Ipv4Addr::new(10, 1, 1, 1), SERVER, &p2p),
        Ok(())
    );
}

#[test]
fn relayed_discover_with_an_unsafe_giaddr_is_not_answered() {
    for (a, _) in UNSAFE.iter().filter(|(a, _)| !a.is_unspecified()) {
        let p = Pkt {
            giaddr: *a,
            ..Pkt::bios()
        };
        let o = decide_from(
            ListenPort::Dhcp,
            SocketAddrV4::new(Ipv4Addr::new(10, 55, 0, 1), 67),
            &p,
        );
        assert_eq!(ignored(&o), IgnoreReason::UnsafeGiaddr, "giaddr {a}");
    }
    // A real relay is answered at giaddr:67, wherever the datagram came from.
    let p = Pkt {
        giaddr: Ipv4Addr::new(10, 55, 0, 1),
        ..Pkt::bios()
    };
    let o = decide_from(
        ListenPort::Dhcp,
        SocketAddrV4::new(Ipv4Addr::new(192, 168, 77, 9), 67),
        &p,
    );
    assert_eq!(
        reply(&o).dest,
        SocketAddrV4::new(Ipv4Addr::new(10, 55, 0, 1), 67)
    );
}

#[test]
fn proxy_port_acks_go_to_the_source_never_to_ciaddr() {
    let client = SocketAddrV4::new(Ipv4Addr::new(192, 168, 77, 50), 4011);
    // Whatever ciaddr says (another host, broadcast, multicast, loopback, ours), the ACK goes
    // to the source address and port.
    for ciaddr in [
        Ipv4Addr::new(192, 168, 77, 51),
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::LOCALHOST,
        SERVER,
        Ipv4Addr::UNSPECIFIED,
    ] {
        let mut p = Pkt::uefi(7).to_4011(None);
        p.ciaddr = ciaddr;
        let g = reply(&decide_from(ListenPort::Pxe, client, &p));
        assert_eq!(g.dest, client, "ciaddr {ciaddr}");
        assert_eq!(g.file, "snponly.efi");
    }
    // BIOS ROMs send from 68: answered at 68.
    let from68 = SocketAddrV4::new(Ipv4Addr::new(192, 168, 77, 50), 68);
    let g = reply(&decide_from(
        ListenPort::Pxe,
        from68,
        &Pkt::bios().to_4011(None),
    ));
    assert_eq!(g.dest, from68);
    // An unsafe source (or port 0) is not answered at all.
    for (a, _) in UNSAFE {
        let src = SocketAddrV4::new(*a, 4011);
        assert_eq!(
            ignored(&decide_from(
                ListenPort::Pxe,
                src,
                &Pkt::uefi(7).to_4011(None)
            )),
            IgnoreReason::UnsafeSource,
            "source {a}"
        );
    }
    let port0 = SocketAddrV4::new(Ipv4Addr::new(192, 168, 77, 50), 0);
    assert_eq!(
        ignored(&decide_from(
            ListenPort::Pxe,
            port0,
            &Pkt::uefi(7).to_4011(None)
        )),
        IgnoreReason::UnsafeSource
    );
}

#[test]
fn port_67_unicasts_only_to_a_safe_source_that_is_its_ciaddr() {
    let any68 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
    // The broadcast flag is clear in these packets (dhcproto's default).
    for ciaddr in [
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::new(224, 0, 0, 1),
        SERVER,
        Ipv4Addr::new(192, 168, 77, 51),
    ] {
        let p = Pkt {
            ciaddr,
            ..Pkt::bios()
        };
        let g = reply(&decide_from(ListenPort::Dhcp, any68, &p));
        assert_eq!(g.dest, BCAST, "ciaddr {ciaddr} from 0.0.0.0");
        let g = reply(&decide_from(
            ListenPort::Dhcp,
            SocketAddrV4::new(ciaddr, 68),
            &p,
        ));
        let want = if check_destination(ciaddr, SERVER, LOCAL).is_ok() {
            SocketAddrV4::new(ciaddr, 68)
        } else {
            BCAST
        };
        assert_eq!(g.dest, want, "ciaddr {ciaddr} from itself");
    }
}

/// Secure Boot routing (`[secure_boot]`, rules' `secure_boot`).
#[path = "secureboot_tests.rs"]
mod secureboot;
