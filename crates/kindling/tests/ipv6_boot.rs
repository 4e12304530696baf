//! Booting over IPv6 only, through `kindling serve` alone: OVMF (x86-64 UEFI, TCG) on a
//! bridge in a network namespace the test creates, with no IPv4 DHCP server at all.
//!
//! * **UEFI HTTP Boot over IPv6**: EDK2's PXE options are switched off through fw_cfg, so its
//!   boot options are HTTPv4 (fails: no DHCPv4 on the link), then HTTPv6. Kindling's DHCPv6
//!   answers the `HTTPClient` SOLICIT with an address in `fd00:99::/64` and the boot file URL
//!   `http://[fd00:99::1]:8080/tftp/snponly.efi`; the firmware fetches it (HEAD, GET) from
//!   Kindling's HTTP listener on `[::]:8080`.
//! * **UEFI PXE over IPv6**: IPv4 PXE off, IPv6 PXE on: the first boot option is PXEv6; the
//!   DHCPv6 answer has `tftp://[fd00:99::1]/snponly.efi`, fetched from Kindling's TFTP
//!   server on `[::]:69`.
//!
//! Then iPXE (Debian trixie's `snponly.efi`: bookworm's 2019 build has no IPv6) configures
//! IPv6 from the router advertisement (radvd plays the site's router: M flag set, prefix
//! on-link, not a default router), asks DHCPv6 (user class iPXE) and gets Kindling's
//! `http://[fd00:99::1]:8080/boot.ipxe`, which chains `/ipxe?mac=...`; the machine's profile
//! names `/assets/k` as its kernel, and that "kernel" is an iPXE script printing a marker with
//! the address iPXE got from DHCPv6 (`${net0.dhcpv6/ip6}`), so the serial console shows that every step ran, over IPv6 only.
//! The machine's timeline in the admin API has the DHCPv6 exchanges (firmware and iPXE),
//! the boot script and the kernel download; `/metrics` the DHCPv6 counters.
//!
//! Needs root, qemu-system-x86_64, OVMF, radvd and an iPXE with IPv6 (`KINDLING_IPV6_IPXE`,
//! or `~/.cache/kindling/snponly-ipv6.efi`, which scripts/install-deps extracts from
//! trixie's `ipxe` package); skipped with a message otherwise. About 70 s per boot.

mod common;

use common::netns::{Netns, Proc, admin_get, can_run, have, serve_in};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const VM_MAC: &str = "52:54:00:12:34:66";
const SERVER: &str = "fd00:99::1";
const MARKER: &str = "KINDLING-IPV6-OK";
/// For one boot (TCG, possibly under `stress-ng --cpu 2`).
const BOOT_DEADLINE: Duration = Duration::from_secs(240);

/// An iPXE for x86-64 UEFI that has IPv6 (Debian 13's `snponly.efi`, which
/// scripts/install-deps extracts into the cache).
fn ipxe_v6() -> Option<PathBuf> {
    kindling_testkit::cached_file("KINDLING_IPV6_IPXE", "snponly-ipv6.efi")
}

fn can_boot(test: &str) -> bool {
    if !can_run(test) {
        return false;
    }
    let mut missing: Vec<String> = ["qemu-system-x86_64", "radvd"]
        .into_iter()
        .filter(|c| !have(c))
        .map(String::from)
        .collect();
    missing.extend(
        [OVMF_CODE, OVMF_VARS, "/dev/net/tun"]
            .into_iter()
            .filter(|f| !Path::new(f).exists())
            .map(String::from),
    );
    if ipxe_v6().is_none() {
        missing.push("~/.cache/kindling/snponly-ipv6.efi".into());
    }
    if !missing.is_empty() {
        eprintln!(
            "SKIP {test}: missing {missing:?} (apt-get install qemu-system-x86 ovmf radvd; \
             scripts/install-deps extracts trixie's IPv6 iPXE)"
        );
        return false;
    }
    true
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Boot {
    Http,
    Pxe,
}

/// The data directory: one profile whose "kernel" is an iPXE script printing the marker.
fn write_data(work: &Path) {
    for d in [
        "data/groups",
        "data/profiles",
        "data/assets",
        "state",
        "ipxe",
    ] {
        std::fs::create_dir_all(work.join(d)).unwrap();
    }
    std::fs::write(
        work.join("data/profiles/v6.json"),
        r#"{"id":"v6","boot":{"kernel":"/assets/k","initrd":["/assets/i"],"args":["console=ttyS0"]}}"#,
    )
    .unwrap();
    std::fs::write(
        work.join("data/groups/v6.json"),
        format!(r#"{{"id":"v6","profile":"v6","selector":{{"mac":"{VM_MAC}"}}}}"#),
    )
    .unwrap();
    std::fs::write(
        work.join("data/assets/k"),
        format!("#!ipxe\necho {MARKER} ip6=${{net0.dhcpv6/ip6}} mac=${{mac}}\nsleep 3600\n"),
    )
    .unwrap();
    std::fs::write(work.join("data/assets/i"), vec![0x5a; 4096]).unwrap();
    std::fs::copy(ipxe_v6().unwrap(), work.join("ipxe/snponly.efi")).unwrap();
}

fn start_kindling(ns: &Netns, work: &Path) -> Proc {
    let config = format!(
        "[http]\nlisten = \"[::]:8080\"\n\
         [tftp]\nenabled = true\nlisten = \"[::]:69\"\nipxe_dir = \"{}\"\n\
         [dhcp]\nenabled = false\ninterfaces = [\"br0\"]\nhttp_boot_binary = \"snponly.efi\"\n\
         [dhcp.v6]\nenabled = true\nprefix = \"fd00:99::/64\"\n",
        work.join("ipxe").display()
    );
    let extra = ["--admin-listen", "127.0.0.1:8082"];
    serve_in(ns, work, &config, &extra, &work.join("kindling.log"))
}

/// What one boot left behind.
struct Run {
    serial: Vec<String>,
    log: String,
    timeline: String,
    metrics: String,
    took: Duration,
}

fn boot(tag: &str, how: Boot) -> Run {
    let started = Instant::now();
    let work = kindling_testkit::tempdir(tag);
    let work = work.path();
    write_data(work);
    let ns = Netns::new("v6");
    // No duplicate address detection: nothing else is on this bridge, and a tentative address
    // would only delay the server's first answers.
    for k in ["all", "default"] {
        ns.exec(&["sysctl", "-qw", &format!("net.ipv6.conf.{k}.accept_dad=0")]);
    }
    ns.vm_bridge();
    ns.ip(&["link", "set", "br0", "address", "02:00:00:00:99:01"]);
    ns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{SERVER}/64"),
        "dev",
        "br0",
        "nodad",
    ]);
    // The site's router: advertises the prefix as on-link and tells hosts to use DHCPv6
    // (M and O flags); not a default router (lifetime 0), no SLAAC (A off).
    let radvd_conf = work.join("radvd.conf");
    std::fs::write(
        &radvd_conf,
        "interface br0 {\n  AdvSendAdvert on;\n  AdvManagedFlag on;\n  AdvOtherConfigFlag on;\n  \
         MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 10;\n  AdvDefaultLifetime 0;\n  \
         prefix fd00:99::/64 { AdvOnLink on; AdvAutonomous off; };\n};\n",
    )
    .unwrap();
    let mut radvd = ns.cmd("radvd");
    radvd
        .args(["-n", "-m", "stderr", "-C"])
        .arg(&radvd_conf)
        .arg("-p")
        .arg(work.join("radvd.pid"));
    let radvd = Proc::spawn(radvd);

    let mut kindling = start_kindling(&ns, work);
    let ready = Instant::now() + Duration::from_secs(60);
    while ns.run(|| admin_get("/readyz")).map(|r| r.0) != Ok(200) {
        if let Ok(Some(st)) = kindling.child.try_wait() {
            panic!(
                "kindling exited with {st}: {}",
                std::fs::read_to_string(work.join("kindling.log")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < ready, "kindling not ready");
        std::thread::sleep(Duration::from_millis(100));
    }

    let vars = work.join("OVMF_VARS.fd");
    std::fs::copy(OVMF_VARS, &vars).unwrap();
    let mut q = ns.cmd("timeout");
    q.args(["300", "qemu-system-x86_64"])
        .args([
            "-machine",
            "q35,accel=tcg",
            "-m",
            "512",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"))
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,file={}", vars.display()))
        .args(["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"])
        // romfile= (empty): no iPXE option ROM, so EDK2's own HttpBootDxe / PxeBcDxe boot.
        .args([
            "-device",
            &format!("virtio-net-pci,netdev=n0,romfile=,mac={VM_MAC}"),
        ])
        .args([
            "-fw_cfg",
            "name=opt/org.tianocore/IPv4PXESupport,string=n",
            "-fw_cfg",
            &format!(
                "name=opt/org.tianocore/IPv6PXESupport,string={}",
                if how == Boot::Pxe { "y" } else { "n" }
            ),
        ]);
    let mut qemu = Proc::spawn(q);
    let deadline = Instant::now() + BOOT_DEADLINE;
    let mut serial = qemu.watch(deadline, |serial| serial.iter().any(|l| l.contains(MARKER)));
    let took = started.elapsed();
    qemu.terminate();
    serial.extend(qemu.seen_lines());
    let timeline = ns
        .run(|| admin_get(&format!("/api/v1/machines/{VM_MAC}")))
        .map(|r| r.1)
        .unwrap_or_else(|e| e);
    let metrics = ns
        .run(|| admin_get("/metrics"))
        .map(|r| r.1)
        .unwrap_or_else(|e| e);
    kindling.terminate();
    drop(radvd);
    let run = Run {
        serial: serial.iter().map(|l| l.replace('\u{1b}', "^[")).collect(),
        log: std::fs::read_to_string(work.join("kindling.log")).unwrap_or_default(),
        timeline,
        metrics,
        took,
    };
    drop(ns);
    eprintln!("--- {how:?} boot took {:.1} s", run.took.as_secs_f64());
    for l in run.serial.iter().filter(|l| {
        [
            "HTTP", "PXE", "URI", "iPXE 1", "net0", "http://", "tftp://", MARKER,
        ]
        .iter()
        .any(|k| l.contains(k))
    }) {
        eprintln!("  serial: {}", l.chars().take(200).collect::<String>());
    }
    run
}

impl Run {
    fn dump(&self) -> String {
        format!(
            "serial {:#?}\nkindling log:\n{}\ntimeline {}",
            self.serial, self.log, self.timeline
        )
    }

    /// The marker line's `ip6=` value, an address in the prefix.
    fn marker_ip6(&self) -> Ipv6Addr {
        let line = self
            .serial
            .iter()
            .find(|l| l.contains(MARKER) && l.contains("mac="))
            .unwrap_or_else(|| panic!("no {MARKER} on the console: {}", self.dump()));
        let ip = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("ip6="))
            .and_then(|v| v.parse::<Ipv6Addr>().ok())
            .unwrap_or_else(|| panic!("no ip6= in {line:?}"));
        assert!(
            line.contains(&format!("mac={VM_MAC}")),
            "the marker names the VM's MAC: {line}"
        );
        ip
    }

    /// The machine's timeline (`/api/v1/machines/{mac}`) has an event whose `what` is
    /// `what`.
    fn in_timeline(&self, what: &str) {
        assert!(
            self.timeline.contains(&format!("\"what\": \"{what}\"")),
            "no {what:?} in the timeline: {}",
            self.timeline
        );
    }

    /// Kindling's log has a line with every one of `needles`.
    fn logged(&self, needles: &[&str]) -> bool {
        self.log
            .lines()
            .any(|l| needles.iter().all(|n| l.contains(n)))
    }
}

fn check_common(run: &Run) {
    let ip = run.marker_ip6();
    assert_eq!(
        ip.segments()[..4],
        [0xfd00, 0x99, 0, 0],
        "iPXE's DHCPv6 address is in the prefix: {ip}: {}",
        run.dump()
    );
    // iPXE asked DHCPv6 and got the boot script's URL over IPv6.
    assert!(
        run.logged(&[
            "DHCPv6 answered",
            "firmware=\"ipxe\"",
            "boot_url=http://[fd00:99::1]:8080/boot.ipxe"
        ]),
        "iPXE's DHCPv6 answer: {}",
        run.dump()
    );
    for (path, status) in [
        ("path=\"/boot.ipxe\"", "status=200"),
        ("path=\"/ipxe\"", "status=200"),
        ("path=\"/assets/k\"", "status=200"),
        ("path=\"/assets/i\"", "status=200"),
    ] {
        assert!(
            run.logged(&["request", path, status]),
            "{path} {status}: {}",
            run.dump()
        );
    }
    assert!(
        run.logged(&["path=\"/ipxe\"", "profile=\"v6\"", "mac=52:54:00:12:34:66"]),
        "the group matched the VM: {}",
        run.dump()
    );
    // DHCPv6 in /metrics: the firmware's and iPXE's exchanges.
    let counter = |line: &str| -> u64 {
        run.metrics
            .lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        counter("kindling_dhcpv6_replies_total{message=\"advertise\"}") >= 2
            && counter("kindling_dhcpv6_replies_total{message=\"reply\"}") >= 2
            && counter("kindling_dhcpv6_received_total") >= 4,
        "DHCPv6 counters: {}",
        run.metrics
    );
    // The machine's timeline has iPXE's DHCPv6 exchange, the boot script and its kernel.
    assert!(
        run.timeline.starts_with("HTTP/1.1 200") && run.timeline.contains("\"v6\""),
        "{}",
        run.dump()
    );
    run.in_timeline("REPLY http://[fd00:99::1]:8080/boot.ipxe");
    run.in_timeline("SOLICIT on port 547");
    run.in_timeline("GET /assets/k");
}

#[test]
fn ovmf_uefi_http_boot_over_ipv6_boots_ipxe_to_its_profile() {
    let name = "ovmf_uefi_http_boot_over_ipv6_boots_ipxe_to_its_profile";
    if !can_boot(name) {
        return;
    }
    let run = boot("ipv6-http-boot", Boot::Http);
    let s = run.serial.join("\n");
    assert!(
        s.contains("Start HTTP Boot over IPv6")
            && s.contains("URI: http://[fd00:99::1]:8080/tftp/snponly.efi"),
        "the firmware booted HTTPv6 with Kindling's URL: {}",
        run.dump()
    );
    assert!(
        run.logged(&[
            "DHCPv6 answered",
            "firmware=\"uefi_http\"",
            "boot_url=http://[fd00:99::1]:8080/tftp/snponly.efi"
        ]),
        "{}",
        run.dump()
    );
    assert!(
        run.logged(&["method=GET", "path=\"/tftp/snponly.efi\"", "status=200"]),
        "{}",
        run.dump()
    );
    run.in_timeline("ADVERTISE http://[fd00:99::1]:8080/tftp/snponly.efi");
    check_common(&run);
}

#[test]
fn ovmf_uefi_pxe_over_ipv6_boots_ipxe_over_tftp_to_its_profile() {
    let name = "ovmf_uefi_pxe_over_ipv6_boots_ipxe_over_tftp_to_its_profile";
    if !can_boot(name) {
        return;
    }
    let run = boot("ipv6-pxe-boot", Boot::Pxe);
    let s = run.serial.join("\n");
    assert!(
        s.contains("Start PXE over IPv6"),
        "the firmware booted PXEv6: {}",
        run.dump()
    );
    assert!(
        run.logged(&[
            "DHCPv6 answered",
            "firmware=\"uefi_pxe\"",
            "boot_url=tftp://[fd00:99::1]/snponly.efi"
        ]),
        "{}",
        run.dump()
    );
    assert!(
        run.logged(&[
            "tftp_transfer",
            "peer=[fe80::",
            "file=snponly.efi",
            "tftp transfer finished"
        ]) || run.logged(&[
            "tftp_transfer",
            "peer=[fd00:99::",
            "file=snponly.efi",
            "tftp transfer finished"
        ]),
        "Kindling's TFTP on [::]:69 sent the binary: {}",
        run.dump()
    );
    run.in_timeline("ADVERTISE tftp://[fd00:99::1]/snponly.efi");
    assert!(
        !run.logged(&["path=\"/tftp/snponly.efi\""]),
        "PXE fetched the binary over TFTP, not HTTP: {}",
        run.dump()
    );
    check_common(&run);
}
