//! Secure Boot (issue 21) over real sockets on loopback: `kindling serve` with `[secure_boot]`
//! answers the TFTP names of the signed chain (shim, GRUB, GRUB's bootstrap and per-machine
//! configuration rendered as HTTP `/grub` renders it, `/assets/` confined), refuses to start
//! when shim or GRUB cannot be read, and `kindling check` warns about what the signed chain
//! cannot boot. The signed files are stand-ins here (the QEMU scenario `secure-boot` in
//! tests/e2e uses Debian's real ones).

mod common;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Scratch, Server, request};

const MAC: &str = "52:54:00:12:34:56";

/// A TFTP download (octet, no options, lock-step): the bytes, or the ERROR's code and text.
fn tftp_get(server: SocketAddr, name: &str) -> Result<Vec<u8>, (u16, String)> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rrq = vec![0, 1];
    rrq.extend_from_slice(name.as_bytes());
    rrq.push(0);
    rrq.extend_from_slice(b"octet\0");
    let mut out = Vec::new();
    let mut expect: u16 = 1;
    let mut peer = server;
    let mut last: Vec<u8> = rrq.clone();
    sock.send_to(&rrq, server).unwrap();
    let mut buf = [0u8; 1024];
    let mut tries = 0;
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) => {
                tries += 1;
                assert!(tries < 6, "no answer for {name:?} from {server}: {e}");
                sock.send_to(&last, peer).unwrap();
                continue;
            }
        };
        let p = &buf[..n];
        let op = u16::from_be_bytes([p[0], p[1]]);
        let num = u16::from_be_bytes([p[2], p[3]]);
        match op {
            3 if num == expect => {
                peer = from;
                out.extend_from_slice(&p[4..]);
                last = vec![0, 4, p[2], p[3]];
                sock.send_to(&last, peer).unwrap();
                if n - 4 < 512 {
                    return Ok(out);
                }
                expect = expect.wrapping_add(1);
                tries = 0;
            }
            3 => {}
            5 => {
                let text = String::from_utf8_lossy(&p[4..n - 1]).into_owned();
                return Err((num, text));
            }
            other => panic!("unexpected TFTP opcode {other} for {name:?}"),
        }
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A data directory with one machine whose profile boots `/assets/vmlinuz`.
fn write_data(data: &Path, kernel: &[u8]) {
    for d in [
        "groups", "profiles", "ignition", "generic", "cloud", "assets",
    ] {
        fs::create_dir_all(data.join(d)).unwrap();
    }
    fs::write(
        data.join("groups/sb.json"),
        format!(r#"{{"id":"sb","profile":"sb","selector":{{"mac":"{MAC}"}}}}"#),
    )
    .unwrap();
    fs::write(
        data.join("profiles/sb.json"),
        r#"{"id":"sb","boot":{"kernel":"/assets/vmlinuz","initrd":["/assets/initrd.img"],"args":["console=ttyS0","sb.test=1"]}}"#,
    )
    .unwrap();
    fs::write(data.join("assets/vmlinuz"), kernel).unwrap();
    fs::write(data.join("assets/initrd.img"), b"initrd\n").unwrap();
}

/// A PE32+ header with a certificate table of `cert` bytes (0: unsigned), padded.
/// `kindling --config <cfg> --data-dir <data> check`.
fn check(cfg: &Path, data: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kindling"))
        .arg("--config")
        .arg(cfg)
        .arg("--data-dir")
        .arg(data)
        .arg("check")
        .output()
        .unwrap()
}

fn pe_image(cert: u32) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[..2].copy_from_slice(b"MZ");
    b[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    b[0x40..0x44].copy_from_slice(b"PE\0\0");
    let coff = 0x44;
    b[coff + 16..coff + 18].copy_from_slice(&240u16.to_le_bytes());
    let opt = coff + 20;
    b[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
    b[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
    let e = opt + 112 + 4 * 8;
    b[e + 4..e + 8].copy_from_slice(&cert.to_le_bytes());
    b
}

#[test]
fn tftp_answers_the_signed_chain_from_the_boot_service() {
    let scratch = Scratch::new("secure-boot-tftp");
    let data = scratch.root.join("data");
    // More than one block, and unlike any text.
    let kernel: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    write_data(&data, &kernel);
    let outside = scratch.root.join("outside-secret");
    fs::write(&outside, "OUTSIDE-SECRET\n").unwrap();
    std::os::unix::fs::symlink(&outside, data.join("assets/escape")).unwrap();
    let shim = scratch.root.join("shim.signed");
    let grub = scratch.root.join("grubnet.signed");
    fs::write(&shim, b"stand-in shim\n").unwrap();
    fs::write(&grub, b"stand-in grub\n").unwrap();
    let port = free_udp_port();
    let config = format!(
        "[tftp]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\nipxe_dir = \"\"\n\
         [secure_boot]\ndefault = true\nshim = \"{}\"\ngrub = \"{}\"\n",
        shim.display(),
        grub.display()
    );
    let server = Server::start_with(&data, &scratch.root, &config, &[], |_| {});
    let tftp = SocketAddr::from((Ipv4Addr::LOCALHOST, port));

    assert_eq!(
        tftp_get(tftp, "secureboot/shimx64.efi").unwrap(),
        b"stand-in shim\n"
    );
    assert_eq!(
        tftp_get(tftp, "secureboot/grubx64.efi").unwrap(),
        b"stand-in grub\n"
    );
    // The same files over HTTP /tftp/ (UEFI HTTP Boot's path).
    let r = request(server.addr, "GET", "/tftp/secureboot/shimx64.efi", &[], b"").unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"stand-in shim\n"[..])
    );

    // shim's optional files and GRUB's module lists: a quick "not found".
    for name in [
        "secureboot/revocations_sku.efi",
        "secureboot/revocations_sbat.efi",
        "secureboot/shim_certificate_0.efi",
        "secureboot/mmx64.efi",
        "secureboot/fbx64.efi",
        "/grub/x86_64-efi/command.lst",
        "/grub/x86_64-efi/fs.lst",
        "/grub/grub.cfg-0A637701",
    ] {
        let (code, _) = tftp_get(tftp, name).unwrap_err();
        assert_eq!(code, 1, "{name}");
    }

    // GRUB's bootstrap, then the machine's configuration: what HTTP /grub renders.
    let boot = String::from_utf8(tftp_get(tftp, "/grub/grub.cfg").unwrap()).unwrap();
    assert!(
        boot.contains("configfile \"/grub?mac=${net_default_mac}\""),
        "{boot}"
    );
    let http = request(server.addr, "GET", &format!("/grub?mac={MAC}"), &[], b"").unwrap();
    assert_eq!(http.status, 200);
    let text = String::from_utf8(http.body.clone()).unwrap();
    assert!(
        text.contains("linuxefi \"/assets/vmlinuz\" console=ttyS0 sb.test=1"),
        "{text}"
    );
    assert!(text.contains("initrdefi  \"/assets/initrd.img\""), "{text}");
    for name in [
        format!("/grub?mac={MAC}"),
        format!("grub?mac={MAC}"),
        "/grub/grub.cfg-01-52-54-00-12-34-56".to_string(),
        "secureboot/grub.cfg-01-52-54-00-12-34-56".to_string(),
    ] {
        assert_eq!(tftp_get(tftp, &name).unwrap(), http.body, "{name}");
    }
    // A machine no group selects: not found, with the HTTP 404's reason in the log.
    let (code, _) = tftp_get(tftp, "/grub?mac=52:54:00:00:00:99").unwrap_err();
    assert_eq!(code, 1);
    assert!(
        server.log_has("no group matched labels"),
        "{}",
        server.log_text()
    );

    // Kernel and initrd over TFTP, from the assets directory.
    assert_eq!(tftp_get(tftp, "/assets/vmlinuz").unwrap(), kernel);
    assert_eq!(tftp_get(tftp, "assets/initrd.img").unwrap(), b"initrd\n");
    // Confined: `..` and a symlink out are access violations, nothing of the outside file.
    for name in [
        "/assets/../outside-secret",
        "/assets/escape",
        "/assets/a/../../x",
    ] {
        let (code, msg) = tftp_get(tftp, name).unwrap_err();
        assert_eq!(code, 2, "{name}: {msg}");
    }
    let (code, _) = tftp_get(tftp, "/assets/missing").unwrap_err();
    assert_eq!(code, 1);
    assert!(server.log_has("resolves outside the assets directory"));
    assert!(!server.log_text().contains("OUTSIDE-SECRET"));
}

#[test]
fn unreadable_shim_or_grub_stops_the_start_and_is_reported_by_check() {
    let scratch = Scratch::new("secure-boot-missing");
    let data = scratch.root.join("data");
    write_data(&data, &pe_image(0x100));
    let config = format!(
        "[tftp]\nenabled = true\nlisten = \"127.0.0.1:{}\"\n\
         [secure_boot]\nshim = \"/nonexistent/shimx64.efi.signed\"\n\
         [[dhcp.rules]]\nmac = \"{MAC}\"\nsecure_boot = true\n",
        free_udp_port()
    );
    let err = match Server::try_start_with(&data, &scratch.root, &config, &[], |_| {}) {
        Ok(_) => panic!("started without a shim"),
        Err(e) => e,
    };
    assert!(
        err.contains("[secure_boot] shim /nonexistent/shimx64.efi.signed: cannot be read"),
        "{err}"
    );
    let cfg = scratch.root.join("check.toml");
    fs::write(&cfg, &config).unwrap();
    let out = check(&cfg, &data);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("error [config] [secure_boot] shim"), "{text}");
}

#[test]
fn check_warns_about_kernels_the_signed_chain_cannot_boot() {
    let scratch = Scratch::new("secure-boot-check");
    let data = scratch.root.join("data");
    write_data(&data, &pe_image(0));
    // A second machine, not routed, with the same problems: no warning for it.
    fs::write(
        data.join("groups/other.json"),
        r#"{"id":"other","profile":"other","selector":{"mac":"52:54:00:00:00:02"}}"#,
    )
    .unwrap();
    fs::write(
        data.join("profiles/other.json"),
        r#"{"id":"other","boot":{"kernel":"http://example.invalid/vmlinuz","initrd":[],"args":[]}}"#,
    )
    .unwrap();
    fs::write(
        data.join("profiles/sb.json"),
        r#"{"id":"sb","boot":{"kernel":"/assets/vmlinuz","initrd":["https://example.invalid/initrd.img"],"args":[]}}"#,
    )
    .unwrap();
    let shim = scratch.root.join("shim");
    fs::write(&shim, pe_image(0x100)).unwrap();
    let cfg = scratch.root.join("kindling.toml");
    fs::write(
        &cfg,
        format!(
            "[secure_boot]\nshim = \"{}\"\ngrub = \"{}\"\n[[dhcp.rules]]\nmac = \"{MAC}\"\nsecure_boot = true\n",
            shim.display(),
            shim.display()
        ),
    )
    .unwrap();
    let run = || String::from_utf8_lossy(&check(&cfg, &data).stdout).into_owned();
    let text = run();
    assert!(
        text.contains("profiles/sb.json:1:")
            && text.contains("warning [secure_boot_unsigned_kernel] kernel /assets/vmlinuz is an EFI image without a signature"),
        "{text}"
    );
    assert!(
        text.contains("[secure_boot_http] initrd https://example.invalid/initrd.img"),
        "{text}"
    );
    assert!(text.contains("groups/sb.json"), "{text}");
    assert!(!text.contains("profiles/other.json"), "{text}");
    // A signed kernel: no warning.
    fs::write(data.join("assets/vmlinuz"), pe_image(0x100)).unwrap();
    assert!(!run().contains("secure_boot_unsigned_kernel"));
}

#[test]
fn a_groups_secure_boot_is_checked_and_routes_its_profile() {
    let scratch = Scratch::new("secure-boot-group");
    let data = scratch.root.join("data");
    write_data(&data, &pe_image(0));
    // Routed by its group alone (no rule, no default): its unsigned kernel is reported.
    fs::write(
        data.join("groups/sb.json"),
        format!(r#"{{"id":"sb","profile":"sb","selector":{{"mac":"{MAC}"}},"secure_boot":true}}"#),
    )
    .unwrap();
    // A group that says secure_boot without a MAC: it cannot take effect at DHCP time.
    fs::write(
        data.join("groups/nomac.json"),
        r#"{"id":"nomac","profile":"sb","selector":{"os":"installed"},"secure_boot":true}"#,
    )
    .unwrap();
    let cfg = scratch.root.join("kindling.toml");
    let check_with = |config: &str| {
        fs::write(&cfg, config).unwrap();
        String::from_utf8_lossy(&check(&cfg, &data).stdout).into_owned()
    };
    let shim = scratch.root.join("shim");
    fs::write(&shim, pe_image(0x100)).unwrap();
    let text = check_with(&format!(
        "[secure_boot]\nshim = \"{0}\"\ngrub = \"{0}\"\n",
        shim.display()
    ));
    assert!(
        text.contains("[secure_boot_unsigned_kernel]") && text.contains("groups/sb.json"),
        "{text}"
    );
    assert!(
        text.contains("groups/nomac.json")
            && text.contains("only in a group with a `mac` selector"),
        "{text}"
    );
    // shim missing: the group's setting is reported (the server still starts: nothing in
    // the configuration asks for Secure Boot, and a reply naming the shim is logged).
    let text = check_with("[secure_boot]\nshim = \"/nonexistent/shimx64.efi.signed\"\n");
    assert!(
        text.contains("[secure_boot_group]")
            && text.contains(
                "secure_boot = true, but [secure_boot] shim /nonexistent/shimx64.efi.signed"
            ),
        "{text}"
    );
}
