//! DHCPv6 with real and hand-built clients, inside network namespaces created by each test
//! (root only; skipped with a message otherwise). The server namespace's s0 has
//! fd00:77::1/64 (and 192.168.76.1/24 for the IPv4 server that runs next to it); the
//! client's c0 has only its link-local address. DAD is off in both namespaces so that no
//! address is tentative. Replies are read with `dhcproto`, not with Kindling's own parser.
//!
//! * ISC `dhclient -6` gets an address in the prefix, and the same one after a server restart
//!   with a fresh lease file (no state anywhere), another one with another DUID;
//! * a UEFI-HTTP-Boot-like SOLICIT gets an ADVERTISE with IA_NA, option 59 and option 16
//!   `HTTPClient` echoed, then its REQUEST the same address; iPXE gets the script URL;
//!   rapid commit gets a REPLY at once; INFORMATION-REQUEST gets the URL and DNS only.

mod common;

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use dhcproto::v6::{self, DhcpOption, OptionCode};
use dhcproto::{Decodable, Decoder};

const PREFIX: &str = "fd00:77::";
const SERVER6: &str = "fd00:77::1";

struct Lab6 {
    tmp: TempDir,
    s: Netns,
    c: Netns,
}

impl Lab6 {
    fn new() -> Self {
        let tmp = kindling_testkit::tempdir("dhcpv6");
        let s = Netns::new("s6");
        let c = Netns::new("c6");
        for ns in [&s, &c] {
            for k in ["all", "default"] {
                ns.exec(&["sysctl", "-qw", &format!("net.ipv6.conf.{k}.accept_dad=0")]);
            }
        }
        s.veth("s0", "c0", &c);
        c.exec(&["sysctl", "-qw", "net.ipv6.conf.c0.accept_dad=0"]);
        s.exec(&["sysctl", "-qw", "net.ipv6.conf.s0.accept_dad=0"]);
        s.ip(&["link", "set", "s0", "address", "02:00:00:00:77:01"]);
        s.ip(&["addr", "add", "192.168.76.1/24", "dev", "s0"]);
        s.ip(&["-6", "addr", "add", "fd00:77::1/64", "dev", "s0", "nodad"]);
        s.ip(&["link", "set", "s0", "up"]);
        c.ip(&["link", "set", "c0", "address", "02:00:00:00:77:02"]);
        c.ip(&["link", "set", "c0", "up"]);
        wait_link_local(&s, "s0");
        wait_link_local(&c, "c0");
        Self { tmp, s, c }
    }

    fn start(&self) -> Kindling {
        Kindling::start(
            &self.s,
            &self.tmp,
            "enabled = true
interfaces = [\"s0\"]
[dhcp.v6]
enabled = true
prefix = \"fd00:77::/64\"
dns_servers = [\"fd00:77::53\"]
",
        )
        .expect("kindling starts")
    }
}

/// Waits (up to 20 s) until `dev` has its link-local address (the kernel adds it once the
/// veth has carrier).
fn wait_link_local(ns: &Netns, dev: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let out = ns
            .cmd("ip")
            .args(["-6", "-o", "addr", "show", "dev", dev, "scope", "link"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("fe80::") && !text.contains("tentative") {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{dev} got no link-local address");
}

fn in_prefix(a: Ipv6Addr) -> bool {
    a.segments()[..4] == PREFIX.parse::<Ipv6Addr>().unwrap().segments()[..4]
}

/// A client hook script that appends its environment (one block per call) to `out`.
fn hook(dir: &Path, name: &str, out: &Path) -> String {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\n{{ echo \"---\"; env; echo \"hook_end=1\"; }} >> {}\nexit 0\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p.display().to_string()
}

/// The environment of the first complete hook call with this `reason`, waiting up to 60 s.
fn wait_reason(out: &Path, reason: &str, client: &Proc) -> HashMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        let found = text
            .split("---\n")
            .map(|b| {
                b.lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<HashMap<_, _>>()
            })
            .find(|m| {
                m.contains_key("hook_end") && m.get("reason").map(String::as_str) == Some(reason)
            });
        if let Some(b) = found {
            return b;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no {reason} hook call; hook output: {:?}; client output: {:?}",
        std::fs::read_to_string(out).unwrap_or_default(),
        client.seen_lines()
    );
}

/// One `dhclient -6` run with a fresh lease file and DUID type `duid` (LL or LLT): the
/// address it was given.
fn dhclient(lab: &Lab6, n: usize, duid: &str) -> (Ipv6Addr, HashMap<String, String>) {
    let out = lab.tmp.path().join(format!("dhclient6-{n}.env"));
    let script = hook(lab.tmp.path(), &format!("hook6-{n}.sh"), &out);
    let mut cmd = lab.c.cmd("dhclient");
    cmd.args(["-6", "-d", "-1", "-v", "-D", duid, "-sf", &script, "-lf"])
        .arg(lab.tmp.path().join(format!("dhclient6-{n}.leases")))
        .arg("-pf")
        .arg(lab.tmp.path().join(format!("dhclient6-{n}.pid")))
        .arg("c0");
    let dh = Proc::spawn(cmd);
    let b = wait_reason(&out, "BOUND6", &dh);
    drop(dh);
    let a: Ipv6Addr = b
        .get("new_ip6_address")
        .unwrap_or_else(|| panic!("no new_ip6_address in {b:?}"))
        .parse()
        .unwrap();
    (a, b)
}

#[test]
fn dhclient6_gets_a_stable_address() {
    if !can_run("dhclient6_gets_a_stable_address") {
        return;
    }
    if !have("dhclient") {
        eprintln!("SKIP dhclient6_gets_a_stable_address: dhclient (isc-dhcp-client) missing");
        return;
    }
    let lab = Lab6::new();
    let k = lab.start();
    let (a1, b) = dhclient(&lab, 1, "LL");
    assert!(in_prefix(a1), "{a1}");
    assert_eq!(
        b.get("new_dhcp6_name_servers").map(String::as_str),
        Some("fd00:77::53"),
        "{b:?}"
    );
    assert!(
        b.get("new_dhcp6_server_id")
            .is_some_and(|s| s.contains("2:0:0:0:77:1") || s.contains("02:00:00:00:77:01")),
        "{b:?}"
    );
    // A restarted server, a fresh lease file, the same DUID (DUID-LL of c0): the same
    // address, with nothing stored anywhere.
    let st = k.stop();
    assert!(st["dhcpv6"]["answered"].as_u64().unwrap() >= 2, "{st}");
    let _k = lab.start();
    let (a2, _) = dhclient(&lab, 2, "LL");
    assert_eq!(a1, a2);
    // Another DUID (DUID-LLT): another address.
    let (a3, _) = dhclient(&lab, 3, "LLT");
    assert!(in_prefix(a3), "{a3}");
    assert_ne!(a1, a3);
}

fn tlv(code: u16, data: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

const CLIENT_DUID: [u8; 10] = [0, 3, 0, 1, 0x02, 0, 0, 0, 0x77, 0x42];

/// A client message: client id, elapsed time, ORO (23, 59), then `extra`.
fn message(t: u8, xid: [u8; 3], extra: &[Vec<u8>]) -> Vec<u8> {
    let mut p = vec![t, xid[0], xid[1], xid[2]];
    p.extend(tlv(1, &CLIENT_DUID));
    p.extend(tlv(8, &[0, 0]));
    p.extend(tlv(6, &[0, 23, 0, 59]));
    for e in extra {
        p.extend_from_slice(e);
    }
    p
}

fn ia_na(iaid: u32) -> Vec<u8> {
    let mut d = iaid.to_be_bytes().to_vec();
    d.extend([0; 8]);
    tlv(3, &d)
}

fn vendor(s: &str) -> Vec<u8> {
    let mut d = 343u32.to_be_bytes().to_vec();
    d.extend((s.len() as u16).to_be_bytes());
    d.extend(s.as_bytes());
    tlv(16, &d)
}

fn user_class(s: &str) -> Vec<u8> {
    let mut d = (s.len() as u16).to_be_bytes().to_vec();
    d.extend(s.as_bytes());
    tlv(15, &d)
}

fn arch(a: u16) -> Vec<u8> {
    tlv(61, &a.to_be_bytes())
}

/// A client socket on c0, port 546, and the multicast destination.
fn client(lab: &Lab6) -> (UdpSocket, SocketAddrV6) {
    lab.c.run(|| {
        let idx = nix::net::if_::if_nametoindex("c0").unwrap();
        let s = socket2::Socket::new(
            socket2::Domain::IPV6,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .unwrap();
        s.set_only_v6(true).unwrap();
        s.set_reuse_address(true).unwrap();
        s.bind_device(Some(b"c0")).unwrap();
        s.bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 546, 0, 0)).into())
            .unwrap();
        s.set_multicast_if_v6(idx).unwrap();
        let u: UdpSocket = s.into();
        u.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let dest = SocketAddrV6::new("ff02::1:2".parse().unwrap(), 547, 0, idx);
        (u, dest)
    })
}

/// Sends `packet` (again every second) until a reply with its transaction id arrives, for up
/// to 30 s.
fn exchange(sock: &UdpSocket, dest: SocketAddrV6, packet: &[u8]) -> v6::Message {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        sock.send_to(packet, dest).unwrap();
        let again = Instant::now() + Duration::from_secs(1);
        while Instant::now() < again {
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(m) = v6::Message::decode(&mut Decoder::new(&buf[..n])) else {
                continue;
            };
            if m.xid() == [packet[1], packet[2], packet[3]] {
                return m;
            }
        }
    }
    panic!("no reply to message type {}", packet[0]);
}

fn boot_url(m: &v6::Message) -> Option<String> {
    match m.opts().get(OptionCode::OptBootfileUrl) {
        Some(DhcpOption::Unknown(u)) => Some(String::from_utf8_lossy(u.data()).into_owned()),
        _ => None,
    }
}

fn address(m: &v6::Message) -> Option<(Ipv6Addr, u32, u32)> {
    let Some(DhcpOption::IANA(ia)) = m.opts().get(OptionCode::IANA) else {
        return None;
    };
    match ia.opts.get(OptionCode::IAAddr) {
        Some(DhcpOption::IAAddr(a)) => Some((a.addr, a.preferred_life, a.valid_life)),
        _ => None,
    }
}

fn vendor_echo(m: &v6::Message) -> Option<(u32, Vec<Vec<u8>>)> {
    match m.opts().get(OptionCode::VendorClass) {
        Some(DhcpOption::VendorClass(v)) => Some((v.num, v.data.clone())),
        _ => None,
    }
}

#[test]
fn http_boot_and_ipxe_get_their_urls_over_ipv6() {
    if !can_run("http_boot_and_ipxe_get_their_urls_over_ipv6") {
        return;
    }
    let lab = Lab6::new();
    let k = lab.start();
    let (sock, dest) = client(&lab);
    let server: Ipv6Addr = SERVER6.parse().unwrap();
    let http_url = "http://[fd00:77::1]:8080/tftp/ipxe.efi";

    // UEFI HTTP Boot (EDK2's HttpBootDxe): SOLICIT -> ADVERTISE.
    let edk2 = [
        ia_na(1),
        vendor("HTTPClient:Arch:00016:UNDI:003016"),
        arch(16),
    ];
    let adv = exchange(&sock, dest, &message(1, [0, 0, 1], &edk2));
    assert_eq!(adv.msg_type(), v6::MessageType::Advertise);
    let (a, pref, valid) = address(&adv).expect("IA_NA with an address");
    assert!(in_prefix(a), "{a}");
    assert_eq!((pref, valid), (3600, 7200));
    let expected =
        kindling_dhcp::v6::addr::address_for(PREFIX.parse().unwrap(), &CLIENT_DUID, 1, &[server]);
    assert_eq!(a, expected, "the documented derivation");
    assert_eq!(boot_url(&adv).as_deref(), Some(http_url));
    assert_eq!(vendor_echo(&adv), Some((343, vec![b"HTTPClient".to_vec()])));
    let Some(DhcpOption::ServerId(sid)) = adv.opts().get(OptionCode::ServerId) else {
        panic!("no server id");
    };
    assert_eq!(sid, &[0, 3, 0, 1, 2, 0, 0, 0, 0x77, 1], "DUID-LL of s0");
    match adv.opts().get(OptionCode::DomainNameServers) {
        Some(DhcpOption::DomainNameServers(d)) => {
            assert_eq!(d, &vec!["fd00:77::53".parse::<Ipv6Addr>().unwrap()])
        }
        o => panic!("DNS: {o:?}"),
    }

    // REQUEST (with that server id) -> REPLY, the same address and URL.
    let mut req = edk2.to_vec();
    req.push(tlv(2, sid));
    let reply = exchange(&sock, dest, &message(3, [0, 0, 2], &req));
    assert_eq!(reply.msg_type(), v6::MessageType::Reply);
    assert_eq!(address(&reply).map(|x| x.0), Some(a));
    assert_eq!(boot_url(&reply).as_deref(), Some(http_url));
    assert_eq!(
        vendor_echo(&reply),
        Some((343, vec![b"HTTPClient".to_vec()]))
    );

    // iPXE: the script URL, no vendor class.
    let ipxe = exchange(
        &sock,
        dest,
        &message(1, [0, 0, 3], &[ia_na(1), user_class("iPXE"), arch(7)]),
    );
    assert_eq!(
        boot_url(&ipxe).as_deref(),
        Some("http://[fd00:77::1]:8080/boot.ipxe")
    );
    assert_eq!(vendor_echo(&ipxe), None);

    // UEFI PXE over IPv6: a TFTP URL.
    let pxe = exchange(
        &sock,
        dest,
        &message(1, [0, 0, 4], &[ia_na(1), vendor("PXEClient"), arch(7)]),
    );
    assert_eq!(
        boot_url(&pxe).as_deref(),
        Some("tftp://[fd00:77::1]/snponly.efi")
    );
    // No PXEClient echo: EDK2 would take the offer for a "BINL" offer and ask UDP 4011.
    assert_eq!(vendor_echo(&pxe), None);

    // Rapid commit: a REPLY at once.
    let rc = exchange(
        &sock,
        dest,
        &message(
            1,
            [0, 0, 5],
            &[ia_na(1), tlv(14, &[]), vendor("HTTPClient"), arch(16)],
        ),
    );
    assert_eq!(rc.msg_type(), v6::MessageType::Reply);
    assert!(rc.opts().get(OptionCode::RapidCommit).is_some());
    assert_eq!(address(&rc).map(|x| x.0), Some(a));
    assert_eq!(boot_url(&rc).as_deref(), Some(http_url));

    // INFORMATION-REQUEST: the URL and DNS, no address.
    let info = exchange(
        &sock,
        dest,
        &message(11, [0, 0, 6], &[vendor("HTTPClient"), arch(16)]),
    );
    assert_eq!(info.msg_type(), v6::MessageType::Reply);
    assert!(address(&info).is_none());
    assert_eq!(boot_url(&info).as_deref(), Some(http_url));
    assert!(info.opts().get(OptionCode::DomainNameServers).is_some());

    // RELEASE -> REPLY with a status.
    let mut rel = vec![ia_na(1)];
    rel.push(tlv(2, sid));
    let r = exchange(&sock, dest, &message(8, [0, 0, 7], &rel));
    assert_eq!(r.msg_type(), v6::MessageType::Reply);
    assert!(r.opts().get(OptionCode::StatusCode).is_some());

    let st = k.stop();
    assert!(st["dhcpv6"]["answered"].as_u64().unwrap() >= 7, "{st}");
}
