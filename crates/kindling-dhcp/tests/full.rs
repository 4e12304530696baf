//! Full DHCP mode with real clients, inside network namespaces created by each test (root
//! only; skipped with a message otherwise): ISC `dhclient`, busybox `udhcpc` and
//! systemd-networkd get leases
//! with their options from Kindling (the `proxydhcp` example with `mode = "full"`), the
//! lease file survives `kill -9`, and 1,000 clients churning through DORA, RELEASE and a
//! server killed mid-run never share an address.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use dhcproto::v4::{self, DhcpOption, OptionCode};

const SRV: Ipv4Addr = Ipv4Addr::new(192, 168, 88, 1);
const BCAST67: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
const ANY68: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);

/// Server namespace (s0 = 192.168.88.1/24) and a client namespace whose c0 has no address,
/// like a machine that just booted.
struct FullLab {
    tmp: TempDir,
    s: Netns,
    c: Netns,
}

impl FullLab {
    fn new() -> Self {
        let tmp = kindling_testkit::tempdir("dhcp-full");
        let s = Netns::new("fs");
        let c = Netns::new("fc");
        s.veth("s0", "c0", &c);
        s.ip(&["addr", "add", "192.168.88.1/24", "dev", "s0"]);
        s.ip(&["link", "set", "s0", "up"]);
        c.ip(&["link", "set", "c0", "address", "02:00:00:00:88:01"]);
        c.ip(&["link", "set", "c0", "up"]);
        Self { tmp, s, c }
    }

    fn config(&self, extra: &str) -> String {
        format!(
            "enabled = true
interfaces = [\"s0\"]
mode = \"full\"
lease_file = \"{}\"
ping_check = false
{extra}
[[dhcp.subnets]]
network = \"192.168.88.0/24\"
pools = [\"192.168.88.100-192.168.88.199\"]
router = \"192.168.88.1\"
dns_servers = [\"192.168.88.1\", \"192.168.88.2\"]
domain = \"lab.test\"
ntp_servers = [\"192.168.88.1\"]
mtu = 1400
lease_secs = 600
",
            self.tmp.path().join("leases").display()
        )
    }
}

fn wait_block(
    out: &Path,
    kinds: &[&str],
    what: &str,
    client: Option<&Proc>,
) -> HashMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(b) = last_block(out, kinds) {
            return b;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what}: no {kinds:?} hook call; hook output: {:?}; client output: {:?}",
        std::fs::read_to_string(out).unwrap_or_default(),
        client.map(Proc::seen_lines)
    );
}

fn in_pool(ip: Ipv4Addr) -> bool {
    (100..=199).contains(&ip.octets()[3]) && ip.octets()[..3] == [192, 168, 88]
}

#[test]
fn dhclient_and_udhcpc_get_leases_with_every_option() {
    if !can_run("dhclient_and_udhcpc_get_leases_with_every_option") {
        return;
    }
    if !have("dhclient") || !have("busybox") {
        eprintln!("skipping: dhclient (isc-dhcp-client) or busybox missing");
        return;
    }
    let lab = FullLab::new();
    let k = Kindling::start(&lab.s, &lab.tmp, &lab.config("")).expect("kindling starts");

    // ISC dhclient, one attempt, in the foreground.
    let out = lab.tmp.path().join("dhclient.env");
    let script = hook(
        lab.tmp.path(),
        "dhclient",
        &out,
        "case \"$reason\" in\n\
         BOUND) ip addr add \"$new_ip_address/24\" dev \"$interface\" ;;\n\
         RELEASE) ip addr flush dev \"$interface\" ;;\n\
         esac",
    );
    let lf = lab.tmp.path().join("dhclient.leases");
    let mut cmd = lab.c.cmd("dhclient");
    cmd.args(["-d", "-1", "-v", "-sf", &script, "-lf"])
        .arg(&lf)
        .arg("-pf")
        .arg(lab.tmp.path().join("dhclient.pid"))
        .arg("c0");
    let dh = Proc::spawn(cmd);
    let b = wait_block(&out, &["BOUND"], "dhclient", Some(&dh));
    let ip: Ipv4Addr = b["new_ip_address"].parse().unwrap();
    // dhclient runs the hook before it writes its lease file: stop it only once the lease
    // is in the file, or `dhclient -r` below finds nothing to release.
    let written = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&lf)
        .unwrap_or_default()
        .contains(&format!("fixed-address {ip};"))
    {
        assert!(
            Instant::now() < written,
            "dhclient wrote no lease to {}",
            lf.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(dh);
    assert!(in_pool(ip), "{ip}");
    assert_eq!(b["new_subnet_mask"], "255.255.255.0");
    assert_eq!(b["new_routers"], "192.168.88.1");
    assert_eq!(b["new_domain_name_servers"], "192.168.88.1 192.168.88.2");
    assert_eq!(b["new_domain_name"], "lab.test");
    assert_eq!(b["new_ntp_servers"], "192.168.88.1");
    assert_eq!(b["new_interface_mtu"], "1400");
    assert_eq!(b["new_broadcast_address"], "192.168.88.255");
    assert_eq!(b["new_dhcp_lease_time"], "600");
    assert_eq!(b["new_dhcp_server_identifier"], "192.168.88.1");

    // dhclient -r sends a RELEASE for the lease it wrote.
    let st = lab
        .c
        .cmd("dhclient")
        .args(["-r", "-v", "-sf", &script, "-lf"])
        .arg(&lf)
        .arg("-pf")
        .arg(lab.tmp.path().join("dhclient-r.pid"))
        .arg("c0")
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        last_block(&out, &["RELEASE"]).is_some(),
        "dhclient -r ran its RELEASE hook"
    );

    // busybox udhcpc on the same NIC (the same machine, another OS): the same address.
    let out2 = lab.tmp.path().join("udhcpc.env");
    let script2 = hook(lab.tmp.path(), "udhcpc", &out2, "");
    let st = lab
        .c
        .cmd("busybox")
        .args([
            "udhcpc", "-i", "c0", "-f", "-q", "-n", "-t", "5", "-O", "mtu", "-s", &script2,
        ])
        .status()
        .unwrap();
    assert!(st.success(), "udhcpc got no lease");
    let u = wait_block(&out2, &["bound"], "udhcpc", None);
    assert_eq!(
        u["ip"],
        ip.to_string(),
        "one address per MAC, whichever client asks"
    );
    assert_eq!(u["subnet"], "255.255.255.0");
    assert_eq!(u["router"], "192.168.88.1");
    assert_eq!(u["dns"], "192.168.88.1 192.168.88.2");
    assert_eq!(u["domain"], "lab.test");
    assert_eq!(u["lease"], "600");
    assert_eq!(u["mtu"], "1400");

    let stats = k.stop();
    assert_eq!(stats["refused_unsafe"], 0, "{stats}");
    assert!(
        stats["ignored"]["lease_released"].as_u64() >= Some(1),
        "{stats}"
    );
    let leases = std::fs::read_to_string(lab.tmp.path().join("leases")).unwrap();
    assert!(leases.contains(&ip.to_string()), "{leases}");
}

/// Where Debian (and most distributions) install systemd-networkd.
const NETWORKD: &str = "/lib/systemd/systemd-networkd";

/// systemd-networkd, the client of most systemd distributions, run in the client namespace
/// in a mount namespace of its own: its `.network` file and `/run` are the test's (so the
/// host's `/run/systemd/netif` is never touched), `/sys` is read-only so that it does not wait
/// for a udev that is not there. The lease it writes is read back with every option.
#[test]
fn systemd_networkd_gets_a_lease_with_every_option() {
    if !can_run("systemd_networkd_gets_a_lease_with_every_option") {
        return;
    }
    if !Path::new(NETWORKD).exists() || !have("unshare") {
        eprintln!("skipping: {NETWORKD} (systemd) or unshare (util-linux) missing");
        return;
    }
    let lab = FullLab::new();
    let k = Kindling::start(&lab.s, &lab.tmp, &lab.config("")).expect("kindling starts");
    let net = lab.tmp.path().join("network");
    let run = lab.tmp.path().join("run-systemd");
    std::fs::create_dir_all(&net).unwrap();
    std::fs::create_dir_all(run.join("netif")).unwrap();
    std::fs::write(
        net.join("10-c0.network"),
        "[Match]\nName=c0\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n\n\
         [DHCPv4]\nClientIdentifier=mac\nUseMTU=yes\nUseDomains=yes\nUseNTP=yes\n\
         SendHostname=no\n",
    )
    .unwrap();
    // networkd drops its privileges to systemd-network when that user exists.
    let _ = std::process::Command::new("chown")
        .args(["-R", "systemd-network:systemd-network"])
        .arg(run.join("netif"))
        .status();
    let script = format!(
        "set -e; mount --make-rprivate /; mount -t tmpfs tmpfs /run; mkdir -p /run/systemd; \
         mount --bind '{}' /run/systemd; mount --bind '{}' /etc/systemd/network; \
         mount -o remount,ro /sys 2>/dev/null || mount -t sysfs -o ro sysfs /sys; \
         SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=debug exec {NETWORKD}",
        run.display(),
        net.display()
    );
    let mut cmd = lab.c.cmd("unshare");
    cmd.args(["-m", "sh", "-c", &script]);
    let nd = Proc::spawn(cmd);

    // The lease file (netif/leases/<ifindex>), once networkd has written it.
    let leases = run.join("netif/leases");
    let deadline = Instant::now() + Duration::from_secs(60);
    let lease: HashMap<String, String> = loop {
        let found = std::fs::read_dir(&leases)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .filter(|t| t.contains("ADDRESS="));
        if let Some(t) = found {
            break t
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "systemd-networkd wrote no lease; its output: {:?}",
            nd.seen_lines()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(nd);
    let ip: Ipv4Addr = lease["ADDRESS"].parse().unwrap();
    assert!(in_pool(ip), "{lease:?}");
    assert_eq!(lease["NETMASK"], "255.255.255.0", "{lease:?}");
    assert_eq!(lease["ROUTER"], "192.168.88.1", "{lease:?}");
    assert_eq!(lease["SERVER_ADDRESS"], "192.168.88.1", "{lease:?}");
    assert_eq!(lease["DNS"], "192.168.88.1 192.168.88.2", "{lease:?}");
    assert_eq!(lease["NTP"], "192.168.88.1", "{lease:?}");
    assert_eq!(lease["DOMAINNAME"], "lab.test", "{lease:?}");
    assert_eq!(lease["MTU"], "1400", "{lease:?}");
    assert_eq!(lease["LIFETIME"], "600", "{lease:?}");
    let stats = k.stop();
    assert_eq!(stats["refused_unsafe"], 0, "{stats}");
    let file = std::fs::read_to_string(lab.tmp.path().join("leases")).unwrap();
    assert!(
        file.contains(&format!("{ip} 02:00:00:00:88:01 bound")),
        "{file}"
    );
}

#[test]
fn reservations_and_the_same_address_after_kill_9() {
    if !can_run("reservations_and_the_same_address_after_kill_9") {
        return;
    }
    let lab = FullLab::new();
    let reserved = [0x02, 0, 0, 0, 0x88, 0x42];
    let cfg = lab.config(
        "[[dhcp.reservations]]\nmac = \"02:00:00:00:88:42\"\nip = \"192.168.88.42\"\nhostname = \"node42\"\n",
    );
    let sock = lab.c.udp("c0", ANY68);
    let mut k = Kindling::start(&lab.s, &lab.tmp, &cfg).expect("kindling starts");
    let r = dora(&sock, reserved, None).expect("the reserved machine gets a lease");
    assert_eq!(r.ip, Ipv4Addr::new(192, 168, 88, 42));
    assert_eq!(r.hostname.as_deref(), Some("node42"));
    let a = dora(&sock, [2, 0, 0, 0, 1, 1], None).expect("lease a").ip;
    let b = dora(&sock, [2, 0, 0, 0, 1, 2], None).expect("lease b").ip;
    assert!(in_pool(a) && in_pool(b) && a != b);

    // kill -9: nothing is flushed on the way out.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(k.proc.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = k.proc.terminate();
    k = Kindling::start(&lab.s, &lab.tmp, &cfg).expect("kindling restarts");
    // A new machine gets neither a nor b; the old ones get theirs back.
    let c = dora(&sock, [2, 0, 0, 0, 1, 3], None).expect("lease c").ip;
    assert!(in_pool(c) && c != a && c != b, "{c} after {a}, {b}");
    assert_eq!(dora(&sock, [2, 0, 0, 0, 1, 1], None).unwrap().ip, a);
    assert_eq!(dora(&sock, [2, 0, 0, 0, 1, 2], None).unwrap().ip, b);
    // Asking for b from another MAC: offered something else, and a REQUEST for b is NAKed.
    let d = dora(&sock, [2, 0, 0, 0, 1, 4], Some(b))
        .expect("lease d")
        .ip;
    assert_ne!(d, b);
    let nak = request(&sock, [2, 0, 0, 0, 1, 5], b, None);
    assert_eq!(
        nak,
        Some(Err(())),
        "a REQUEST for another machine's address is NAKed"
    );
    k.stop();
}

#[test]
fn an_address_that_answers_ping_is_not_offered() {
    if !can_run("an_address_that_answers_ping_is_not_offered") {
        return;
    }
    let lab = FullLab::new();
    // A host squatting on the first pool address, unknown to the lease table.
    lab.c.ip(&["addr", "add", "192.168.88.100/24", "dev", "c0"]);
    let cfg = lab.config("").replace(
        "ping_check = false",
        "ping_check = true\nping_timeout_ms = 1000",
    );
    let sock = lab.c.udp("c0", ANY68);
    let k = Kindling::start(&lab.s, &lab.tmp, &cfg).expect("kindling starts");
    let got = dora(&sock, [2, 0, 0, 0, 2, 1], None).expect("a lease").ip;
    assert_eq!(
        got,
        Ipv4Addr::new(192, 168, 88, 101),
        "the squatted .100 is skipped"
    );
    // The next machine does not get .100 either: it is held back.
    let next = dora(&sock, [2, 0, 0, 0, 2, 2], None).expect("a lease").ip;
    assert_eq!(next, Ipv4Addr::new(192, 168, 88, 102));
    k.stop();
    let leases = std::fs::read_to_string(lab.tmp.path().join("leases")).unwrap();
    assert!(
        leases
            .lines()
            .any(|l| l.starts_with("192.168.88.100 ") && l.contains(" declined ")),
        "{leases}"
    );
}

/// 1,000 machines, DORA, RELEASE and re-DORA in random order over a 100-address pool, the
/// server killed with SIGKILL and restarted twice along the way: no address is ever ACKed
/// to two machines that both still hold it, and every machine that got an address keeps
/// it after the restarts.
#[test]
fn churn_of_1000_clients_through_kill_9_never_duplicates_an_address() {
    if !can_run("churn_of_1000_clients_through_kill_9_never_duplicates_an_address") {
        return;
    }
    let lab = FullLab::new();
    // Leases outlive the test however slow the machine is: only RELEASEs free addresses.
    let cfg = lab
        .config("")
        .replace("lease_secs = 600", "lease_secs = 86400");
    let sock = lab.c.udp("c0", ANY68);
    let mut k = Kindling::start(&lab.s, &lab.tmp, &cfg).expect("kindling starts");
    // Who holds what, as the clients see it.
    let mut held: BTreeMap<Ipv4Addr, [u8; 6]> = BTreeMap::new();
    let mut by_mac: HashMap<[u8; 6], Ipv4Addr> = HashMap::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut acks, mut exhausted, mut released) = (0, 0, 0);
    for step in 0..1000u32 {
        if step == 400 || step == 750 {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(k.proc.pid()),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            let _ = k.proc.terminate();
            k = Kindling::start(&lab.s, &lab.tmp, &cfg).expect("kindling restarts");
            // Every holder gets its own address back after the crash.
            for (mac, ip) in by_mac.iter().take(20) {
                let again = dora(&sock, *mac, None).expect("a holder renews");
                assert_eq!(again.ip, *ip, "{mac:02x?} lost its address in the crash");
            }
        }
        let mac = [0x02, 0x01, (step >> 8) as u8, step as u8, 0, 0];
        // One attempt: silence means the pool is out (or the reply was late, which cannot
        // cause a duplicate either: the server then holds an address this test forgot).
        let releases = match dora_with(&sock, mac, None, 1, Duration::from_millis(500)) {
            Some(l) => {
                acks += 1;
                if let Some(other) = held.insert(l.ip, mac) {
                    panic!("{} handed to {mac:02x?} while {other:02x?} holds it", l.ip);
                }
                by_mac.insert(mac, l.ip);
                u64::from(rnd() % 3 == 0)
            }
            None => {
                exhausted += 1;
                5
            }
        };
        // Random holders release their addresses: now and then, and a few when out.
        for _ in 0..releases {
            let Some((&ip, &m)) = held.iter().nth((rnd() % held.len().max(1) as u64) as usize)
            else {
                break;
            };
            release(&sock, m, ip);
            held.remove(&ip);
            by_mac.remove(&m);
            released += 1;
        }
    }
    let stats = k.stop();
    eprintln!("acks {acks}, pool exhausted {exhausted}, released {released}; {stats}");
    assert!(acks >= 500, "most DORAs should succeed: {acks}");
    assert!(
        stats["ignored"]["no_free_address"].as_u64() > Some(0),
        "the pool (100) was meant to run out: {stats}"
    );
    assert!(held.len() <= 100);
}

#[derive(Debug, PartialEq)]
struct Leased {
    ip: Ipv4Addr,
    hostname: Option<String>,
}

/// DISCOVER -> OFFER -> REQUEST -> ACK (up to 3 tries); None when no offer comes.
fn dora(sock: &UdpSocket, mac: [u8; 6], want: Option<Ipv4Addr>) -> Option<Leased> {
    dora_with(sock, mac, want, 3, Duration::from_secs(2))
}

fn dora_with(
    sock: &UdpSocket,
    mac: [u8; 6],
    want: Option<Ipv4Addr>,
    tries: usize,
    wait: Duration,
) -> Option<Leased> {
    for _ in 0..tries {
        let xid = next_xid();
        let mut opts = vec![];
        if let Some(w) = want {
            opts.push(DhcpOption::RequestedIpAddress(w));
        }
        sock.send_to(
            &client_packet(
                mac,
                xid,
                v4::MessageType::Discover,
                Ipv4Addr::UNSPECIFIED,
                &opts,
            ),
            BCAST67,
        )
        .unwrap();
        let Some(offer) = first_reply(sock, xid, wait) else {
            continue;
        };
        assert_eq!(msg_type(&offer), Some(v4::MessageType::Offer));
        match request(sock, mac, offer.yiaddr(), Some(SRV))? {
            Ok(l) => return Some(l),
            Err(()) => continue,
        }
    }
    None
}

/// A REQUEST for `ip` (SELECTING with `server`, INIT-REBOOT without): Ok(lease) on ACK,
/// Err on NAK, None on silence.
fn request(
    sock: &UdpSocket,
    mac: [u8; 6],
    ip: Ipv4Addr,
    server: Option<Ipv4Addr>,
) -> Option<Result<Leased, ()>> {
    let xid = next_xid();
    let mut opts = vec![DhcpOption::RequestedIpAddress(ip)];
    if let Some(s) = server {
        opts.push(DhcpOption::ServerIdentifier(s));
    }
    sock.send_to(
        &client_packet(
            mac,
            xid,
            v4::MessageType::Request,
            Ipv4Addr::UNSPECIFIED,
            &opts,
        ),
        BCAST67,
    )
    .unwrap();
    let reply = first_reply(sock, xid, Duration::from_secs(2))?;
    match msg_type(&reply) {
        Some(v4::MessageType::Ack) => {
            assert_eq!(reply.yiaddr(), ip);
            let hostname = match reply.opts().get(OptionCode::Hostname) {
                Some(DhcpOption::Hostname(h)) => Some(h.clone()),
                _ => None,
            };
            Some(Ok(Leased { ip, hostname }))
        }
        Some(v4::MessageType::Nak) => Some(Err(())),
        t => panic!("unexpected reply {t:?}"),
    }
}

fn release(sock: &UdpSocket, mac: [u8; 6], ip: Ipv4Addr) {
    let p = client_packet(
        mac,
        next_xid(),
        v4::MessageType::Release,
        ip,
        &[DhcpOption::ServerIdentifier(SRV)],
    );
    // A RELEASE is unicast from the leased address; the client namespace has no address,
    // so it goes as a broadcast (Kindling matches it by MAC and ciaddr either way).
    sock.send_to(&p, BCAST67).unwrap();
}
