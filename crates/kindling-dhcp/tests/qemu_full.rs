//! Real firmware booting end to end with Kindling as the ONLY DHCP server (`mode = "full"`),
//! inside a network namespace: QEMU (TCG) on a bridge, Kindling's `proxydhcp` example
//! handing out addresses from 10.99.0.100-10.99.0.150, dnsmasq serving TFTP only (`--port=0`
//! and no `dhcp-range`: it answers no DHCP at all) and a small HTTP listener in the test
//! playing Kindling's HTTP service for `boot.ipxe`.
//!
//! * SeaBIOS + QEMU's iPXE NIC ROM: the ROM gets an address from the pool and the script URL
//!   in the same reply, fetches the script over HTTP from that address and runs it.
//! * OVMF with EDK2's own PXE client (NIC without option ROM): an address (siaddr set, no
//!   file), the port-4011 step for snponly.efi, TFTP, then iPXE (snponly) DHCPs again, gets
//!   the same address and the script URL, and fetches the script.
//!
//! What went over the wire is read by an AF_PACKET sniffer on the VM's tap; the lease file
//! must end with the VM's MAC bound. Skipped with a message when not root or when qemu /
//! OVMF / the ipxe package / dnsmasq are missing.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use common::*;

/// br0's address: Kindling's server identifier, the TFTP and the HTTP server.
const SRV_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// Kindling's default `script_url` (`http://{server_ip}:{http_port}/boot.ipxe`) on br0.
const BOOT_URL: &str = "http://10.99.0.1:8080/boot.ipxe";
const VM_MAC: &str = "52:54:00:12:34:56";
/// What the served iPXE script prints on the console.
const MARKER: &str = "KINDLING-FULL-OK";
/// For the whole boot (TCG, possibly under `stress-ng --cpu 2`).
const BOOT_DEADLINE: Duration = Duration::from_secs(240);

fn in_pool(ip: Ipv4Addr) -> bool {
    ip.octets()[..3] == [10, 99, 0] && (100..=150).contains(&ip.octets()[3])
}

// ---------------------------------------------------------------------------------------
// DHCP as seen on the VM's tap.

/// One BOOTP datagram seen on the tap, read straight from its bytes.
#[derive(Clone, Debug)]
struct Bootp {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    /// 1 request, 2 reply.
    op: u8,
    xid: u32,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
    siaddr: Ipv4Addr,
    chaddr: String,
    file: String,
    opts: Vec<(u8, Vec<u8>)>,
}

impl Bootp {
    fn parse(f: &Frame) -> Option<Self> {
        let p = &f.payload;
        if p.len() < 240 || p[236..240] != [99, 130, 83, 99] {
            return None;
        }
        let ip = |i: usize| Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]);
        let mut opts = Vec::new();
        let mut i = 240;
        while i < p.len() && p[i] != 255 {
            if p[i] == 0 {
                i += 1;
                continue;
            }
            let Some(&len) = p.get(i + 1) else { break };
            let end = (i + 2 + len as usize).min(p.len());
            opts.push((p[i], p[i + 2..end].to_vec()));
            i = end;
        }
        let file = String::from_utf8_lossy(&p[108..236])
            .trim_end_matches('\0')
            .to_string();
        let chaddr = p[28..34]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        Some(Self {
            src: f.src,
            dst: f.dst,
            op: p[0],
            xid: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            ciaddr: ip(12),
            yiaddr: ip(16),
            siaddr: ip(20),
            chaddr,
            file,
            opts,
        })
    }

    fn opt(&self, code: u8) -> Option<&[u8]> {
        self.opts
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    fn opt_ip(&self, code: u8) -> Option<Ipv4Addr> {
        match self.opt(code)? {
            [a, b, c, d] => Some(Ipv4Addr::new(*a, *b, *c, *d)),
            _ => None,
        }
    }

    /// Option 53: 1 DISCOVER, 2 OFFER, 3 REQUEST, 5 ACK, 6 NAK.
    fn kind(&self) -> u8 {
        self.opt(53).and_then(|v| v.first().copied()).unwrap_or(0)
    }

    /// iPXE announces itself with option 77 "iPXE" and its feature option 175.
    fn is_ipxe(&self) -> bool {
        self.opt(77).is_some_and(|v| v == b"iPXE") || self.opt(175).is_some()
    }

    fn vendor_class(&self) -> String {
        String::from_utf8_lossy(self.opt(60).unwrap_or_default()).into_owned()
    }

    fn summary(&self) -> String {
        let kind = match self.kind() {
            1 => "DISCOVER",
            2 => "OFFER",
            3 => "REQUEST",
            4 => "DECLINE",
            5 => "ACK",
            6 => "NAK",
            7 => "RELEASE",
            8 => "INFORM",
            _ => "?",
        };
        let codes: Vec<u8> = self.opts.iter().map(|(c, _)| *c).collect();
        format!(
            "{} -> {} {kind} xid={:08x} chaddr={} ciaddr={} yiaddr={} siaddr={} file={:?} opt60={:?} opt54={:?} opt50={:?} codes={codes:?}",
            self.src,
            self.dst,
            self.xid,
            self.chaddr,
            self.ciaddr,
            self.yiaddr,
            self.siaddr,
            self.file,
            self.vendor_class(),
            self.opt_ip(54),
            self.opt_ip(50),
        )
    }
}

// ---------------------------------------------------------------------------------------
// The lab.

struct Lab {
    // Dropped in this order: the VM first, the namespace and its directory last.
    qemu: Proc,
    http: BootHttp,
    sniffer: Sniffer,
    dnsmasq: Dnsmasq,
    kindling: Kindling,
    ns: Netns,
    tmp: TempDir,
    started: Instant,
}

/// Everything a run left behind.
struct Run {
    events: Vec<serde_json::Value>,
    serial: Vec<String>,
    dnsmasq: Vec<String>,
    kindling_log: Vec<String>,
    http: Vec<(SocketAddr, String)>,
    dhcp: Vec<Bootp>,
    stats: serde_json::Value,
    leases: String,
    /// Processes holding UDP port 67 in the namespace (from `ss`), if `ss` is there.
    port67: Option<String>,
    took: Duration,
}

fn start(uefi: bool) -> Lab {
    let started = Instant::now();
    let tmp = kindling_testkit::tempdir("dhcp-qemu-full");
    let ns = Netns::new("qf");
    ns.vm_bridge();
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "br0"]);
    let leases = tmp.path().join("kindling.leases");
    // Kindling's boot answers are the defaults (script_url, undionly.kpxe, snponly.efi).
    let cfg = format!(
        "enabled = true
interfaces = [\"br0\"]
mode = \"full\"
lease_file = \"{}\"
ping_check = false

[[dhcp.subnets]]
network = \"10.99.0.0/24\"
pools = [\"10.99.0.100-10.99.0.150\"]
router = \"10.99.0.1\"
dns_servers = [\"10.99.0.1\"]
lease_secs = 600
",
        leases.display()
    );
    let kindling = Kindling::start(&ns, &tmp, &cfg).expect("kindling starts");
    // TFTP only: Dnsmasq::start passes --port=0 (no DNS) and there is no dhcp-range (no DHCP).
    let dnsmasq = Dnsmasq::start(&ns, &tmp, "br0", "enable-tftp\ntftp-root=/usr/lib/ipxe\n");
    let http = BootHttp::start(
        &ns,
        SocketAddrV4::new(SRV_IP, 8080),
        format!("#!ipxe\necho {MARKER} ip=${{ip}} mac=${{mac}}\nsleep 3600\n"),
        None,
    );
    let sniffer = Sniffer::start(&ns, "tap0");
    let mut q = ns.cmd("timeout");
    q.args([
        "300",
        "qemu-system-x86_64",
        "-machine",
        "q35,accel=tcg",
        "-m",
        "256",
        "-nographic",
        "-no-reboot",
    ]);
    q.args(["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"]);
    if uefi {
        let vars = tmp.path().join("OVMF_VARS.fd");
        std::fs::copy(OVMF_VARS, &vars).unwrap();
        q.arg("-drive")
            .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"))
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,file={}", vars.display()));
        // romfile= (empty): no iPXE option ROM, so EDK2's own PxeBcDxe does the PXE boot.
        q.args([
            "-device",
            &format!("virtio-net-pci,netdev=n0,romfile=,mac={VM_MAC}"),
        ]);
    } else {
        q.args(["-device", &format!("virtio-net-pci,netdev=n0,mac={VM_MAC}")]);
    }
    q.args(["-boot", "n"]);
    let qemu = Proc::spawn(q);
    Lab {
        qemu,
        http,
        sniffer,
        dnsmasq,
        kindling,
        ns,
        tmp,
        started,
    }
}

impl Lab {
    /// Watches until the VM fetched the script over HTTP and printed its marker (or QEMU
    /// exited, or the deadline), then stops everything and gathers what happened.
    fn run(self) -> Run {
        let Lab {
            mut qemu,
            http,
            sniffer,
            dnsmasq,
            kindling,
            ns,
            tmp,
            started,
        } = self;
        let deadline = Instant::now() + BOOT_DEADLINE;
        let (mut events, mut dns, mut klog) = (vec![], vec![], vec![]);
        let mut port67 = None;
        let mut serial = qemu.watch(deadline, |serial| {
            events.extend(kindling.events());
            klog.extend(kindling.proc.err_lines.try_iter());
            dns.extend(dnsmasq.proc.seen_lines());
            // Who listens on 67 (checked once, while everything runs).
            if port67.is_none() && have("ss") {
                let out = ns
                    .cmd("ss")
                    .args(["-H", "-u", "-a", "-n", "-p", "sport = :67"])
                    .output()
                    .expect("ss");
                port67 = Some(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            let fetched = !http.requests().is_empty();
            fetched && serial.iter().any(|l| l.contains(MARKER))
        });
        let took = started.elapsed();
        qemu.terminate();
        serial.extend(qemu.seen_lines());
        let frames = sniffer.stop();
        events.extend(kindling.events());
        let stats = kindling.stop();
        dns.extend(dnsmasq.proc.seen_lines());
        drop(dnsmasq);
        let leases =
            std::fs::read_to_string(tmp.path().join("kindling.leases")).unwrap_or_default();
        let run = Run {
            events,
            serial,
            dnsmasq: dns,
            kindling_log: klog,
            http: http.requests(),
            dhcp: frames.iter().filter_map(Bootp::parse).collect(),
            stats,
            leases,
            port67,
            took,
        };
        drop((http, ns, tmp));
        run.print();
        run
    }
}

impl Run {
    fn print(&self) {
        eprintln!("--- boot took {:.1} s", self.took.as_secs_f64());
        eprintln!("--- DHCP on tap0:");
        for d in &self.dhcp {
            eprintln!("  {}", d.summary());
        }
        eprintln!("--- HTTP requests: {:?}", self.http);
        eprintln!(
            "--- serial lines with the marker: {:?}",
            self.serial
                .iter()
                .filter(|l| l.contains(MARKER))
                .collect::<Vec<_>>()
        );
        eprintln!("--- dnsmasq: {:?}", self.dnsmasq);
        eprintln!("--- port 67 holders: {:?}", self.port67);
        eprintln!("--- kindling stats: {}", self.stats);
        eprintln!("--- lease file:\n{}", self.leases);
    }

    /// Everything, for a failed assertion.
    fn dump(&self) -> String {
        format!(
            "events {:#?}\nserial {:#?}\nkindling log {:#?}",
            self.events, self.serial, self.kindling_log
        )
    }

    fn answered(&self) -> Vec<&serde_json::Value> {
        self.events
            .iter()
            .filter(|e| e["event"] == "answered" && e["mac"] == VM_MAC)
            .collect()
    }

    /// The replies Kindling sent to requests matching `from_client`, of option-53 `kind`,
    /// from `port`.
    fn replies(&self, port: u16, kind: u8, from_client: impl Fn(&Bootp) -> bool) -> Vec<&Bootp> {
        let xids: Vec<u32> = self
            .dhcp
            .iter()
            .filter(|d| d.op == 1 && d.chaddr == VM_MAC && from_client(d))
            .map(|d| d.xid)
            .collect();
        self.dhcp
            .iter()
            .filter(|d| {
                d.op == 2
                    && d.src.port() == port
                    && d.kind() == kind
                    && d.chaddr == VM_MAC
                    && xids.contains(&d.xid)
            })
            .collect()
    }

    /// Checks one OFFER/ACK of full mode: an address from the pool with its options, from
    /// 10.99.0.1; returns the address.
    fn check_lease_reply(&self, r: &Bootp) -> Ipv4Addr {
        assert!(in_pool(r.yiaddr), "yiaddr not in the pool: {}", r.summary());
        assert_eq!(*r.src.ip(), SRV_IP, "{}", r.summary());
        assert_eq!(r.opt_ip(54), Some(SRV_IP), "option 54: {}", r.summary());
        assert_eq!(
            r.opt_ip(1),
            Some(Ipv4Addr::new(255, 255, 255, 0)),
            "option 1: {}",
            r.summary()
        );
        assert_eq!(r.opt_ip(3), Some(SRV_IP), "option 3: {}", r.summary());
        assert_eq!(
            r.opt(51),
            Some(&600u32.to_be_bytes()[..]),
            "option 51: {}",
            r.summary()
        );
        r.yiaddr
    }

    /// Every BOOTREPLY on the wire came from Kindling (dnsmasq answered no DHCP).
    fn check_kindling_is_the_only_dhcp_server(&self) {
        assert!(
            // dnsmasq tags its DHCP lines (the "DHCP, IP range" banner, each packet with
            // --log-dhcp) "dnsmasq-dhcp", as it tags TFTP's "dnsmasq-tftp".
            !self.dnsmasq.iter().any(|l| l.contains("dnsmasq-dhcp")),
            "dnsmasq must not do DHCP here: {:?}",
            self.dnsmasq
        );
        if let Some(holders) = &self.port67 {
            assert!(
                !holders.contains("dnsmasq") && holders.contains("proxydhcp"),
                "port 67 holders: {holders}"
            );
        }
        let on_wire = self.dhcp.iter().filter(|d| d.op == 2).count() as u64;
        let s = &self.stats;
        let sent: u64 = ["offers", "acks", "naks"]
            .iter()
            .filter_map(|k| s[k].as_u64())
            .sum();
        assert_eq!(
            on_wire, sent,
            "every reply on the wire is one of Kindling's: {s}"
        );
    }

    /// The lease file: the v1 header, every record of the VM's MAC for `ip`, the last
    /// one bound.
    fn check_lease_file(&self, ip: Ipv4Addr) {
        let mut lines = self.leases.lines();
        assert_eq!(
            lines.next(),
            Some("# kindling-leases v1"),
            "{}",
            self.leases
        );
        let mine: Vec<Vec<&str>> = lines
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .filter(|f| f.get(1) == Some(&VM_MAC))
            .collect();
        assert!(!mine.is_empty(), "no record of {VM_MAC}: {}", self.leases);
        for f in &mine {
            assert_eq!(f.len(), 5, "{f:?}");
            assert_eq!(f[0], ip.to_string(), "one address per MAC: {}", self.leases);
        }
        assert_eq!(
            mine.last().map(|f| f[2]),
            Some("bound"),
            "the VM's lease ends bound: {}",
            self.leases
        );
    }

    /// The VM fetched the script over HTTP from `ip`, and ran it.
    fn check_script_fetched(&self, ip: Ipv4Addr) {
        assert!(
            self.http
                .iter()
                .any(|(peer, line)| peer.ip() == ip && line.starts_with("GET /boot.ipxe ")),
            "no GET /boot.ipxe from {ip}: {:?}\n{}",
            self.http,
            self.dump()
        );
        assert!(
            self.serial
                .iter()
                .any(|l| l.contains(MARKER) && l.contains(&format!("ip={ip}"))),
            "the script's marker with ip={ip} is not on the console\n{}",
            self.dump()
        );
    }
}

#[test]
fn full_mode_seabios_ipxe_rom_leases_and_fetches_the_script() {
    if !can_boot(
        "full_mode_seabios_ipxe_rom_leases_and_fetches_the_script",
        false,
    ) {
        return;
    }
    let run = start(false).run();

    // iPXE's DHCP: an OFFER and an ACK with the same pool address, the script URL in `file`.
    let offers = run.replies(67, 2, Bootp::is_ipxe);
    let acks = run.replies(67, 5, Bootp::is_ipxe);
    assert!(!offers.is_empty(), "no OFFER to iPXE\n{}", run.dump());
    assert!(!acks.is_empty(), "no ACK to iPXE\n{}", run.dump());
    let ip = run.check_lease_reply(offers[0]);
    for r in offers.iter().chain(&acks) {
        assert_eq!(run.check_lease_reply(r), ip, "{}", r.summary());
        assert_eq!(r.file, BOOT_URL, "{}", r.summary());
    }
    assert!(
        !run.dhcp.iter().any(|d| d.file == "undionly.kpxe"),
        "the iPXE ROM must not be chained to undionly.kpxe"
    );
    let answered = run.answered();
    assert!(
        answered.iter().any(|e| e["firmware"] == "ipxe"
            && e["arch"] == 0
            && e["port"] == 67
            && e["file"] == BOOT_URL),
        "{}",
        run.dump()
    );
    run.check_script_fetched(ip);
    run.check_lease_file(ip);
    run.check_kindling_is_the_only_dhcp_server();
}

#[test]
fn full_mode_edk2_uefi_pxe_leases_goes_through_4011_and_chains_ipxe() {
    if !can_boot(
        "full_mode_edk2_uefi_pxe_leases_goes_through_4011_and_chains_ipxe",
        true,
    ) {
        return;
    }
    let run = start(true).run();
    let edk2 = |d: &Bootp| d.vendor_class().starts_with("PXEClient:Arch:00007") && !d.is_ipxe();

    // 1. EDK2's DORA: an address from the pool, siaddr set, no file.
    let offers = run.replies(67, 2, edk2);
    let acks = run.replies(67, 5, edk2);
    assert!(!offers.is_empty(), "no OFFER to EDK2\n{}", run.dump());
    assert!(!acks.is_empty(), "no ACK to EDK2\n{}", run.dump());
    let ip = run.check_lease_reply(offers[0]);
    for r in offers.iter().chain(&acks) {
        assert_eq!(run.check_lease_reply(r), ip, "{}", r.summary());
        assert_eq!(r.siaddr, SRV_IP, "{}", r.summary());
        assert_eq!(r.file, "", "{}", r.summary());
    }
    // 2. EDK2's boot-server REQUEST on 4011: the ACK names snponly.efi.
    let boot = run.replies(4011, 5, edk2);
    assert!(
        boot.iter().any(|r| r.file == "snponly.efi"),
        "no 4011 ACK with snponly.efi\n{}",
        run.dump()
    );
    let answered = run.answered();
    assert!(
        answered
            .iter()
            .any(|e| e["firmware"] == "uefi_pxe" && e["port"] == 67 && e["file"] == ""),
        "{}",
        run.dump()
    );
    assert!(
        answered.iter().any(|e| e["firmware"] == "uefi_pxe"
            && e["port"] == 4011
            && e["file"] == "snponly.efi"),
        "{}",
        run.dump()
    );
    // 3. The firmware fetched it over TFTP, from its leased address.
    assert!(
        run.dnsmasq
            .iter()
            .any(|l| l.contains("sent /usr/lib/ipxe/snponly.efi to") && l.contains(&ip.to_string())),
        "EDK2 did not download snponly.efi from {ip}: {:?}",
        run.dnsmasq
    );
    // 4. iPXE (snponly.efi) DHCPs again: the same address and the script URL.
    let ipxe_offers = run.replies(67, 2, Bootp::is_ipxe);
    let ipxe_acks = run.replies(67, 5, Bootp::is_ipxe);
    assert!(!ipxe_acks.is_empty(), "no ACK to iPXE\n{}", run.dump());
    for r in ipxe_offers.iter().chain(&ipxe_acks) {
        assert_eq!(run.check_lease_reply(r), ip, "same MAC, same address");
        assert_eq!(r.file, BOOT_URL, "{}", r.summary());
    }
    assert!(
        answered
            .iter()
            .any(|e| e["firmware"] == "ipxe" && e["file"] == BOOT_URL),
        "{}",
        run.dump()
    );
    // 5. The script over HTTP from that address, and the lease bound at the end.
    run.check_script_fetched(ip);
    run.check_lease_file(ip);
    run.check_kindling_is_the_only_dhcp_server();
}
