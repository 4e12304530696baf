//! PXE boot menus with a prompt and port-4011 boot items, side by side with dnsmasq 2.90 in
//! network namespaces created by each test (root only; skipped with a message otherwise):
//! the same packets go to Kindling (`[dhcp.pxe_menu]`) and to dnsmasq (`pxe-prompt` and
//! `pxe-service` lines) and the replies are compared byte for byte where they must agree.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use common::*;

const BCAST67: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
const ANY68: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
const PXE: SocketAddrV4 = SocketAddrV4::new(SERVER, 4011);
const WAIT: Duration = Duration::from_secs(2);
const SILENCE: Duration = Duration::from_millis(1500);

const KINDLING_MENU: &str = "enabled = true
interfaces = [\"s0\"]
[dhcp.pxe_menu]
prompt = \"Press F8 for menu\"
timeout_secs = 5
[[dhcp.pxe_menu.items]]
text = \"Boot from local disk\"
target = \"local_boot\"
[[dhcp.pxe_menu.items]]
text = \"Install Fedora CoreOS\"
";

const DNSMASQ_MENU: &str = "dhcp-range=192.168.77.0,proxy,255.255.255.0
pxe-prompt=\"Press F8 for menu\",5
pxe-service=x86PC,\"Boot from local disk\"
pxe-service=x86PC,\"Install Fedora CoreOS\",undionly.kpxe
";

/// The offer to a BIOS DISCOVER and the ACKs to 4011 REQUESTs for `items`.
fn menu_replies(lab: &Lab, p: &Pkt, items: &[u16]) -> (Got, Vec<Vec<Got>>) {
    let sock = lab.c.udp("c0", ANY68);
    let mut p = p.clone();
    p.xid = next_xid();
    let offer = one(exchange(&sock, &p, BCAST67, WAIT), "menu offer");
    let acks = items
        .iter()
        .map(|&t| {
            let mut r = p.to_4011(Some((t, 0)));
            r.xid = next_xid();
            exchange(&sock, &r, PXE, if t == 0x8000 { WAIT } else { SILENCE })
        })
        .collect();
    (offer, acks)
}

#[test]
fn bios_menu_with_prompt_matches_dnsmasq() {
    if !can_run("bios_menu_with_prompt_matches_dnsmasq") {
        return;
    }
    let lab = Lab::new();
    let items = [0x8000, 0x8001, 0];
    let k = Kindling::start(&lab.s, &lab.tmp, KINDLING_MENU).expect("kindling starts");
    let (ko, kacks) = menu_replies(&lab, &Pkt::bios(), &items);
    let stats = k.stop();
    let d = Dnsmasq::start(&lab.s, &lab.tmp, "s0", DNSMASQ_MENU);
    let (dof, dacks) = menu_replies(&lab, &Pkt::bios(), &items);
    drop(d);

    // The offer: the same option 43 (discovery control, boot servers, menu, prompt), no file.
    check_proxy_reply(&ko, SERVER);
    assert_eq!(ko.opt43(), dof.opt43(), "the same menu bytes as dnsmasq");
    assert_eq!((ko.file(), dof.file()), (String::new(), String::new()));
    assert_eq!(ko.opt60(), dof.opt60());
    let subs: Vec<u8> = ko.pxe_subs().iter().map(|(c, _)| *c).collect();
    assert_eq!(subs, [6, 8, 9, 10]);

    // Item 0x8000 (the install line): the same file, server and option 43 (item echoed,
    // then the prompt) from both.
    let ka = one(kacks[0].clone(), "kindling ack 0x8000");
    let da = one(dacks[0].clone(), "dnsmasq ack 0x8000");
    check_proxy_reply(&ka, SERVER);
    assert_eq!(ka.file(), "undionly.kpxe");
    assert_eq!(ka.file(), da.file());
    assert_eq!(ka.msg.siaddr(), da.msg.siaddr());
    assert_eq!(ka.opt43(), da.opt43(), "the same ACK option 43 as dnsmasq");
    assert_eq!(ka.pxe_subs()[0], (71, vec![0x80, 0, 0, 0]));
    // Items no menu line has, and local boot: no answer from either.
    for (i, t) in items.iter().enumerate().skip(1) {
        assert!(kacks[i].is_empty(), "kindling answered item {t:#x}");
        assert!(dacks[i].is_empty(), "dnsmasq answered item {t:#x}");
    }
    assert_eq!(stats["ignored"]["unknown_boot_item"], 2, "{stats}");
}

#[test]
fn ipxe_boot_item_on_4011_is_echoed_like_dnsmasq() {
    if !can_run("ipxe_boot_item_on_4011_is_echoed_like_dnsmasq") {
        return;
    }
    // iPXE's `pxebs net0 0x8000` sends a 4011 REQUEST with item 0x8000 and drops an ACK
    // that does not echo it (no option 43 was sent before).
    let lab = Lab::new();
    let conf = "dhcp-range=192.168.77.0,proxy,255.255.255.0
pxe-service=x86PC,\"Install\",undionly.kpxe
";
    let p = Pkt::bios().ipxe().to_4011(Some((0x8000, 0)));
    let sock = lab.c.udp("c0", ANY68);
    let k = Kindling::start(&lab.s, &lab.tmp, "enabled = true\ninterfaces = [\"s0\"]\n").unwrap();
    let ka = one(exchange(&sock, &p, PXE, WAIT), "kindling ack");
    k.stop();
    let d = Dnsmasq::start(&lab.s, &lab.tmp, "s0", conf);
    let mut p2 = p.clone();
    p2.xid = next_xid();
    let da = one(exchange(&sock, &p2, PXE, WAIT), "dnsmasq ack");
    drop(d);
    check_proxy_reply(&ka, SERVER);
    let item = |g: &Got| g.pxe_subs().into_iter().find(|(c, _)| *c == 71);
    assert_eq!(item(&ka), Some((71, vec![0x80, 0, 0, 0])));
    assert_eq!(item(&ka), item(&da), "the same boot item echo as dnsmasq");
    // Kindling gives iPXE its script (dnsmasq, configured for firmware, the binary).
    assert_eq!(ka.file(), "http://192.168.77.1:8080/boot.ipxe");
}
