//! Real arm64 UEFI firmware booting arm64 iPXE through Kindling's DHCP, inside a network
//! namespace: QEMU's `virt` machine (TCG, Cortex-A57) with AAVMF (EDK2 for arm64, Debian's
//! `qemu-efi-aarch64`) and a virtio-net NIC without option ROM, so that EDK2's own network
//! stack boots. Kindling serves Debian's `ipxe-arm64.efi` as `dhcp.arm64_binary`.
//!
//! * UEFI PXE (arch 11): the offer on 67 without file, the port-4011 ACK naming
//!   `ipxe-arm64.efi`, TFTP from dnsmasq.
//! * UEFI HTTP Boot (arch 19): EDK2's PXE boot options are switched off through fw_cfg
//!   (`opt/org.tianocore/IPv4PXESupport` and `IPv6PXESupport` = `n`), so HTTPv4 is the first
//!   boot option instead of the third (two minutes of PXE time-outs later); the offer carries
//!   `http://10.99.0.1:8080/tftp/ipxe-arm64.efi`, fetched with HEAD and GET.
//!
//! Then iPXE (arm64) does DHCP again (arch 11, iPXE's options), gets Kindling's script URL,
//! fetches `boot.ipxe` over HTTP and runs it: the script prints a marker with `${ip}` and
//! `${buildarch}` on the serial console. Each flow runs with Kindling as a proxy next to a
//! dnsmasq that hands out the addresses (and serves TFTP), and with Kindling as the only DHCP
//! server (`mode = "full"`, dnsmasq for TFTP only). A small HTTP listener in the test plays
//! Kindling's HTTP service (`/tftp/<name>` and `/boot.ipxe`).
//!
//! The arm64 iPXE comes from Debian's `ipxe` package from trixie on (architecture all,
//! `/usr/lib/ipxe/ipxe-arm64.efi`); bookworm's has none, so scripts/install-deps extracts it
//! from trixie's package into `~/.cache/kindling/ipxe-arm64.efi` (`KINDLING_ARM64_IPXE`
//! overrides the path). One boot takes about 25 s (EDK2's and iPXE's DHCP waits, not CPU).
//! Skipped with a message when not root or when qemu-system-aarch64 / AAVMF / the arm64
//! iPXE / dnsmasq are missing.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

const AAVMF_CODE: &str = "/usr/share/AAVMF/AAVMF_CODE.fd";
const AAVMF_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.fd";
/// Where Debian's `ipxe` package (trixie and later) has the arm64 build.
const IPXE_ARM64_PKG: &str = "/usr/lib/ipxe/ipxe-arm64.efi";
/// The name Kindling serves it under (`dhcp.arm64_binary`).
const BINARY: &str = "ipxe-arm64.efi";
/// br0's address: Kindling's server identifier, the TFTP and the HTTP server.
const SRV_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// Kindling's default `http_boot_url` with `arm64_binary`, on br0.
const HTTP_BOOT_URL: &str = "http://10.99.0.1:8080/tftp/ipxe-arm64.efi";
/// Kindling's default `script_url` on br0.
const BOOT_URL: &str = "http://10.99.0.1:8080/boot.ipxe";
const VM_MAC: &str = "52:54:00:12:34:57";
/// What the served iPXE script prints on the console.
const MARKER: &str = "KINDLING-ARM64-OK";
/// For one boot (TCG, possibly under `stress-ng --cpu 2`).
const BOOT_DEADLINE: Duration = Duration::from_secs(150);

/// The arm64 iPXE: `KINDLING_ARM64_IPXE`, the copy scripts/install-deps extracts into the
/// cache, or Debian's package (trixie on).
fn ipxe_arm64() -> Option<PathBuf> {
    kindling_testkit::cached_file("KINDLING_ARM64_IPXE", "ipxe-arm64.efi")
        .or_else(|| Some(PathBuf::from(IPXE_ARM64_PKG)).filter(|p| p.exists()))
}

fn can_boot(test: &str) -> bool {
    let mut missing = Vec::new();
    if ipxe_arm64().is_none() {
        missing.push(format!(
            "arm64 iPXE (~/.cache/kindling/ipxe-arm64.efi or {IPXE_ARM64_PKG})"
        ));
    }
    can_boot_with(
        test,
        &["qemu-system-aarch64", "dnsmasq"],
        &[AAVMF_CODE, AAVMF_VARS, "/dev/net/tun"],
        missing,
        "apt-get install qemu-system-arm qemu-efi-aarch64 dnsmasq-base; \
         scripts/install-deps extracts ipxe-arm64.efi from Debian trixie's ipxe",
    )
}

fn in_pool(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [10, 99, 0] && (100..=150).contains(&v4.octets()[3]),
        IpAddr::V6(_) => false,
    }
}

// ---------------------------------------------------------------------------------------
// The lab.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Kindling's proxy DHCP next to dnsmasq handing out the addresses.
    Proxy,
    /// Kindling as the only DHCP server; dnsmasq serves TFTP only.
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Boot {
    /// EDK2's defaults: PXEv4 is the first boot option (IPv6 PXE off, so that a failed v4
    /// attempt does not wait a minute for DHCPv6 before HTTP Boot).
    Pxe,
    /// PXE off through fw_cfg: HTTPv4 is the first boot option.
    Http,
}

struct Lab {
    // Dropped in this order: the VM first, the namespace and its directory last.
    qemu: Proc,
    http: BootHttp,
    dnsmasq: Dnsmasq,
    kindling: Kindling,
    ns: Netns,
    tmp: TempDir,
    tftp_root: PathBuf,
    started: Instant,
}

/// Everything a run left behind.
struct Run {
    events: Vec<serde_json::Value>,
    serial: Vec<String>,
    dnsmasq: Vec<String>,
    kindling_log: Vec<String>,
    http: Vec<(SocketAddr, String)>,
    tftp_root: PathBuf,
    took: Duration,
}

fn start(mode: Mode, boot: Boot) -> Lab {
    let started = Instant::now();
    let tmp = kindling_testkit::tempdir("dhcp-qemu-arm64");
    let tftp_root = tmp.path().join("tftp");
    std::fs::create_dir_all(&tftp_root).unwrap();
    std::fs::copy(ipxe_arm64().expect("arm64 iPXE"), tftp_root.join(BINARY)).unwrap();
    let ns = Netns::new("qa");
    ns.vm_bridge();
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "br0"]);
    let tftp = format!("enable-tftp\ntftp-root={}\n", tftp_root.display());
    // Everything else is Kindling's default: script_url and http_boot_url on port 8080.
    let (kindling, dnsmasq) = match mode {
        Mode::Proxy => {
            let cfg =
                format!("enabled = true\ninterfaces = [\"br0\"]\narm64_binary = \"{BINARY}\"\n");
            let kindling = Kindling::start(&ns, &tmp, &cfg).expect("kindling starts");
            // The site's ordinary DHCP server (addresses only, no boot options) and TFTP.
            let conf = format!("dhcp-range=10.99.0.100,10.99.0.150,255.255.255.0\nno-ping\n{tftp}");
            (kindling, Dnsmasq::start(&ns, &tmp, "br0", &conf))
        }
        Mode::Full => {
            let cfg = format!(
                "enabled = true
interfaces = [\"br0\"]
mode = \"full\"
lease_file = \"{}\"
ping_check = false
arm64_binary = \"{BINARY}\"

[[dhcp.subnets]]
network = \"10.99.0.0/24\"
pools = [\"10.99.0.100-10.99.0.150\"]
router = \"10.99.0.1\"
lease_secs = 600
",
                tmp.path().join("kindling.leases").display()
            );
            let kindling = Kindling::start(&ns, &tmp, &cfg).expect("kindling starts");
            // TFTP only: --port=0 (no DNS) and no dhcp-range (no DHCP).
            (kindling, Dnsmasq::start(&ns, &tmp, "br0", &tftp))
        }
    };
    let script = format!(
        "#!ipxe\necho {MARKER} ip=${{ip}} mac=${{mac}} buildarch=${{buildarch}} \
         platform=${{platform}}\nsleep 3600\n"
    );
    let http = BootHttp::start(
        &ns,
        SocketAddrV4::new(SRV_IP, 8080),
        script,
        Some(tftp_root.clone()),
    );
    let vars = tmp.path().join("AAVMF_VARS.fd");
    std::fs::copy(AAVMF_VARS, &vars).unwrap();
    let mut q = ns.cmd("timeout");
    q.args([
        "240",
        "qemu-system-aarch64",
        "-machine",
        "virt,accel=tcg",
        "-cpu",
        "cortex-a57",
        "-m",
        "512",
        "-nographic",
        "-no-reboot",
    ]);
    q.arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,readonly=on,file={AAVMF_CODE}"
        ))
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,file={}", vars.display()));
    q.args(["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"]);
    // romfile= (empty): no iPXE option ROM, so EDK2's own PxeBcDxe / HttpBootDxe boot.
    q.args([
        "-device",
        &format!("virtio-net-pci,netdev=n0,romfile=,mac={VM_MAC}"),
    ]);
    let v4_pxe = if boot == Boot::Pxe { "y" } else { "n" };
    q.args([
        "-fw_cfg",
        &format!("name=opt/org.tianocore/IPv4PXESupport,string={v4_pxe}"),
        "-fw_cfg",
        "name=opt/org.tianocore/IPv6PXESupport,string=n",
    ]);
    let qemu = Proc::spawn(q);
    Lab {
        qemu,
        http,
        dnsmasq,
        kindling,
        ns,
        tmp,
        tftp_root,
        started,
    }
}

impl Lab {
    /// Watches until the script's marker is on the serial console (or QEMU exited, or the
    /// deadline), then stops everything and gathers what happened.
    fn run(self) -> Run {
        let Lab {
            mut qemu,
            http,
            dnsmasq,
            kindling,
            ns,
            tmp,
            tftp_root,
            started,
        } = self;
        let deadline = Instant::now() + BOOT_DEADLINE;
        let (mut events, mut dns, mut klog) = (vec![], vec![], vec![]);
        let mut serial = qemu.watch(deadline, |serial| {
            events.extend(kindling.events());
            klog.extend(kindling.proc.err_lines.try_iter());
            dns.extend(dnsmasq.proc.seen_lines());
            serial.iter().any(|l| l.contains(MARKER))
        });
        let took = started.elapsed();
        qemu.terminate();
        serial.extend(qemu.seen_lines());
        events.extend(kindling.events());
        klog.extend(kindling.proc.err_lines.try_iter());
        let _ = kindling.stop();
        dns.extend(dnsmasq.proc.seen_lines());
        drop(dnsmasq);
        let run = Run {
            events,
            // With the terminal's escape character visible, for reading.
            serial: serial.iter().map(|l| l.replace('\u{1b}', "^[")).collect(),
            dnsmasq: dns,
            kindling_log: klog,
            http: http.requests(),
            tftp_root,
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
        for e in self.events.iter().filter(|e| e["mac"] == VM_MAC) {
            eprintln!("  event {e}");
        }
        eprintln!("--- HTTP requests: {:?}", self.http);
        let tftp: Vec<_> = self
            .dnsmasq
            .iter()
            .filter(|l| l.contains("dnsmasq-tftp"))
            .collect();
        eprintln!("--- dnsmasq TFTP: {tftp:#?}");
        let serial: Vec<String> = self
            .serial
            .iter()
            .filter(|l| {
                [
                    "PXE", "HTTP", "NBP", "URI", "BdsDxe", "iPXE 1", "net0", MARKER,
                ]
                .iter()
                .any(|k| l.contains(k))
            })
            .map(|l| l.chars().take(200).collect())
            .collect();
        eprintln!("--- serial (boot lines): {serial:#?}");
    }

    /// Everything, for a failed assertion.
    fn dump(&self) -> String {
        format!(
            "events {:#?}\nhttp {:#?}\nserial {:#?}\ndnsmasq {:#?}\nkindling log {:#?}",
            self.events, self.http, self.serial, self.dnsmasq, self.kindling_log
        )
    }

    fn answered(&self) -> Vec<&serde_json::Value> {
        self.events
            .iter()
            .filter(|e| e["event"] == "answered" && e["mac"] == VM_MAC)
            .collect()
    }

    /// Whether Kindling answered the VM's `firmware` of `arch` on `port` with `file`.
    fn answered_with(&self, firmware: &str, arch: u64, port: u16, file: &str) -> bool {
        self.answered().iter().any(|e| {
            e["firmware"] == firmware && e["arch"] == arch && e["port"] == port && e["file"] == file
        })
    }

    /// The architectures Kindling selected from the VM's option 93, sorted, once each.
    fn arches(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .events
            .iter()
            .filter(|e| e["event"] == "seen" && e["mac"] == VM_MAC)
            .filter_map(|e| e["arch"].as_u64())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The addresses dnsmasq sent `name` (in the TFTP root) to over TFTP.
    fn tftp_sent(&self, name: &str) -> Vec<IpAddr> {
        let needle = format!("sent {} to ", self.tftp_root.join(name).display());
        self.dnsmasq
            .iter()
            .filter_map(|l| l.split_once(&needle))
            .filter_map(|(_, ip)| ip.trim().parse().ok())
            .collect()
    }

    /// The leased addresses that asked `GET path`.
    fn http_got(&self, path: &str) -> Vec<IpAddr> {
        let line = format!("GET {path} HTTP/1.1");
        self.http
            .iter()
            .filter(|(peer, l)| *l == line && in_pool(peer.ip()))
            .map(|(peer, _)| peer.ip())
            .collect()
    }

    /// iPXE (arm64) asked Kindling again, got the script URL, fetched the script from `ip`
    /// and ran it.
    fn check_ipxe_ran_the_script(&self, ip: IpAddr) {
        assert!(
            self.answered_with("ipxe", 11, 67, BOOT_URL),
            "iPXE did not get the script URL\n{}",
            self.dump()
        );
        assert!(
            self.http_got("/boot.ipxe").contains(&ip),
            "no GET /boot.ipxe from {ip}\n{}",
            self.dump()
        );
        let marker = self
            .serial
            .iter()
            .find(|l| l.contains(MARKER))
            .unwrap_or_else(|| {
                panic!("the script's marker is not on the console\n{}", self.dump())
            });
        assert!(
            marker.contains(&format!(
                "ip={ip} mac={VM_MAC} buildarch=arm64 platform=efi"
            )),
            "{marker}"
        );
    }
}

fn arm64_uefi_pxe(test: &str, mode: Mode) {
    if !can_boot(test) {
        return;
    }
    let run = start(mode, Boot::Pxe).run();
    // 1. EDK2 and then iPXE announced arm64 UEFI (arch 11) and nothing else.
    assert_eq!(run.arches(), [11], "{}", run.dump());
    // 2. EDK2's DISCOVER on 67: an offer without file (the proxy offer, or the lease in full
    //    mode); its boot-server REQUEST on 4011: the ACK names the arm64 binary.
    assert!(run.answered_with("uefi_pxe", 11, 67, ""), "{}", run.dump());
    assert!(
        run.answered_with("uefi_pxe", 11, 4011, BINARY),
        "{}",
        run.dump()
    );
    // 3. The firmware fetched it over TFTP, from its leased address.
    let sent = run.tftp_sent(BINARY);
    let Some(&ip) = sent.iter().find(|ip| in_pool(**ip)) else {
        panic!("EDK2 did not download {BINARY}: {:?}", run.dnsmasq);
    };
    assert!(
        run.serial
            .iter()
            .any(|l| l.contains("NBP filename is ipxe-arm64.efi")),
        "{}",
        run.dump()
    );
    assert!(run.http_got(&format!("/tftp/{BINARY}")).is_empty());
    // 4. It ran: iPXE's DHCP, the script over HTTP, its marker.
    run.check_ipxe_ran_the_script(ip);
}

fn arm64_uefi_http_boot(test: &str, mode: Mode) {
    if !can_boot(test) {
        return;
    }
    let run = start(mode, Boot::Http).run();
    // 1. EDK2's HTTP Boot announced arm64 UEFI HTTP (arch 19), iPXE then arm64 UEFI (11).
    assert_eq!(run.arches(), [11, 19], "{}", run.dump());
    // 2. Kindling answered the firmware with the HTTP Boot URL of the arm64 binary; HTTP
    //    Boot never asks 4011.
    assert!(
        run.answered_with("uefi_http", 19, 67, HTTP_BOOT_URL),
        "{}",
        run.dump()
    );
    assert!(
        run.answered().iter().all(|e| e["port"] == 67),
        "{}",
        run.dump()
    );
    // 3. The firmware fetched it over HTTP, from its leased address, and not over TFTP.
    let path = HTTP_BOOT_URL.trim_start_matches("http://10.99.0.1:8080");
    let Some(&ip) = run.http_got(path).first() else {
        panic!("no GET {path}\n{}", run.dump());
    };
    assert!(run.tftp_sent(BINARY).is_empty(), "{:?}", run.dnsmasq);
    assert!(
        run.serial
            .iter()
            .any(|l| l.contains(&format!("URI: {HTTP_BOOT_URL}"))),
        "{}",
        run.dump()
    );
    // 4. It ran: iPXE's DHCP, the script over HTTP, its marker.
    run.check_ipxe_ran_the_script(ip);
}

#[test]
fn arm64_uefi_pxe_proxy_mode_boots_arm64_ipxe_over_tftp() {
    arm64_uefi_pxe(
        "arm64_uefi_pxe_proxy_mode_boots_arm64_ipxe_over_tftp",
        Mode::Proxy,
    );
}

#[test]
fn arm64_uefi_pxe_full_mode_boots_arm64_ipxe_over_tftp() {
    arm64_uefi_pxe(
        "arm64_uefi_pxe_full_mode_boots_arm64_ipxe_over_tftp",
        Mode::Full,
    );
}

#[test]
fn arm64_uefi_http_boot_proxy_mode_boots_arm64_ipxe_over_http() {
    arm64_uefi_http_boot(
        "arm64_uefi_http_boot_proxy_mode_boots_arm64_ipxe_over_http",
        Mode::Proxy,
    );
}

#[test]
fn arm64_uefi_http_boot_full_mode_boots_arm64_ipxe_over_http() {
    arm64_uefi_http_boot(
        "arm64_uefi_http_boot_full_mode_boots_arm64_ipxe_over_http",
        Mode::Full,
    );
}
