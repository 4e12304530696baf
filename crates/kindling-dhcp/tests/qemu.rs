//! Real firmware against Kindling's proxy DHCP, inside a network namespace: QEMU (TCG) with
//! OVMF's own EDK2 PXE client (NIC without option ROM) and with SeaBIOS + QEMU's iPXE ROM.
//! A dnsmasq in the same namespace plays the site's ordinary DHCP server and the TFTP server.
//! Skipped with a message when not root or when qemu / OVMF / the ipxe package are missing.

mod common;

use std::time::{Duration, Instant};

use common::*;

const BOOT_URL: &str = "http://10.99.0.1:8080/boot.ipxe";

struct Vm {
    lab_ns: Netns,
    tmp: TempDir,
    kindling: Kindling,
    dnsmasq: Dnsmasq,
    qemu: Option<Proc>,
}

fn start(uefi: bool) -> Vm {
    let tmp = kindling_testkit::tempdir("dhcp-qemu");
    let ns = Netns::new("q");
    ns.vm_bridge();
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "br0"]);
    let kindling = Kindling::start(&ns, &tmp, "enabled = true\ninterfaces = [\"br0\"]\n")
        .expect("kindling starts");
    // The site's ordinary DHCP server (addresses only, no boot options) and a TFTP server.
    let dnsmasq = Dnsmasq::start(
        &ns,
        &tmp,
        "br0",
        "dhcp-range=10.99.0.100,10.99.0.150,255.255.255.0\nno-ping\nenable-tftp\ntftp-root=/usr/lib/ipxe\n",
    );
    let mut q = ns.cmd("timeout");
    q.args([
        "180",
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
            "virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:12:34:56",
        ]);
    } else {
        q.args(["-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56"]);
    }
    q.args(["-boot", "n"]);
    let qemu = Some(Proc::spawn(q));
    Vm {
        lab_ns: ns,
        tmp,
        kindling,
        dnsmasq,
        qemu,
    }
}

impl Vm {
    /// Collects Kindling's observer events until iPXE has been answered (or the deadline).
    fn events_until_ipxe(&self, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        let mut all = Vec::new();
        while Instant::now() < deadline {
            all.extend(self.kindling.events());
            if all
                .iter()
                .any(|e| e["event"] == "answered" && e["firmware"] == "ipxe")
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        all
    }
}

#[test]
fn edk2_uefi_pxe_goes_through_4011_and_chains_ipxe() {
    if !can_boot("edk2_uefi_pxe_goes_through_4011_and_chains_ipxe", true) {
        return;
    }
    let mut vm = start(true);
    let events = vm.events_until_ipxe(Duration::from_secs(170));
    if let Some(mut q) = vm.qemu.take() {
        q.terminate();
    }
    let answered: Vec<_> = events.iter().filter(|e| e["event"] == "answered").collect();
    // 1. EDK2's DISCOVER on 67: an offer without file (and without option 43).
    assert!(
        answered
            .iter()
            .any(|e| e["firmware"] == "uefi_pxe" && e["port"] == 67 && e["file"] == ""),
        "{events:#?}"
    );
    // 2. EDK2's boot-server REQUEST on 4011: the ACK names snponly.efi.
    assert!(
        answered.iter().any(|e| e["firmware"] == "uefi_pxe"
            && e["port"] == 4011
            && e["file"] == "snponly.efi"),
        "{events:#?}"
    );
    // 3. The firmware fetched it over TFTP.
    vm.dnsmasq
        .proc
        .wait_for(
            "sent /usr/lib/ipxe/snponly.efi",
            true,
            Duration::from_secs(5),
        )
        .expect("EDK2 downloaded snponly.efi");
    // 4. iPXE (snponly.efi) asked again and got the HTTP script URL: no loop.
    assert!(
        answered
            .iter()
            .any(|e| e["firmware"] == "ipxe" && e["file"] == BOOT_URL),
        "{events:#?}"
    );
    let _ = (&vm.lab_ns, &vm.tmp);
}

#[test]
fn seabios_ipxe_rom_gets_the_script_url() {
    if !can_boot("seabios_ipxe_rom_gets_the_script_url", false) {
        return;
    }
    let mut vm = start(false);
    let events = vm.events_until_ipxe(Duration::from_secs(170));
    // iPXE's own console line (SeaBIOS mirrors it to the serial port under -nographic).
    let mut q = vm.qemu.take().expect("qemu");
    let serial = q.wait_for(
        &format!("Filename: {BOOT_URL}"),
        false,
        Duration::from_secs(60),
    );
    q.terminate();
    let answered: Vec<_> = events.iter().filter(|e| e["event"] == "answered").collect();
    assert!(
        answered.iter().any(|e| e["firmware"] == "ipxe"
            && e["arch"] == 0
            && e["port"] == 67
            && e["file"] == BOOT_URL),
        "{events:#?}"
    );
    assert!(
        !answered.iter().any(|e| e["file"] == "undionly.kpxe"),
        "the iPXE ROM must not be chained to undionly.kpxe: {events:#?}"
    );
    serial.expect("iPXE printed the proxy's filename");
    let _ = (&vm.lab_ns, &vm.tmp);
}
