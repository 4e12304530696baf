//! Secure Boot routing: which clients get `secureboot/shimx64.efi` (sans-I/O, no sockets).

use super::*;
use crate::SECURE_BOOT_FILE;

/// The boot file of the 4011 ACK a UEFI PXE client with `arch` gets under `extra`.
fn ack_file(extra: &str, p: &Pkt) -> String {
    reply(&run(&cfg(extra), ListenPort::Pxe, &p.to_4011(None))).file
}

#[test]
fn default_routes_every_x64_uefi_pxe_client_to_the_shim() {
    for a in [7, 9] {
        let p = Pkt::uefi(a);
        assert_eq!(ack_file("", &p), "snponly.efi", "off by default");
        let c = cfg("");
        assert!(!c.secure_boot_default);
        let mut raw: DhcpConfig =
            toml::from_str("enabled = true\ninterfaces = [\"eth0\"]\n").unwrap();
        raw.secure_boot_default = true;
        let c = raw.validate().unwrap();
        let g = reply(&run(&c, ListenPort::Pxe, &p.to_4011(None)));
        assert_eq!(g.file, SECURE_BOOT_FILE);
        assert_eq!(g.file, "secureboot/shimx64.efi", "the directory matters");
        assert_eq!(sname(&g), "192.168.77.1", "next-server: Kindling");
        // Port 67 is unchanged: no file, siaddr set, the firmware asks 4011.
        let o = reply(&run(&c, ListenPort::Dhcp, &p));
        assert_eq!(o.file, "");
    }
}

fn sb_default() -> CheckedConfig {
    let mut raw: DhcpConfig = toml::from_str(
        "enabled = true\ninterfaces = [\"eth0\"]\n\
         [[rules]]\nname = \"no-sb\"\nmac = \"02:00:00:00:00:01\"\nsecure_boot = false\n",
    )
    .unwrap();
    raw.secure_boot_default = true;
    raw.validate().unwrap()
}

#[test]
fn ipxe_bios_http_boot_and_arm64_are_never_sent_the_shim() {
    let c = sb_default();
    // iPXE (user class) gets the script URL as always.
    let g = reply(&run(&c, ListenPort::Dhcp, &Pkt::uefi(7).ipxe()));
    assert_eq!(g.file, "http://192.168.77.1:8080/boot.ipxe");
    // BIOS gets undionly.kpxe.
    let g = reply(&run(&c, ListenPort::Dhcp, &Pkt::bios()));
    assert_eq!(g.file, "undionly.kpxe");
    // UEFI HTTP Boot keeps its URL (Debian's signed GRUB has no http: docs/secure-boot.md).
    let g = reply(&run(&c, ListenPort::Dhcp, &Pkt::http(16)));
    assert_eq!(g.file, "http://192.168.77.1:8080/tftp/ipxe.efi");
    // arm64 UEFI PXE gets its own binary, never the x86-64 shim.
    let mut raw: DhcpConfig = toml::from_str(
        "enabled = true\ninterfaces = [\"eth0\"]\narm64_binary = \"ipxe-arm64.efi\"\n",
    )
    .unwrap();
    raw.secure_boot_default = true;
    let c = raw.validate().unwrap();
    let g = reply(&run(&c, ListenPort::Pxe, &Pkt::uefi(11).to_4011(None)));
    assert_eq!(g.file, "ipxe-arm64.efi");
}

#[test]
fn a_rule_routes_one_mac_or_exempts_it() {
    let rule = "[[rules]]\nname = \"sb\"\nmac = \"02:aa:*:*:*:*\"\nsecure_boot = true\n";
    let mut p = Pkt::uefi(7);
    p.mac = [2, 0xaa, 0, 1, 2, 3];
    let o = run(&cfg(rule), ListenPort::Pxe, &p.to_4011(None));
    let Decision::Reply(r) = &o.decision else {
        panic!("{:?}", o.decision)
    };
    assert_eq!(r.file, SECURE_BOOT_FILE);
    assert_eq!(r.rule.as_deref(), Some("sb"));
    // Another MAC: no rule, default off.
    assert_eq!(ack_file(rule, &Pkt::uefi(7)), "snponly.efi");
    // With default on, `secure_boot = false` exempts its MAC only.
    let c = sb_default();
    let mut exempt = Pkt::uefi(7);
    exempt.mac = [2, 0, 0, 0, 0, 1];
    let g = reply(&run(&c, ListenPort::Pxe, &exempt.to_4011(None)));
    assert_eq!(g.file, "snponly.efi");
    let g = reply(&run(&c, ListenPort::Pxe, &Pkt::uefi(9).to_4011(None)));
    assert_eq!(g.file, SECURE_BOOT_FILE);
    // A rule matching without saying anything about Secure Boot keeps the default.
    let mut raw: DhcpConfig = toml::from_str(
        "enabled = true\ninterfaces = [\"eth0\"]\n[[rules]]\nname = \"any\"\narch = 7\n",
    )
    .unwrap();
    raw.secure_boot_default = true;
    let c = raw.validate().unwrap();
    let g = reply(&run(&c, ListenPort::Pxe, &Pkt::uefi(7).to_4011(None)));
    assert_eq!(g.file, SECURE_BOOT_FILE);
}

#[test]
fn secure_boot_with_a_target_that_boots_nothing_is_refused() {
    for t in ["ignore", "local_boot"] {
        let text = format!(
            "enabled = true\ninterfaces = [\"eth0\"]\n[[rules]]\ntarget = \"{t}\"\nsecure_boot = true\n"
        );
        let err = toml::from_str::<DhcpConfig>(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("dhcp.rules[0].secure_boot"), "{err}");
    }
    // `secure_boot = false` with them is harmless.
    toml::from_str::<DhcpConfig>(
        "enabled = true\ninterfaces = [\"eth0\"]\n[[rules]]\ntarget = \"ignore\"\nsecure_boot = false\n",
    )
    .unwrap()
    .validate()
    .unwrap();
    // `secure_boot_default` is no `[dhcp]` key.
    assert!(toml::from_str::<DhcpConfig>("secure_boot_default = true").is_err());
}

#[test]
fn full_mode_gives_the_shim_on_4011_and_the_address_on_67() {
    use crate::full::decide::decide_full;
    use crate::full::leases::LeaseTable;
    let mut raw: DhcpConfig = toml::from_str(
        "enabled = true\ninterfaces = [\"eth0\"]\nmode = \"full\"\nlease_file = \"/nonexistent\"\n\
         [[subnets]]\nnetwork = \"192.168.77.0/24\"\npools = [\"192.168.77.100-192.168.77.110\"]\n",
    )
    .unwrap();
    raw.secure_boot_default = true;
    let c = raw.validate().unwrap();
    let full = c.full.clone().unwrap();
    let mut t = LeaseTable::new(&crate::full::pool_specs(&full, &[SERVER])).unwrap();
    let p = Pkt::uefi(7);
    let ctx = ctx_for("eth0", ListenPort::Dhcp, &p);
    let o = decide_full(&c, &full, &mut t, &ctx, &p.bytes(), 1_000);
    let Decision::Reply(r) = &o.decision else {
        panic!("{:?}", o.decision)
    };
    assert!(r.lease.is_some(), "an address");
    let msg = v4::Message::decode(&mut Decoder::new(&r.packet)).unwrap();
    assert_eq!(msg.siaddr(), SERVER, "GRUB takes its TFTP server from here");
    // The 4011 ACK names the shim.
    let g = reply(&run(&c, ListenPort::Pxe, &p.to_4011(None)));
    assert_eq!(g.file, SECURE_BOOT_FILE);
}

/// The 4011 ACK's file with the machine's group saying `group`.
fn ack_file_with_group(c: &CheckedConfig, p: &Pkt, group: Option<bool>) -> String {
    let req = p.to_4011(None);
    let ctx = Context {
        secure_boot: group,
        ..ctx_for("eth0", ListenPort::Pxe, &req)
    };
    reply(&decide_pkt(c, &ctx, &req)).file
}

#[test]
fn the_machines_group_wins_over_rules_and_the_default() {
    let p = Pkt::uefi(7);
    // Default off, no rule: the group alone routes it.
    let off = cfg("");
    assert_eq!(ack_file_with_group(&off, &p, None), "snponly.efi");
    assert_eq!(ack_file_with_group(&off, &p, Some(true)), SECURE_BOOT_FILE);
    assert_eq!(ack_file_with_group(&off, &p, Some(false)), "snponly.efi");
    // A rule exempting the MAC and the default on: the group still decides.
    let mut q = Pkt::uefi(7);
    q.mac = [2, 0, 0, 0, 0, 1];
    let c = sb_default();
    assert_eq!(ack_file_with_group(&c, &q, None), "snponly.efi", "the rule");
    assert_eq!(ack_file_with_group(&c, &q, Some(true)), SECURE_BOOT_FILE);
    assert_eq!(
        ack_file_with_group(&c, &p, None),
        SECURE_BOOT_FILE,
        "the default"
    );
    assert_eq!(ack_file_with_group(&c, &p, Some(false)), "snponly.efi");
    // Never for what cannot run the x86-64 shim, whatever the group says.
    let ipxe = Pkt::uefi(7).ipxe();
    let ctx = Context {
        secure_boot: Some(true),
        ..ctx_for("eth0", ListenPort::Dhcp, &ipxe)
    };
    let g = reply(&decide_pkt(&off, &ctx, &ipxe));
    assert_eq!(g.file, "http://192.168.77.1:8080/boot.ipxe");
}
