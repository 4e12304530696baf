//! Issue 13 ("Safe on a shared LAN"), DHCP part, over real sockets in network namespaces
//! created by each test (root only; skipped with a message otherwise):
//! * spoofed `giaddr` / `ciaddr` never make Kindling send to a broadcast, multicast,
//!   loopback, own or foreign address (captured on the wire with AF_PACKET sockets on the
//!   client's link and on the server's loopback, and by sockets listening at the candidate
//!   destinations);
//! * a flood from one MAC (or one address) is cut at its bucket while others are served;
//! * client text in option 60 / 77 cannot forge a log line or write escape codes, in the
//!   text and the JSON log format.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use common::*;
use dhcproto::v4::MessageType;

const BCAST67: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
const ANY68: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
const SERVER67: SocketAddrV4 = SocketAddrV4::new(SERVER, 67);
const SERVER4011: SocketAddrV4 = SocketAddrV4::new(SERVER, 4011);
/// Generous: the suite runs under `stress-ng --cpu 2`.
const WINDOW: Duration = Duration::from_secs(3);

const KINDLING: &str = "enabled = true\ninterfaces = [\"s0\"]\nhttp_port = 8080\n";

/// A second address of the server's host, on another interface.
const OTHER_OWN: Ipv4Addr = Ipv4Addr::new(10, 66, 0, 1);
/// Another host's address (on the client's link).
const OTHER_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 3);

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0x13, 0x00, 0x00, 0x00, n]
}

#[test]
fn spoofed_giaddr_and_ciaddr_never_pick_the_destination() {
    if !can_run("spoofed_giaddr_and_ciaddr_never_pick_the_destination") {
        return;
    }
    let lab = Lab::new();
    lab.s
        .ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    lab.s.ip(&["addr", "add", "10.66.0.1/24", "dev", "d0"]);
    lab.s.ip(&["link", "set", "d0", "up"]);
    lab.c.ip(&["addr", "add", "192.168.77.3/24", "dev", "c0"]);
    let k = Kindling::start(&lab.s, &lab.tmp, KINDLING).expect("kindling starts");

    // Everything on the client's link, and on the server's loopback (where replies to
    // 127.0.0.1 or to the server's own addresses would go).
    let wire = Sniffer::start(&lab.c, "c0");
    let lo = Sniffer::start(&lab.s, "lo");
    // Listeners at the candidate destinations in the client's namespace. sink67 is also
    // the "relay" that sends the spoofed DISCOVERs (from 192.168.77.2:67).
    let sink67 = lab
        .c
        .udp("c0", SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 67));
    let sink68 = lab.c.udp("c0", ANY68);
    let sink4011 = lab
        .c
        .udp("c0", SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 4011));
    let other4011 = lab.c.udp("c0", SocketAddrV4::new(OTHER_HOST, 4011));
    let relay_src = lab.c.udp("c0", SocketAddrV4::new(RELAY, 67));

    // xid -> (what, destinations a reply may go to).
    let mut cases: BTreeMap<u32, (String, Vec<SocketAddrV4>)> = BTreeMap::new();
    let mut n = 0u8;
    let mut next = |p: &mut Pkt| {
        n += 1;
        p.mac = mac(n);
    };

    // 1. DISCOVERs "relayed" with a giaddr that is no relay: none may be answered.
    let bad_giaddrs = [
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::new(239, 255, 255, 250),
        Ipv4Addr::new(240, 0, 0, 1),
        Ipv4Addr::LOCALHOST,
        SERVER,
        OTHER_OWN,
        Ipv4Addr::new(192, 168, 77, 255),
        Ipv4Addr::new(192, 168, 77, 0),
        Ipv4Addr::new(169, 254, 1, 1),
        Ipv4Addr::new(0, 1, 2, 3),
    ];
    for g in bad_giaddrs {
        let mut p = Pkt::bios();
        next(&mut p);
        p.giaddr = g;
        cases.insert(p.xid, (format!("DISCOVER giaddr {g}"), vec![]));
        sink67.send_to(&p.bytes(), SERVER67).unwrap();
    }
    // 2. A DISCOVER with hops = 1 and giaddr 0.0.0.0, unicast from the relay's address: not
    //    relayed, so at most the usual broadcast to clients on the link (port 68).
    let mut p = Pkt::bios();
    next(&mut p);
    let mut b = p.bytes();
    b[3] = 1; // hops
    cases.insert(
        p.xid,
        (
            "DISCOVER hops 1, giaddr 0.0.0.0".into(),
            vec![SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)],
        ),
    );
    relay_src.send_to(&b, SERVER67).unwrap();
    // 3. A real relay: answered at giaddr:67 (positive control).
    let mut p = Pkt::bios();
    next(&mut p);
    p.giaddr = RELAY;
    let relay_xid = p.xid;
    cases.insert(
        p.xid,
        (
            "DISCOVER from a real relay".into(),
            vec![SocketAddrV4::new(RELAY, 67)],
        ),
    );
    relay_src.send_to(&p.bytes(), SERVER67).unwrap();
    // 4. Port-4011 REQUESTs from 192.168.77.2:4011 whose ciaddr is broadcast, multicast,
    //    loopback, the server, another host: answered at the source, never at ciaddr.
    let from = SocketAddrV4::new(CLIENT, 4011);
    let bad_ciaddrs = [
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::LOCALHOST,
        SERVER,
        OTHER_OWN,
        OTHER_HOST,
        CLIENT, // the legitimate request
    ];
    let mut ack_xids = BTreeSet::new();
    for c in bad_ciaddrs {
        let mut p = Pkt::uefi(7).to_4011(None);
        next(&mut p);
        p.ciaddr = c;
        ack_xids.insert(p.xid);
        cases.insert(p.xid, (format!("4011 REQUEST ciaddr {c}"), vec![from]));
        sink4011.send_to(&p.bytes(), SERVER4011).unwrap();
    }

    // Collect, then stop the captures.
    let got67 = collect_all(&sink67, WINDOW);
    let got68 = collect_all(&sink68, Duration::from_millis(200));
    let got4011 = collect_all(&sink4011, Duration::from_millis(200));
    let got_other = collect_all(&other4011, Duration::from_millis(200));
    let got_relay = collect_all(&relay_src, Duration::from_millis(200));
    std::thread::sleep(Duration::from_millis(300));
    let events = k.events();
    let stats = k.stop();
    let frames: Vec<Frame> = wire.stop().into_iter().chain(lo.stop()).collect();

    // On the wire: every reply to one of our packets went where it may go.
    let mut per_xid: BTreeMap<u32, Vec<SocketAddrV4>> = BTreeMap::new();
    for f in &frames {
        let Some(xid) = f.reply_xid() else { continue };
        let Some((what, allowed)) = cases.get(&xid) else {
            continue;
        };
        assert!(
            allowed.contains(&f.dst),
            "{what}: a reply went to {} (allowed: {allowed:?})",
            f.dst
        );
        per_xid.entry(xid).or_default().push(f.dst);
    }
    // Nothing reached the listeners at the forbidden destinations (the link's broadcast to
    // port 68 is allowed where listed).
    let bcast68 = SocketAddrV4::new(Ipv4Addr::BROADCAST, 68);
    for g in &got68 {
        if let Some((what, allowed)) = cases.get(&g.msg.xid()) {
            assert!(allowed.contains(&bcast68), "{what}: reached port 68: {g:?}");
        }
    }
    for g in &got_other {
        if let Some((what, _)) = cases.get(&g.msg.xid()) {
            panic!("{what}: a reply reached {OTHER_HOST}:4011: {g:?}");
        }
    }
    for g in &got67 {
        if let Some((what, _)) = cases.get(&g.msg.xid()) {
            panic!("{what}: a reply reached port 67 of the client's host: {g:?}");
        }
    }
    // The legitimate ones were answered, exactly once, at the right place.
    assert_eq!(
        got_relay
            .iter()
            .filter(|g| g.msg.xid() == relay_xid)
            .count(),
        1,
        "the relay's answer: {got_relay:?}"
    );
    assert_eq!(
        per_xid.get(&relay_xid).map(Vec::len),
        Some(1),
        "one offer to the relay on the wire"
    );
    let acked: BTreeSet<u32> = got4011
        .iter()
        .filter(|g| g.msg_type() == MessageType::Ack)
        .map(|g| g.msg.xid())
        .collect();
    assert_eq!(acked, ack_xids, "every 4011 REQUEST is ACKed at its source");
    for g in &got4011 {
        assert_eq!(g.from, SERVER4011);
    }

    // The server's side: refusals counted with their reason, nothing unsafe attempted.
    for e in events.iter().filter(|e| e["event"] == "answered") {
        let dest = e["dest"].as_str().unwrap();
        assert!(
            ["10.55.0.1:67", "255.255.255.255:68", "192.168.77.2:4011"].contains(&dest),
            "answered to {dest}: {e}"
        );
    }
    assert_eq!(
        stats["ignored"]["unsafe_giaddr"],
        bad_giaddrs.len() as u64,
        "{stats}"
    );
    assert_eq!(stats["acks"], bad_ciaddrs.len() as u64, "{stats}");
    assert_eq!(stats["offers"], 2, "{stats}");
    assert_eq!(stats["send_errors"], 0, "{stats}");
    assert_eq!(stats["refused_unsafe"], 0, "{stats}");
}

#[test]
fn a_flood_from_one_client_is_cut_while_others_are_served() {
    if !can_run("a_flood_from_one_client_is_cut_while_others_are_served") {
        return;
    }
    let lab = Lab::new();
    for a in ["192.168.77.3/24", "192.168.77.4/24", "192.168.77.5/24"] {
        lab.c.ip(&["addr", "add", a, "dev", "c0"]);
    }
    let cfg = format!(
        "{KINDLING}[dhcp.rate_limit]\nmac_burst = 5\nmac_per_minute = 1\nip_burst = 5\nip_per_minute = 1\n"
    );
    let k = Kindling::start_with(&lab.s, &lab.tmp, &cfg, &["--log-format", "text"])
        .expect("kindling starts");
    let started = Instant::now();
    let addr = |last: u8| Ipv4Addr::new(192, 168, 77, last);
    // Offers are broadcast to port 68: heard here.
    let sink68 = lab.c.udp("c0", ANY68);

    // 40 DISCOVERs from one MAC (new xid each, as a flood would), from 192.168.77.3.
    let from3 = lab.c.udp("c0", SocketAddrV4::new(addr(3), 68));
    let mut flood = BTreeSet::new();
    for _ in 0..40 {
        let mut p = Pkt::bios();
        p.mac = mac(0xa0);
        flood.insert(p.xid);
        from3.send_to(&p.bytes(), BCAST67).unwrap();
    }
    let got = collect_all(&sink68, WINDOW);
    let answered = got.iter().filter(|g| flood.contains(&g.msg.xid())).count();
    // Another MAC (from another address), right after: served.
    let from4 = lab.c.udp("c0", SocketAddrV4::new(addr(4), 68));
    let mut other = Pkt::bios();
    other.mac = mac(0xb0);
    from4.send_to(&other.bytes(), BCAST67).unwrap();
    let r = collect(&sink68, other.xid, WINDOW);
    assert_eq!(r.len(), 1, "another MAC is still answered: {r:?}");

    // 20 port-4011 REQUESTs from one address, each with its own MAC: cut by the address's
    // bucket; another address is served.
    let from2 = lab.c.udp("c0", SocketAddrV4::new(CLIENT, 4011));
    let mut ip_flood = BTreeSet::new();
    for i in 0..20u8 {
        let mut p = Pkt::uefi(7).to_4011(None);
        p.mac = mac(i);
        ip_flood.insert(p.xid);
        from2.send_to(&p.bytes(), SERVER4011).unwrap();
    }
    let got = collect_all(&from2, WINDOW);
    let ip_answered = got
        .iter()
        .filter(|g| ip_flood.contains(&g.msg.xid()))
        .count();
    let from5 = lab.c.udp("c0", SocketAddrV4::new(addr(5), 4011));
    let mut p = Pkt::uefi(7).to_4011(None);
    p.mac = mac(0xc0);
    p.ciaddr = addr(5);
    let r = exchange(&from5, &p, SERVER4011, WINDOW);
    assert_eq!(r.len(), 1, "another address is still answered: {r:?}");
    assert_eq!(r[0].msg_type(), MessageType::Ack);

    // Counted, not timed: at most the burst plus one token per started minute.
    let slack = 1 + started.elapsed().as_secs() as usize / 60;
    assert!(
        (5..=5 + slack).contains(&answered),
        "one MAC got {answered} of 40 answers (burst 5)"
    );
    assert!(
        (5..=5 + slack).contains(&ip_answered),
        "one address got {ip_answered} of 20 answers (burst 5)"
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut k = k;
    k.proc.terminate();
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&k.stats).unwrap()).unwrap();
    let limited_mac = stats["ignored"]["rate_limited_mac"].as_u64().unwrap();
    let limited_ip = stats["ignored"]["rate_limited_ip"].as_u64().unwrap();
    assert_eq!(limited_mac as usize, 40 - answered, "{stats}");
    assert_eq!(limited_ip as usize, 20 - ip_answered, "{stats}");
    // Logged once per run of drops, not once per datagram.
    let log: Vec<String> = k.proc.err_lines.try_iter().collect();
    let warned = |r: &str| {
        log.iter()
            .filter(|l| l.contains("WARN") && l.contains(r))
            .count()
    };
    assert_eq!(warned("rate_limited_mac"), 1, "{log:#?}");
    assert_eq!(warned("rate_limited_ip"), 1, "{log:#?}");
}

/// Option 60 and 77 with a newline and terminal escape codes, in a DISCOVER that is logged
/// (arm64 without a binary: `unsupported_arch_no_binary`) and in one refused for its giaddr.
fn hostile_packets() -> Vec<(Pkt, SocketAddrV4)> {
    let mut a = Pkt::uefi(11);
    a.vendor = Some(b"PXEClient:Arch:00011\nFORGED line\x1b[31m\r\x00\xff".to_vec());
    a.user_class = Some(b"x\nFORGED user class\x1b]0;title\x07".to_vec());
    let mut b = Pkt::bios();
    b.vendor = a.vendor.clone();
    b.giaddr = Ipv4Addr::new(224, 0, 0, 1);
    vec![(a, BCAST67), (b, SERVER67)]
}

fn run_with_log_format(format: &str) -> Vec<String> {
    let lab = Lab::new();
    let k = Kindling::start_with(&lab.s, &lab.tmp, KINDLING, &["--log-format", format])
        .expect("kindling starts");
    let sock = lab
        .c
        .udp("c0", SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 67));
    for (p, dest) in hostile_packets() {
        exchange(&sock, &p, dest, Duration::from_millis(1500));
    }
    // The log lines were written before the datagram after them was read; wait for them.
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        lines.extend(k.proc.err_lines.try_iter());
        if lines.iter().filter(|l| l.contains("FORGED")).count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut k = k;
    k.proc.terminate();
    lines.extend(k.proc.err_lines.try_iter());
    lines
}

#[test]
fn client_text_cannot_forge_log_lines_in_text_or_json() {
    if !can_run("client_text_cannot_forge_log_lines_in_text_or_json") {
        return;
    }
    // Text, as `kindling serve --log-format text` writes it.
    let lines = run_with_log_format("text");
    for l in &lines {
        assert!(!l.contains('\x1b'), "raw ESC in the log: {l:?}");
        assert!(
            !l.contains('\r') && !l.contains('\x07'),
            "raw control byte: {l:?}"
        );
        // Every line is a record of its own: it starts with the timestamp.
        let ts = l.as_bytes();
        assert!(
            ts.len() > 20 && ts[..4].iter().all(u8::is_ascii_digit) && ts[4] == b'-',
            "a line that is no log record (forged?): {l:?}"
        );
    }
    let with_text: Vec<&String> = lines.iter().filter(|l| l.contains("FORGED")).collect();
    assert!(
        with_text.len() >= 2,
        "both hostile packets are logged: {lines:#?}"
    );
    for l in &with_text {
        assert!(l.contains("vendor_class="), "{l}");
        assert!(
            l.contains(r"PXEClient:Arch:00011\nFORGED line\x1b[31m\r\x00\xff"),
            "{l}"
        );
    }
    assert!(
        with_text
            .iter()
            .any(|l| l.contains(r"user_class=x\nFORGED user class\x1b]0;title\x07")),
        "{with_text:#?}"
    );

    // JSON, as `--log-format json` writes it: one object per line, and the values hold the
    // escaped text, not the raw bytes.
    let lines = run_with_log_format("json");
    let mut seen = 0;
    for l in &lines {
        assert!(!l.contains('\x1b'), "raw ESC in the log: {l:?}");
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON record ({e}): {l:?}"));
        assert!(v.is_object(), "{l}");
        for (key, val) in v.as_object().unwrap() {
            if let Some(s) = val.as_str() {
                assert!(
                    !s.chars().any(|c| c.is_control()),
                    "{key} holds a raw control character: {s:?}"
                );
            }
        }
        if let Some(vc) = v["vendor_class"].as_str() {
            assert_eq!(vc, r"PXEClient:Arch:00011\nFORGED line\x1b[31m\r\x00\xff");
            seen += 1;
        }
    }
    assert!(seen >= 2, "both hostile packets are logged: {lines:#?}");
}
