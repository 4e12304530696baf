//! Protocol tests inside network namespaces created by each test (root only; skipped with a
//! message otherwise). Kindling's proxy DHCP runs as the `proxydhcp` example under
//! `ip netns exec`; a test client in another namespace sends hand-built PXE packets. Where
//! Debian's dnsmasq 2.90 answers the same case, the same packets go to it with the equivalent
//! configuration and the boot-relevant fields are compared (docs/dhcp.md lists the deliberate
//! differences).

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use common::*;
use dhcproto::v4::MessageType;

const BCAST67: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
const ANY68: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
const WAIT: Duration = Duration::from_secs(2);
const SILENCE: Duration = Duration::from_millis(1500);

const KINDLING: &str = "enabled = true\ninterfaces = [\"s0\"]\nhttp_port = 8080\n";

/// The dnsmasq configuration equivalent to Kindling's defaults (matchbox-style recipe plus
/// the UEFI and HTTP Boot lines dnsmasq needs).
fn dnsmasq_equivalent(arm64: bool) -> String {
    let mut s = String::from(
        "dhcp-range=192.168.77.0,proxy,255.255.255.0
dhcp-range=10.55.0.0,proxy,255.255.255.0
dhcp-pxe-vendor=PXEClient,HTTPClient
dhcp-userclass=set:ipxe,iPXE
dhcp-match=set:ipxe,175
dhcp-match=set:httpboot,option:client-arch,16
pxe-service=tag:!ipxe,x86PC,\"PXE chainload to iPXE\",undionly.kpxe
pxe-service=tag:!ipxe,X86-64_EFI,\"iPXE UEFI\",snponly.efi
pxe-service=tag:!ipxe,BC_EFI,\"iPXE UEFI\",snponly.efi
dhcp-boot=tag:ipxe,http://192.168.77.1:8080/boot.ipxe,,192.168.77.1
dhcp-boot=tag:httpboot,http://192.168.77.1:8080/tftp/ipxe.efi,,192.168.77.1
",
    );
    if arm64 {
        s.push_str("pxe-service=tag:!ipxe,ARM64_EFI,\"iPXE arm64\",snp-arm64.efi\n");
    }
    s
}

struct Run {
    offer: Got,
    boot: (Ipv4Addr, String),
    ack: Option<Got>,
}

fn client(lab: &Lab, bind: SocketAddrV4) -> std::net::UdpSocket {
    lab.c.udp("c0", bind)
}

fn discover(lab: &Lab, bind: SocketAddrV4, dest: SocketAddrV4, p: &Pkt) -> Option<Run> {
    let sock = client(lab, bind);
    let replies = exchange(&sock, p, dest, WAIT);
    if replies.is_empty() {
        return None;
    }
    let offer = one(replies, "offer");
    let sock68 = if bind == ANY68 {
        sock
    } else {
        client(lab, ANY68)
    };
    let (srv, file, ack) = resolve_boot(&sock68, p, &offer);
    Some(Run {
        offer,
        boot: (srv, file),
        ack,
    })
}

/// Runs one case against Kindling, then (same packets, fresh xid) against dnsmasq.
fn both(
    lab: &Lab,
    kindling_cfg: &str,
    dnsmasq_conf: &str,
    bind: SocketAddrV4,
    dest: SocketAddrV4,
    p: &Pkt,
) -> (Option<Run>, Option<Run>) {
    let k = Kindling::start(&lab.s, &lab.tmp, kindling_cfg).expect("kindling starts");
    let kr = discover(lab, bind, dest, p);
    let stats = k.stop();
    assert_eq!(stats["refused_unsafe"], 0);
    if kr.is_some() {
        // The server's own counters (what /metrics shows): the packets it saw from this
        // PXE client and the replies it sent.
        let n = |k: &str| stats[k].as_u64().unwrap_or(0);
        let seen: u64 = stats["seen"]
            .as_object()
            .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
            .unwrap_or(0);
        assert!(n("offers") + n("acks") >= 1, "{stats}");
        assert!(seen >= 1, "{stats}");
        assert!(n("received") >= seen, "{stats}");
    }
    let d = Dnsmasq::start(&lab.s, &lab.tmp, "s0", dnsmasq_conf);
    let mut p2 = p.clone();
    p2.xid ^= 0x00ff_0000;
    let dr = discover(lab, bind, dest, &p2);
    drop(d);
    (kr, dr)
}

/// The fields both servers must agree on.
fn same_boot(k: &Run, d: &Run) {
    assert_eq!(k.boot, d.boot, "where the client boots from");
    assert_eq!(k.offer.opt54(), d.offer.opt54(), "option 54");
    assert_eq!(k.offer.opt60(), d.offer.opt60(), "option 60");
    assert_eq!(k.offer.opt97(), d.offer.opt97(), "option 97");
    assert_eq!(k.offer.msg.yiaddr(), d.offer.msg.yiaddr(), "yiaddr");
    assert_eq!(k.offer.msg.giaddr(), d.offer.msg.giaddr(), "giaddr");
    assert_eq!(k.offer.msg_type(), MessageType::Offer);
    assert_eq!(d.offer.msg_type(), MessageType::Offer);
}

#[test]
fn bios_discover_and_4011_request() {
    if !can_run("bios_discover_and_4011_request") {
        return;
    }
    let lab = Lab::new();
    let p = Pkt::bios();
    let (k, d) = both(
        &lab,
        KINDLING,
        &dnsmasq_equivalent(false),
        ANY68,
        BCAST67,
        &p,
    );
    let k = k.expect("Kindling answers BIOS");
    check_proxy_reply(&k.offer, SERVER);
    assert_eq!(k.offer.from, SocketAddrV4::new(SERVER, 67));
    assert_eq!(k.offer.msg.siaddr(), SERVER);
    assert_eq!(k.offer.file(), "undionly.kpxe");
    assert_eq!(k.offer.opt60().as_deref(), Some("PXEClient"));
    assert_eq!(k.offer.opt43(), Some(vec![6, 1, 8, 255]));
    assert_eq!(k.offer.opt97(), Some(GUID.to_vec()));
    assert!(k.offer.msg.flags().broadcast());
    let d = d.expect("dnsmasq answers BIOS");
    same_boot(&k, &d);
    assert_eq!(k.boot, (SERVER, "undionly.kpxe".to_string()));

    // The 4011 REQUEST a ROM sends after boot-server discovery (boot item 0x8000), which
    // Kindling answers too, echoing sub-option 71 like dnsmasq.
    let kd = Kindling::start(&lab.s, &lab.tmp, KINDLING).unwrap();
    let sock = client(&lab, ANY68);
    let req = p.to_4011(Some((0x8000, 0)));
    let ack = one(
        exchange(&sock, &req, SocketAddrV4::new(SERVER, 4011), WAIT),
        "ack",
    );
    check_proxy_reply(&ack, SERVER);
    assert_eq!(ack.from, SocketAddrV4::new(SERVER, 4011));
    assert_eq!(ack.msg_type(), MessageType::Ack);
    assert_eq!(ack.msg.siaddr(), SERVER);
    assert_eq!(ack.file(), "undionly.kpxe");
    assert_eq!(ack.opt60().as_deref(), Some("PXEClient"));
    assert_eq!(ack.opt43(), Some(vec![71, 4, 0x80, 0, 0, 0, 255]));
    assert_eq!(ack.opt97(), Some(GUID.to_vec()));
    let stats = kd.stop();
    assert_eq!(stats["acks"], 1);
    // dnsmasq's ACK to the same request (its menu item 0x8000).
    let dd = Dnsmasq::start(&lab.s, &lab.tmp, "s0", &dnsmasq_equivalent(false));
    let mut req2 = req.clone();
    req2.xid ^= 0x00ff_0000;
    let dack = one(
        exchange(&sock, &req2, SocketAddrV4::new(SERVER, 4011), WAIT),
        "dnsmasq ack",
    );
    drop(dd);
    assert_eq!(dack.file(), ack.file());
    assert_eq!(dack.msg.siaddr(), ack.msg.siaddr());
    assert_eq!(dack.opt43(), ack.opt43());
    assert_eq!(dack.opt60(), ack.opt60());
}

#[test]
fn uefi_x64_discover_and_4011_request() {
    if !can_run("uefi_x64_discover_and_4011_request") {
        return;
    }
    let lab = Lab::new();
    for arch in [7, 9] {
        let p = Pkt::uefi(arch);
        let (k, d) = both(
            &lab,
            KINDLING,
            &dnsmasq_equivalent(false),
            ANY68,
            BCAST67,
            &p,
        );
        let k = k.expect("Kindling answers UEFI");
        check_proxy_reply(&k.offer, SERVER);
        assert_eq!(k.offer.msg.siaddr(), SERVER);
        assert_eq!(
            k.offer.file(),
            "",
            "no file on 67: the firmware must ask 4011"
        );
        assert_eq!(k.offer.opt43(), None, "no option 43 on 67 for UEFI");
        assert_eq!(k.offer.opt60().as_deref(), Some("PXEClient"));
        assert_eq!(k.offer.opt97(), Some(GUID.to_vec()));
        let ack = k.ack.as_ref().expect("went through 4011");
        check_proxy_reply(ack, SERVER);
        assert_eq!(ack.from, SocketAddrV4::new(SERVER, 4011));
        assert_eq!(ack.file(), "snponly.efi");
        assert_eq!(ack.sname(), "192.168.77.1");
        assert_eq!(ack.msg.siaddr(), SERVER);
        assert_eq!(ack.opt43(), None);
        assert_eq!(ack.opt60().as_deref(), Some("PXEClient"));
        assert_eq!(ack.opt97(), Some(GUID.to_vec()));
        let d = d.expect("dnsmasq answers UEFI");
        same_boot(&k, &d);
        assert_eq!(k.offer.opt43(), d.offer.opt43());
        assert_eq!(k.offer.file(), d.offer.file());
        let dack = d.ack.as_ref().expect("dnsmasq goes through 4011 too");
        assert_eq!(ack.sname(), dack.sname());
        assert_eq!(ack.opt43(), dack.opt43());
    }
}

#[test]
fn ipxe_discover_by_option_77_and_175() {
    if !can_run("ipxe_discover_by_option_77_and_175") {
        return;
    }
    let lab = Lab::new();
    let by175 = |mut p: Pkt| {
        p.opt175 = true;
        p
    };
    for p in [
        Pkt::bios().ipxe(),
        by175(Pkt::bios()),
        Pkt::uefi(7).ipxe(),
        by175(Pkt::uefi(7)),
    ] {
        let (k, d) = both(
            &lab,
            KINDLING,
            &dnsmasq_equivalent(false),
            ANY68,
            BCAST67,
            &p,
        );
        let k = k.expect("Kindling answers iPXE");
        check_proxy_reply(&k.offer, SERVER);
        assert_eq!(
            k.offer.msg.siaddr(),
            SERVER,
            "iPXE ignores proxy offers without siaddr"
        );
        assert_eq!(k.offer.file(), "http://192.168.77.1:8080/boot.ipxe");
        assert_eq!(k.offer.opt43(), None);
        assert_eq!(k.offer.opt60().as_deref(), Some("PXEClient"));
        assert_eq!(k.offer.opt97(), Some(GUID.to_vec()));
        assert!(k.ack.is_none(), "iPXE boots straight from the offer");
        let d = d.expect("dnsmasq answers iPXE");
        same_boot(&k, &d);
    }
}

#[test]
fn http_boot_arch_16() {
    if !can_run("http_boot_arch_16") {
        return;
    }
    let lab = Lab::new();
    let p = Pkt::http(16);
    let (k, d) = both(
        &lab,
        KINDLING,
        &dnsmasq_equivalent(false),
        ANY68,
        BCAST67,
        &p,
    );
    let k = k.expect("Kindling answers HTTPClient");
    check_proxy_reply(&k.offer, SERVER);
    assert_eq!(k.offer.opt60().as_deref(), Some("HTTPClient"));
    assert_eq!(k.offer.file(), "http://192.168.77.1:8080/tftp/ipxe.efi");
    assert_eq!(k.offer.msg.siaddr(), SERVER);
    assert_eq!(k.offer.opt43(), None);
    assert_eq!(k.offer.opt97(), Some(GUID.to_vec()));
    let d = d.expect("dnsmasq (dhcp-pxe-vendor=...,HTTPClient) answers");
    same_boot(&k, &d);
    assert_eq!(k.offer.file(), d.offer.file());
}

#[test]
fn arm64_with_and_without_binary() {
    if !can_run("arm64_with_and_without_binary") {
        return;
    }
    let lab = Lab::new();
    // Without an arm64 binary Kindling stays silent; dnsmasq sends a dead end.
    let p = Pkt::uefi(11);
    let k = Kindling::start(&lab.s, &lab.tmp, KINDLING).unwrap();
    let sock = client(&lab, ANY68);
    assert!(
        exchange(&sock, &p, BCAST67, SILENCE).is_empty(),
        "no answer without a binary"
    );
    let events = k.events();
    let stats = k.stop();
    assert_eq!(stats["ignored"]["unsupported_arch_no_binary"], 1);
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "unsupported_arch_no_binary"),
        "{events:?}"
    );
    let d = Dnsmasq::start(&lab.s, &lab.tmp, "s0", &dnsmasq_equivalent(false));
    let mut p2 = p.clone();
    p2.xid ^= 0x00ff_0000;
    let run = discover(&lab, ANY68, BCAST67, &p2).expect("dnsmasq answers arm64 anyway");
    drop(d);
    assert_eq!(
        run.boot.1, "",
        "dnsmasq's arm64 answer leads nowhere (documented difference)"
    );

    // With one, both boot it.
    let cfg = format!("{KINDLING}arm64_binary = \"snp-arm64.efi\"\n");
    let (k, d) = both(&lab, &cfg, &dnsmasq_equivalent(true), ANY68, BCAST67, &p);
    let k = k.expect("Kindling answers arm64 with a binary");
    check_proxy_reply(&k.offer, SERVER);
    assert_eq!(k.offer.opt43(), None);
    assert_eq!(k.offer.msg.siaddr(), SERVER);
    assert_eq!(k.offer.opt60().as_deref(), Some("PXEClient"));
    assert_eq!(k.offer.opt97(), Some(GUID.to_vec()));
    assert_eq!(k.boot, (SERVER, "snp-arm64.efi".to_string()));
    same_boot(&k, &d.expect("dnsmasq with an ARM64_EFI service"));
}

#[test]
fn relayed_discover_is_answered_to_giaddr() {
    if !can_run("relayed_discover_is_answered_to_giaddr") {
        return;
    }
    let lab = Lab::new();
    let mut p = Pkt::bios();
    p.giaddr = RELAY;
    let relay = SocketAddrV4::new(RELAY, 67);
    let (k, d) = both(
        &lab,
        KINDLING,
        &dnsmasq_equivalent(false),
        relay,
        SocketAddrV4::new(SERVER, 67),
        &p,
    );
    let k = k.expect("Kindling answers the relay");
    check_proxy_reply(&k.offer, SERVER);
    assert_eq!(k.offer.msg.giaddr(), RELAY);
    assert_eq!(k.offer.msg.siaddr(), SERVER);
    assert_eq!(k.offer.file(), "undionly.kpxe");
    assert_eq!(k.offer.opt43(), Some(vec![6, 1, 8, 255]));
    assert_eq!(k.offer.opt60().as_deref(), Some("PXEClient"));
    assert_eq!(k.offer.opt97(), Some(GUID.to_vec()));
    same_boot(&k, &d.expect("dnsmasq answers the relay"));
}

#[test]
fn local_boot_menu_matches_dnsmasq() {
    if !can_run("local_boot_menu_matches_dnsmasq") {
        return;
    }
    let lab = Lab::new();
    let cfg = format!("{KINDLING}[[dhcp.rules]]\narch = \"bios\"\ntarget = \"local_boot\"\n");
    let conf =
        "dhcp-range=192.168.77.0,proxy,255.255.255.0\npxe-service=x86PC,\"Boot from local disk\"\n";
    let p = Pkt::bios();
    let k = Kindling::start(&lab.s, &lab.tmp, &cfg).unwrap();
    let sock = client(&lab, ANY68);
    let ko = one(exchange(&sock, &p, BCAST67, WAIT), "kindling local boot");
    k.stop();
    let d = Dnsmasq::start(&lab.s, &lab.tmp, "s0", conf);
    let mut p2 = p.clone();
    p2.xid ^= 0x00ff_0000;
    let dof = one(exchange(&sock, &p2, BCAST67, WAIT), "dnsmasq local boot");
    drop(d);
    check_proxy_reply(&ko, SERVER);
    assert_eq!(
        ko.opt43(),
        dof.opt43(),
        "the same local-boot menu bytes as dnsmasq"
    );
    assert_eq!(ko.file(), "");
    // UEFI clients under a local_boot rule get nothing.
    let cfg = format!("{KINDLING}[[dhcp.rules]]\ntarget = \"local_boot\"\n");
    let k = Kindling::start(&lab.s, &lab.tmp, &cfg).unwrap();
    assert!(exchange(&sock, &Pkt::uefi(7), BCAST67, SILENCE).is_empty());
    assert_eq!(k.stop()["ignored"]["local_boot"], 1);
}

/// A storm's burst: many machines' DISCOVERs arrive together, so their broadcast offers
/// leave in batches (one `sendmmsg` of frames on the packet socket; the server is
/// stopped while they arrive, so that it finds them queued). Every machine gets exactly
/// its own offer, whole: a frame built from the wrong reply, or cut at the wrong place,
/// decodes as another machine's or fails the receiving kernel's UDP checksum (dropped).
#[test]
fn a_burst_of_discovers_gets_every_offer_whole() {
    if !can_run("a_burst_of_discovers_gets_every_offer_whole") {
        return;
    }
    const N: usize = 64;
    let lab = Lab::new();
    // The lab's client has an address: its packets all come from it, and a per-address
    // bucket would answer the first 40 only (real firmware sends from 0.0.0.0).
    let cfg = format!("{KINDLING}rate_limit = {{ ip_burst = 0 }}\n");
    let k = Kindling::start(&lab.s, &lab.tmp, &cfg).expect("kindling starts");
    let sock = client(&lab, ANY68);
    // BIOS and UEFI in turn: offers of different lengths side by side in a batch.
    let pkts: Vec<Pkt> = (0..N)
        .map(|i| {
            let mut p = if i % 2 == 0 {
                Pkt::bios()
            } else {
                Pkt::uefi(7)
            };
            p.mac = [0x52, 0x54, 0x00, 0xbb, (i >> 8) as u8, i as u8];
            p
        })
        .collect();
    // Stopped while they arrive, the server finds them all queued: batches of 32.
    let pid = k.proc.pid();
    // SAFETY: kill(2) takes no pointers; `pid` is the server this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    for p in &pkts {
        sock.send_to(&p.bytes(), BCAST67).expect("send");
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let mut got: std::collections::HashMap<u32, Vec<Got>> = Default::default();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got.len() < N && std::time::Instant::now() < deadline {
        for g in collect_all(&sock, Duration::from_millis(200)) {
            got.entry(g.msg.xid()).or_default().push(g);
        }
    }
    let stats = k.stop();
    for (i, p) in pkts.iter().enumerate() {
        let offers = got.get(&p.xid).map_or(&[][..], Vec::as_slice);
        assert_eq!(offers.len(), 1, "machine {i}: {offers:#?}");
        let o = &offers[0];
        check_proxy_reply(o, SERVER);
        assert_eq!(o.msg.chaddr().get(..6), Some(&p.mac[..]), "machine {i}");
        assert_eq!(o.opt97(), Some(GUID.to_vec()), "machine {i}");
        // BIOS is sent to its file; UEFI to port 4011 (no file in the offer).
        let file = if i % 2 == 0 { "undionly.kpxe" } else { "" };
        assert_eq!(o.file(), file, "machine {i}");
    }
    assert_eq!(got.len(), N, "no offer for another xid");
    assert_eq!(stats["offers"], N as u64, "{stats}");
}

#[test]
fn ordinary_dhcp_clients_get_nothing() {
    if !can_run("ordinary_dhcp_clients_get_nothing") {
        return;
    }
    let lab = Lab::new();
    let k = Kindling::start(&lab.s, &lab.tmp, KINDLING).unwrap();
    let sock = client(&lab, ANY68);
    let mut sent = 0;
    for vendor in [
        None,
        Some("MSFT 5.0"),
        Some("android-dhcp-14"),
        Some("PXEClien"),
    ] {
        let mut p = Pkt::bios();
        p.vendor = vendor.map(|v| v.as_bytes().to_vec());
        assert!(
            exchange(&sock, &p, BCAST67, SILENCE).is_empty(),
            "{vendor:?}"
        );
        sent += 1;
    }
    drop(sock);
    // A real client: busybox udhcpc, three DISCOVERs.
    if have("busybox") {
        let out = lab
            .c
            .cmd("busybox")
            .args([
                "udhcpc",
                "-i",
                "c0",
                "-n",
                "-q",
                "-f",
                "-t",
                "3",
                "-T",
                "1",
                "-A",
                "1",
                "-s",
                "/bin/true",
            ])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "udhcpc must not get a lease from a proxy"
        );
        sent += 3;
    } else {
        eprintln!("busybox missing: only the hand-built non-PXE clients ran");
    }
    let stats = k.stop();
    assert_eq!(stats["offers"], 0);
    assert_eq!(stats["acks"], 0);
    assert!(
        stats["ignored"]["not_pxe"].as_u64().unwrap() >= sent,
        "{stats}"
    );
}

#[test]
fn excluded_virbr0_sees_nothing_from_kindling() {
    if !can_run("excluded_virbr0_sees_nothing_from_kindling") {
        return;
    }
    if !have("tcpdump") {
        eprintln!("SKIP excluded_virbr0_sees_nothing_from_kindling: tcpdump missing");
        return;
    }
    let lab = Lab::new();
    // A libvirt-like bridge interface named virbr0 in the server namespace, its peer in V.
    let v = Netns::new("v");
    lab.s.veth("virbr0", "v0", &v);
    lab.s
        .ip(&["addr", "add", "192.168.122.1/24", "dev", "virbr0"]);
    lab.s.ip(&["link", "set", "virbr0", "up"]);
    v.ip(&["addr", "add", "192.168.122.2/24", "dev", "v0"]);
    v.ip(&["link", "set", "v0", "up"]);
    // libvirt's dnsmasq on virbr0 (a proxy here, with a recognisable menu).
    let _libvirt = Dnsmasq::start(
        &lab.s,
        &lab.tmp,
        "virbr0",
        "dhcp-range=192.168.122.0,proxy,255.255.255.0\n\
         pxe-service=x86PC,\"libvirt-marker\",pxelinux\n\
         pxe-service=X86-64_EFI,\"libvirt-efi\",grubx64.efi\n",
    );
    // Kindling on every interface except virbr0.
    let k = Kindling::start(
        &lab.s,
        &lab.tmp,
        "enabled = true\nall_interfaces = true\nexclude_interfaces = [\"virbr0\"]\n",
    )
    .expect("kindling starts next to dnsmasq");
    let pcap = lab.tmp.path().join("virbr0.pcap");
    let mut dump = Proc::spawn({
        let mut c = v.cmd("tcpdump");
        c.args(["-i", "v0", "-n", "-U", "-Z", "root", "-w"])
            .arg(&pcap)
            .arg("udp");
        c
    });
    dump.wait_for("listening on", true, Duration::from_secs(10))
        .expect("tcpdump");

    let vsock = v.udp("v0", ANY68);
    let cases = [Pkt::bios(), Pkt::uefi(7), Pkt::bios().ipxe(), Pkt::http(16)];
    let mut answered = 0;
    for p in &cases {
        let r = exchange(&vsock, p, BCAST67, WAIT);
        assert!(r.len() <= 1, "one server at most answers on virbr0: {r:#?}");
        answered += r.len();
        for g in &r {
            assert_eq!(g.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
            assert_ne!(g.file(), "undionly.kpxe");
            assert!(!g.file().contains("boot.ipxe"));
        }
    }
    // dnsmasq keeps answering on virbr0 (BIOS, UEFI, iPXE BIOS; not HTTPClient).
    assert_eq!(answered, 3, "libvirt's dnsmasq answers on virbr0");
    let bios = exchange(&vsock, &Pkt::bios(), BCAST67, WAIT);
    let menu = one(bios, "dnsmasq bios").opt43().unwrap();
    assert!(menu.windows(14).any(|w| w == b"libvirt-marker"));
    let mut ack_req = Pkt::uefi(7).to_4011(None);
    ack_req.ciaddr = Ipv4Addr::new(192, 168, 122, 2);
    let ack = one(
        exchange(
            &vsock,
            &ack_req,
            SocketAddrV4::new(Ipv4Addr::new(192, 168, 122, 1), 4011),
            WAIT,
        ),
        "dnsmasq 4011 on virbr0",
    );
    assert_eq!(ack.file(), "grubx64.efi");

    // Positive control: the same packets on s0 get Kindling's answers.
    let csock = client(&lab, ANY68);
    let g = one(
        exchange(&csock, &Pkt::bios(), BCAST67, WAIT),
        "kindling on s0",
    );
    assert_eq!(g.file(), "undionly.kpxe");
    assert_eq!(g.opt54(), Some(SERVER));

    std::thread::sleep(Duration::from_millis(300));
    dump.terminate();
    let events = k.events();
    let stats = k.stop();
    // Nothing from Kindling on the wire of virbr0: every server packet there is dnsmasq's
    // answer to one of our requests, one per request.
    let from_server: Vec<_> = pcap_udp(&pcap)
        .into_iter()
        .filter(|(src, sport, _)| {
            *src == Ipv4Addr::new(192, 168, 122, 1) && (*sport == 67 || *sport == 4011)
        })
        .collect();
    assert_eq!(
        from_server.len(),
        5,
        "3 offers + 1 offer + 1 ack, all dnsmasq's"
    );
    for (_, _, payload) in &from_server {
        let has = |s: &[u8]| payload.windows(s.len()).any(|w| w == s);
        assert!(!has(b"undionly.kpxe") && !has(b"snponly.efi") && !has(b"boot.ipxe"));
    }
    assert!(events.iter().all(|e| e["iface"] != "virbr0"), "{events:?}");
    assert_eq!(
        stats["offers"], 1,
        "only the s0 DISCOVER was answered: {stats}"
    );
}

#[test]
fn taken_port_gives_a_clear_error() {
    if !can_run("taken_port_gives_a_clear_error") {
        return;
    }
    let lab = Lab::new();
    // Someone (this test process) holds UDP 67 without SO_REUSEADDR.
    let _holder = lab
        .s
        .run(|| std::net::UdpSocket::bind("0.0.0.0:67").unwrap());
    let err = match Kindling::start(&lab.s, &lab.tmp, KINDLING) {
        Ok(_) => panic!("bind must fail while the port is held"),
        Err(e) => e,
    };
    assert!(err.contains("UDP 67 on s0 is in use"), "{err}");
    assert!(
        err.contains("another DHCP server (dnsmasq/libvirt?)"),
        "{err}"
    );
    assert!(
        err.contains(&format!("(pid {})", std::process::id())),
        "names the holder: {err}"
    );
}

/// The seed's dnsmasq.conf (verbatim apart from logging) against its documented Kindling
/// translation (docs/dhcp.md), on the seed's own subnet and server address.
#[test]
fn seed_dnsmasq_conf_and_its_translation_agree() {
    if !can_run("seed_dnsmasq_conf_and_its_translation_agree") {
        return;
    }
    let lab = Lab::new();
    lab.s.ip(&["addr", "add", "10.10.254.200/24", "dev", "s0"]);
    lab.c.ip(&["addr", "add", "10.10.254.50/24", "dev", "c0"]);
    let seed = "except-interface=virbr0
dhcp-range=10.10.254.0,proxy
pxe-service=tag:#ipxe,x86PC,\"PXE chainload to iPXE\",undionly.kpxe
dhcp-userclass=set:ipxe,iPXE
dhcp-mac=set:netboot,02:1a:4a:16:01:9c
tag-if=set:netboot-xyz,tag:ipxe,tag:netboot
pxe-service=tag:netboot-xyz,x86PC,\"iPXE\",http://10.10.254.200:8081/menus/menu.ipxe
pxe-service=tag:ipxe,x86PC,\"iPXE\",http://10.10.254.200:8080/boot.ipxe
";
    let translated = "enabled = true
interfaces = [\"10.10.254.0\"]
exclude_interfaces = [\"virbr0\"]
http_port = 8080
[[dhcp.rules]]
name = \"netboot-xyz\"
mac = \"02:1a:4a:16:01:9c\"
url = \"http://10.10.254.200:8081/menus/menu.ipxe\"
";
    let seed_server = Ipv4Addr::new(10, 10, 254, 200);
    let netboot_mac = [0x02, 0x1a, 0x4a, 0x16, 0x01, 0x9c];
    let with_mac = |mut p: Pkt| {
        p.mac = netboot_mac;
        p
    };
    let cases = [
        (Pkt::bios(), "undionly.kpxe"),
        (Pkt::bios().ipxe(), "http://10.10.254.200:8080/boot.ipxe"),
        (with_mac(Pkt::bios()), "undionly.kpxe"),
        (
            with_mac(Pkt::bios().ipxe()),
            "http://10.10.254.200:8081/menus/menu.ipxe",
        ),
    ];
    for (mut p, want) in cases {
        p.lease = Ipv4Addr::new(10, 10, 254, 50);
        let (k, d) = both(&lab, translated, seed, ANY68, BCAST67, &p);
        let k = k.expect("Kindling answers");
        let d = d.expect("dnsmasq answers");
        assert_eq!(k.boot, (seed_server, want.to_string()), "Kindling, {p:?}");
        assert_eq!(
            k.boot, d.boot,
            "same boot target as the seed's dnsmasq, {p:?}"
        );
        assert_eq!(k.offer.opt54(), Some(seed_server));
        assert_eq!(k.offer.opt54(), d.offer.opt54());
        assert_eq!(k.offer.opt60(), d.offer.opt60());
        assert_eq!(k.offer.opt97(), d.offer.opt97());
        assert_eq!(k.offer.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    }
}

#[test]
fn reply_delay_is_applied() {
    if !can_run("reply_delay_is_applied") {
        return;
    }
    let lab = Lab::new();
    let k = Kindling::start(
        &lab.s,
        &lab.tmp,
        &format!("{KINDLING}reply_delay_ms = 400\n"),
    )
    .unwrap();
    let sock = client(&lab, ANY68);
    let t = std::time::Instant::now();
    let g = one(
        exchange(&sock, &Pkt::bios(), BCAST67, WAIT),
        "delayed offer",
    );
    // A lower bound only: the server sleeps at least this long, however slow the machine.
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(g.file(), "undionly.kpxe");
    assert_eq!(k.stop()["offers"], 1);
}

/// Broadcasts BIOS DISCOVERs on `dev` in the client namespace until an OFFER naming
/// `server` (option 54) comes back, for up to 15 s (rescans run every second).
fn offer_from(lab: &Lab, dev: &str, server: Ipv4Addr) -> Result<Got, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut last = Vec::new();
    while std::time::Instant::now() < deadline {
        let sock = lab.c.udp(dev, ANY68);
        let got = exchange(&sock, &Pkt::bios(), BCAST67, Duration::from_millis(400));
        if let Some(g) = got.iter().find(|g| g.opt54() == Some(server)) {
            return Ok(g.clone());
        }
        last = got.iter().map(|g| g.opt54()).collect();
    }
    Err(format!(
        "no offer from {server} on {dev}; last answers from {last:?}"
    ))
}

/// dnsmasq's `bind-dynamic`: the server starts with nothing to serve, then follows an
/// interface that appears, changes address, disappears and comes back (new ifindex).
#[test]
fn interfaces_that_come_and_go_are_followed() {
    if !can_run("interfaces_that_come_and_go_are_followed") {
        return;
    }
    let lab = Lab::new();
    let cfg =
        "enabled = true\ninterfaces = [\"t*\"]\ninterface_rescan_secs = 1\nhttp_port = 8080\n";
    let k = Kindling::start(&lab.s, &lab.tmp, cfg).expect("starts with nothing to serve yet");
    k.proc
        .wait_for("no interface matches", true, Duration::from_secs(5))
        .expect("says it is waiting");
    let add_t0 = |addr: &str| {
        lab.s.veth("t0", "tc0", &lab.c);
        lab.c.ip(&["addr", "add", "192.168.88.2/24", "dev", "tc0"]);
        lab.c.ip(&["link", "set", "tc0", "up"]);
        lab.s.ip(&["link", "set", "t0", "up"]);
        lab.s.ip(&["addr", "add", addr, "dev", "t0"]);
    };
    // 1. Appears.
    add_t0("192.168.88.1/24");
    let g = offer_from(&lab, "tc0", Ipv4Addr::new(192, 168, 88, 1)).unwrap();
    assert_eq!(g.file(), "undionly.kpxe");
    // 2. Changes address: the new one is advertised, the old one no more.
    lab.s.ip(&["addr", "del", "192.168.88.1/24", "dev", "t0"]);
    lab.s.ip(&["addr", "add", "192.168.88.5/24", "dev", "t0"]);
    offer_from(&lab, "tc0", Ipv4Addr::new(192, 168, 88, 5)).unwrap();
    let sock = lab.c.udp("tc0", ANY68);
    let got = exchange(&sock, &Pkt::bios(), BCAST67, WAIT);
    assert!(
        got.iter()
            .all(|g| g.opt54() == Some(Ipv4Addr::new(192, 168, 88, 5))),
        "old address still answering: {:?}",
        got.iter().map(|g| g.opt54()).collect::<Vec<_>>()
    );
    drop(sock);
    // 3. Disappears (the veth pair goes with it).
    lab.s.ip(&["link", "del", "t0"]);
    k.proc
        .wait_for(
            "proxy DHCP stopped on interface",
            true,
            Duration::from_secs(10),
        )
        .expect("stop logged");
    // 4. Comes back under the same name: a new ifindex, so new sockets.
    add_t0("192.168.88.1/24");
    offer_from(&lab, "tc0", Ipv4Addr::new(192, 168, 88, 1)).unwrap();
    // s0 was never selected.
    let sock = client(&lab, ANY68);
    assert!(exchange(&sock, &Pkt::bios(), BCAST67, SILENCE).is_empty());
    let stats = k.stop();
    assert!(stats["offers"].as_u64().unwrap() >= 3, "{stats}");
}
