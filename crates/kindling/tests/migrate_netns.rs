//! The decisive test of `kindling migrate dnsmasq`: for each configuration of
//! `tests/migrate/dnsmasq/`, in network namespaces this test creates, dnsmasq runs with the
//! original configuration (only paths adapted: the TFTP root), then `kindling serve` runs
//! with the migrated configuration (golden `NAME.toml`; only the data and state
//! directories overridden), one after the other on the same veth with the address and
//! interface name the migration names. The same DISCOVERs (and port-4011 REQUESTs when an
//! offer asks for them) go to both, for every client the migration lists (BIOS, UEFI,
//! iPXE, HTTP Boot, arm64; the default MAC and each MAC of the configuration). Where the
//! boot file / URL, next-server or option-43 presence differ, the migrated file must list
//! that difference; and every difference it lists must be real. Where the migration has a
//! `[dhcp.pxe_menu]`, the BIOS machine's menu offer and the port-4011 ACK to each of its
//! items must be byte for byte dnsmasq's.
//!
//! Root only (skipped with a message otherwise, or without dnsmasq / iproute2). Namespaces
//! and processes are removed by Drop guards, by PID, even when an assertion fails.

#[path = "../src/migrate/probe.rs"]
mod probe;

mod common;

use common::netns::{Netns, Proc, have};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use probe::{Client, DISCOVER, Field, Kind, REQUEST, Seen, Step};

static N: AtomicU32 = AtomicU32::new(0);

fn can_run(test: &str) -> bool {
    if !common::netns::can_run(test) {
        return false;
    }
    for (cmd, pkg) in [("dnsmasq", "dnsmasq-base"), ("ss", "iproute2")] {
        if !have(cmd) {
            eprintln!("SKIP {test}: {cmd} not found (scripts/install-deps installs {pkg})");
            return false;
        }
    }
    true
}

/// Waits (bounded, polling) until UDP `port` is bound in the namespace.
fn wait_bound(ns: &Netns, port: u16, proc: &mut Proc, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ns
            .cmd("ss")
            .args(["-Hlun", &format!("sport = :{port}")])
            .output()
            .unwrap();
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return;
        }
        if let Ok(Some(st)) = proc.child.try_wait() {
            panic!(
                "{what} exited ({st}) before binding UDP {port}: {:?}",
                proc.seen_lines()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not bind UDP {port}: {:?}",
            proc.seen_lines()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lab one configuration needs: the server's interface name and address, a client.
struct Lab {
    s: Netns,
    c: Netns,
    lease: Ipv4Addr,
}

impl Lab {
    fn new(iface: &str, server: Ipv4Addr, prefix: u32) -> Lab {
        let s = Netns::new("s");
        let c = Netns::new("c");
        s.veth(iface, "c0", &c);
        s.ip(&["addr", "add", &format!("{server}/{prefix}"), "dev", iface]);
        s.ip(&["link", "set", iface, "up"]);
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        let net = u32::from(server) & mask;
        let mut lease = Ipv4Addr::from(net | 50);
        if lease == server {
            lease = Ipv4Addr::from(net | 51);
        }
        c.ip(&["addr", "add", &format!("{lease}/{prefix}"), "dev", "c0"]);
        c.ip(&["link", "set", "c0", "up"]);
        Lab { s, c, lease }
    }

    fn socket(&self) -> UdpSocket {
        let u = self
            .c
            .udp("c0", SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68));
        u.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        u
    }
}

/// `kindling serve --config kconf` in the lab's server namespace, its state and cache in
/// `tmp`, logging at info.
fn serve(lab: &Lab, kconf: &Path, tmp: &Path) -> Proc {
    let mut k = lab.s.cmd(env!("CARGO_BIN_EXE_kindling"));
    k.arg("--config")
        .arg(kconf)
        .arg("serve")
        .arg("--state-dir")
        .arg(tmp.join("state"))
        .arg("--cache-dir")
        .arg(tmp.join("cache"))
        .arg("--log")
        .arg("info")
        .arg("--no-watch");
    for (key, _) in std::env::vars() {
        if key.starts_with("KINDLING_") {
            k.env_remove(key);
        }
    }
    Proc::spawn(k)
}

/// The first reply with this xid within `window`.
fn exchange(
    sock: &UdpSocket,
    pkt: &[u8],
    dest: SocketAddrV4,
    xid: u32,
    window: Duration,
) -> Option<probe::Reply> {
    sock.send_to(pkt, dest).expect("send");
    let deadline = Instant::now() + window;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && let Some(r) = probe::decode_reply(&buf[..n])
            && r.xid == xid
        {
            return Some(r);
        }
    }
    None
}

/// What a client sees from the server running now.
fn observe(lab: &Lab, sock: &UdpSocket, c: &Client, window: Duration) -> Seen {
    let xid = 0x6b00_0000 | (N.fetch_add(1, Ordering::SeqCst) & 0xffffff);
    let pkt = probe::request_bytes(c, xid, DISCOVER, Ipv4Addr::UNSPECIFIED, None);
    let Some(offer) = exchange(
        sock,
        &pkt,
        SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
        xid,
        window,
    ) else {
        return Seen::SILENT;
    };
    let boot = match probe::after_offer(&offer) {
        Step::Done(b) => b,
        Step::Ask4011 { server, item } => {
            let ack = if server.is_unspecified() {
                None
            } else {
                let xid = xid ^ 0x0080_0000;
                let req = probe::request_bytes(c, xid, REQUEST, lab.lease, item);
                exchange(sock, &req, SocketAddrV4::new(server, 4011), xid, window)
            };
            probe::after_ack(server, ack.as_ref())
        }
    };
    Seen {
        offer: Some((offer.siaddr, offer.opt43.is_some())),
        boot,
    }
}

/// The BIOS machine's menu exchange, raw: the offer's option 43 and file, then the port-4011
/// ACK (file, option 43) to each menu item that is not local boot.
#[derive(Debug, PartialEq, Eq)]
struct MenuBytes {
    offer_opt43: Option<Vec<u8>>,
    offer_file: String,
    acks: Vec<(u16, Option<Ack>)>,
}

/// A port-4011 ACK's file and option 43.
type Ack = (String, Option<Vec<u8>>);

impl MenuBytes {
    /// The offer's sub-options sorted, the ACKs' prompts left out.
    fn unordered(mut self) -> MenuBytes {
        let flat = |subs: Vec<(u8, Vec<u8>)>| -> Vec<u8> {
            subs.into_iter()
                .flat_map(|(c, d)| [vec![c, d.len() as u8], d].concat())
                .collect()
        };
        self.offer_opt43 = self.offer_opt43.map(|o| {
            let mut subs = probe::pxe_subs(&o);
            subs.sort();
            flat(subs)
        });
        for (_, a) in &mut self.acks {
            if let Some((_, Some(o))) = a {
                *o = flat(
                    probe::pxe_subs(o)
                        .into_iter()
                        .filter(|(c, _)| *c != 10)
                        .collect(),
                );
            }
        }
        self
    }
}

fn menu_exchange(lab: &Lab, sock: &UdpSocket, server: Ipv4Addr, window: Duration) -> MenuBytes {
    let c = parse_label("bios");
    let xid = 0x6d00_0000 | (N.fetch_add(1, Ordering::SeqCst) & 0xffffff);
    let pkt = probe::request_bytes(&c, xid, DISCOVER, Ipv4Addr::UNSPECIFIED, None);
    let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let offer = exchange(sock, &pkt, bcast, xid, window).expect("an offer to BIOS");
    let items = probe::menu_items(offer.opt43.as_deref().unwrap_or(&[]));
    let acks = items
        .iter()
        .filter(|(t, _)| *t != 0)
        .map(|(t, _)| {
            let xid = 0x6d00_0000 | (N.fetch_add(1, Ordering::SeqCst) & 0xffffff);
            let req = probe::request_bytes(&c, xid, REQUEST, lab.lease, Some((*t, 0)));
            let to = SocketAddrV4::new(server, 4011);
            let ack = exchange(sock, &req, to, xid, window).map(|a| (a.file, a.opt43));
            (*t, ack)
        })
        .collect();
    MenuBytes {
        offer_opt43: offer.opt43,
        offer_file: offer.file,
        acks,
    }
}

fn parse_label(l: &str) -> Client {
    let (k, mac) = match l.split_once('@') {
        Some((k, m)) => {
            let b: Vec<u8> = m
                .split('-')
                .map(|x| u8::from_str_radix(x, 16).unwrap())
                .collect();
            (k, [b[0], b[1], b[2], b[3], b[4], b[5]])
        }
        None => (l, probe::DEFAULT_MAC),
    };
    let kind = Kind::ALL
        .into_iter()
        .find(|x| x.name() == k)
        .unwrap_or_else(|| panic!("kind {k}"));
    Client { kind, mac }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// dnsmasq's configuration adapted to the test: the TFTP root (and included files) point
/// into the scratch directory. Nothing else changes.
fn adapt(conf: &str, tmp: &Path) -> String {
    let root = tmp.join("tftproot");
    std::fs::create_dir_all(&root).unwrap();
    conf.lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("tftp-root=") {
                format!("tftp-root={}", root.display())
            } else if t.starts_with("conf-dir=") || t.starts_with("conf-file=") {
                format!("# (test) {t}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn header<'a>(toml: &'a str, prefix: &str) -> Option<&'a str> {
    toml.lines().find_map(|l| l.strip_prefix(prefix))
}

fn compare(name: &str) {
    let test = format!("migrated_{name}_answers_like_dnsmasq");
    if !can_run(&test) {
        return;
    }
    let started = Instant::now();
    let conf_path = repo().join(format!("tests/migrate/dnsmasq/{name}.conf"));
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    let migrated = std::fs::read_to_string(conf_path.with_extension("toml")).unwrap();
    let Some(at) = header(&migrated, "# checked on interface ") else {
        eprintln!("{name}: no proxy DHCP in the migration; nothing to compare");
        return;
    };
    // "eth0, address 10.10.254.200/24 (…)"
    let (iface, rest) = at.split_once(", address ").unwrap();
    let cidr = rest.split_whitespace().next().unwrap();
    let (addr, prefix) = cidr.split_once('/').unwrap();
    let server: Ipv4Addr = addr.parse().unwrap();
    let prefix: u32 = prefix.parse().unwrap();
    let clients: Vec<Client> = header(&migrated, "# clients checked: ")
        .unwrap()
        .split(", ")
        .map(parse_label)
        .collect();
    let delay = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("dhcp-reply-delay="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    // A full-DHCP dnsmasq pings an address (up to 3 s) before it first offers it.
    let full_dhcp = conf
        .lines()
        .any(|l| l.trim().starts_with("dhcp-range=") && !l.contains(",proxy"));
    let window = Duration::from_millis(1500 + delay * 1000 + if full_dhcp { 3500 } else { 0 });

    let lab = Lab::new(iface, server, prefix);
    let tmp = kindling_testkit::tempdir(&format!("migrate-{name}"));
    let sock = lab.socket();

    // dnsmasq with the original configuration.
    let dconf = tmp.path().join("dnsmasq.conf");
    std::fs::write(&dconf, adapt(&conf, tmp.path())).unwrap();
    let mut d = lab.s.cmd("dnsmasq");
    d.arg("--no-daemon")
        .arg("--port=0")
        .arg(format!("--conf-file={}", dconf.display()))
        .arg(format!(
            "--dhcp-leasefile={}",
            tmp.path().join("leases").display()
        ))
        .arg("--pid-file=")
        .arg("--user=root")
        .arg("--group=root")
        .arg("--log-facility=-");
    let mut dproc = Proc::spawn(d);
    wait_bound(&lab.s, 67, &mut dproc, "dnsmasq");
    if conf
        .lines()
        .any(|l| l.starts_with("pxe-service") || l.starts_with("pxe-prompt"))
    {
        wait_bound(&lab.s, 4011, &mut dproc, "dnsmasq");
    }
    let dseen: Vec<Seen> = clients
        .iter()
        .map(|c| observe(&lab, &sock, c, window))
        .collect();
    let with_menu = migrated.contains("\n[dhcp.pxe_menu]\n");
    let dmenu = with_menu.then(|| menu_exchange(&lab, &sock, server, window));
    dproc.terminate();
    drop(dproc);

    // Kindling with the migrated configuration; only where it keeps its files changes.
    let mut table: toml::Table = toml::from_str(&migrated).unwrap();
    let data = tmp.path().join("data");
    table.insert(
        "data_dir".into(),
        toml::Value::String(data.display().to_string()),
    );
    let kconf = tmp.path().join("kindling.toml");
    std::fs::write(&kconf, toml::to_string(&table).unwrap()).unwrap();
    let mut kproc = serve(&lab, &kconf, tmp.path());
    wait_bound(&lab.s, 67, &mut kproc, "kindling");
    wait_bound(&lab.s, 4011, &mut kproc, "kindling");
    let kseen: Vec<Seen> = clients
        .iter()
        .map(|c| observe(&lab, &sock, c, window))
        .collect();
    let kmenu = with_menu.then(|| menu_exchange(&lab, &sock, server, window));
    kproc.terminate();

    // A translated menu: the same bytes as dnsmasq's for the BIOS machine no MAC line names
    // (the corpus' menus number their items alike in both). Without a pxe-prompt, dnsmasq
    // puts its own prompt before the boot servers and leaves it out of the ACKs; Kindling
    // sends the same sub-options in its one order: compared as sets then.
    let prompted = conf.lines().any(|l| l.trim().starts_with("pxe-prompt"));
    let norm = |m: MenuBytes| if prompted { m } else { m.unordered() };
    let (dmenu, kmenu) = (dmenu.map(norm), kmenu.map(norm));
    if let (Some(d), Some(k)) = (&dmenu, &kmenu) {
        assert!(
            d.offer_opt43.is_some() && !d.acks.is_empty(),
            "{name}: dnsmasq showed no menu: {d:?}"
        );
        assert_eq!(d, k, "{name}: the menu exchange differs from dnsmasq's");
        eprintln!(
            "{name}: BIOS menu offer and the port-4011 ACKs to items {:04x?}: identical bytes",
            d.acks.iter().map(|(t, _)| *t).collect::<Vec<_>>()
        );
    }

    // Observed differences against the listed ones.
    let mut observed: BTreeSet<(Field, String)> = BTreeSet::new();
    let mut report = Vec::new();
    for ((c, ds), ks) in clients.iter().zip(&dseen).zip(&kseen) {
        let diffs = probe::differences(ds, ks);
        for (f, dv, kv) in &diffs {
            observed.insert((*f, c.label()));
            report.push(format!(
                "  {} {}: dnsmasq {dv}; Kindling {kv}",
                c.label(),
                f.name()
            ));
        }
    }
    let listed: BTreeSet<(Field, String)> =
        probe::listed_differences(&migrated).into_iter().collect();
    let unlisted: Vec<&(Field, String)> = observed.difference(&listed).collect();
    let unreal: Vec<&(Field, String)> = listed.difference(&observed).collect();
    let same = clients.len()
        - observed
            .iter()
            .map(|(_, l)| l)
            .collect::<BTreeSet<_>>()
            .len();
    eprintln!(
        "{name}: {} clients, {same} answered identically, {} differences observed, all listed in the migration: {} ({} s)\n{}",
        clients.len(),
        observed.len(),
        unlisted.is_empty(),
        started.elapsed().as_secs(),
        report.join("\n")
    );
    assert!(
        unlisted.is_empty(),
        "{name}: differences the migration does not comment: {unlisted:?}\n{}",
        report.join("\n")
    );
    assert!(
        unreal.is_empty(),
        "{name}: the migration lists differences dnsmasq does not show: {unreal:?}\n{}",
        report.join("\n")
    );
    // Something was answered at all by both (the lab works).
    assert!(
        dseen.iter().any(|s| s.offer.is_some()),
        "{name}: dnsmasq answered nobody"
    );
    assert!(
        kseen.iter().any(|s| s.offer.is_some()),
        "{name}: Kindling answered nobody"
    );
}

/// A proxy DHCP that hands out a TFTP boot file nothing serves (TFTP off) says so at
/// start and again at the reply that will fail, naming the file.
#[test]
fn a_boot_file_nothing_serves_is_warned_at_the_reply() {
    if !can_run("a_boot_file_nothing_serves_is_warned_at_the_reply") {
        return;
    }
    let lab = Lab::new("s0", Ipv4Addr::new(10, 77, 0, 1), 24);
    let tmp = kindling_testkit::tempdir("migrate-unserved");
    let sock = lab.socket();
    let kconf = tmp.path().join("kindling.toml");
    std::fs::write(
        &kconf,
        format!(
            "data_dir = \"{}\"\n[http]\nlisten = \"10.77.0.1:8080\"\n[admin]\nlisten = \"\"\n\
             [dhcp]\nenabled = true\ninterfaces = [\"s0\"]\n[tftp]\nenabled = false\n",
            tmp.path().join("data").display()
        ),
    )
    .unwrap();
    let mut kproc = serve(&lab, &kconf, tmp.path());
    wait_bound(&lab.s, 67, &mut kproc, "kindling");
    let mut lines = kproc.seen_lines();
    let seen = observe(&lab, &sock, &parse_label("bios"), Duration::from_secs(5));
    assert!(seen.offer.is_some(), "no OFFER to a BIOS client");
    // The warning follows the reply; wait for it (bounded), never assume it is written.
    let deadline = Instant::now() + Duration::from_secs(30);
    let at_reply = |l: &String| {
        l.contains("handed out a boot file that nothing serves") && l.contains("undionly.kpxe")
    };
    while !lines.iter().any(at_reply) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
        lines.extend(kproc.seen_lines());
    }
    kproc.terminate();
    lines.extend(kproc.seen_lines());
    let text = lines.join("\n");
    assert!(
        text.contains("dhcp.bios_binary \"undionly.kpxe\" is handed out over TFTP, but Kindling's TFTP server is off"),
        "no start-up warning:\n{text}"
    );
    assert!(
        lines.iter().any(at_reply),
        "no warning at the reply:\n{text}"
    );
}

macro_rules! corpus {
    ($($t:ident => $n:literal),* $(,)?) => {
        $(#[test] fn $t() { compare($n); })*

        #[test]
        fn every_corpus_configuration_has_a_netns_test() {
            let names: BTreeSet<String> = [$($n),*].into_iter().map(String::from).collect();
            let dir = repo().join("tests/migrate/dnsmasq");
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "conf") {
                    let stem = p.file_stem().unwrap().to_string_lossy().to_string();
                    assert!(names.contains(&stem), "{stem}.conf has no netns test here");
                }
            }
        }
    };
}

corpus! {
    seed => "seed",
    matchbox_proxy => "matchbox-proxy",
    matchbox_proxy_uefi => "matchbox-proxy-uefi",
    matchbox_dhcp => "matchbox-dhcp",
    netbootxyz => "netbootxyz",
    proxy_bios_uefi_ipxe => "proxy-bios-uefi-ipxe",
    ipxe_userclass_http => "ipxe-userclass-http",
    pxe_menu => "pxe-menu",
    pxe_menu_tags => "pxe-menu-tags",
    tag_if => "tag-if",
    per_mac_hosts => "per-mac-hosts",
    interfaces => "interfaces",
    arm64 => "arm64",
    http_boot => "http-boot",
    tftp_subdirs => "tftp-subdirs",
    option175_77 => "option175-77",
}
