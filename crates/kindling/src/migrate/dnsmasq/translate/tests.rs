use kindling_dhcp::config::{DEFAULT_SCRIPT_URL, MenuTarget, TargetKind};

use super::model::*;
use super::*;
use crate::migrate::probe::{self, Field};

fn tr(text: &str) -> Output {
    translate(
        text,
        &Options {
            source: "test.conf".into(),
            ..Default::default()
        },
    )
}

fn parsed(o: &Output) -> crate::config::Config {
    let c: crate::config::Config =
        toml::from_str(&o.toml).unwrap_or_else(|e| panic!("{e}\n{}", o.toml));
    c.dhcp
        .validate()
        .unwrap_or_else(|e| panic!("{e}\n{}", o.toml));
    c.tftp.validate().unwrap();
    c
}

const SEED: &str = "except-interface=virbr0
dhcp-range=10.10.254.0,proxy
pxe-service=tag:#ipxe,x86PC,\"PXE chainload to iPXE\",undionly.kpxe
dhcp-userclass=set:ipxe,iPXE
dhcp-mac=set:netboot,02:1a:4a:16:01:9c
tag-if=set:netboot-xyz, tag:ipxe, tag:netboot
pxe-service=tag:netboot-xyz,x86PC,\"iPXE\",http://10.10.254.200:8081/menus/menu.ipxe
pxe-service=tag:ipxe,x86PC,\"iPXE\",http://10.10.254.200:8080/boot.ipxe
enable-tftp
tftp-root=/var/ftpd
log-queries
log-dhcp
";

#[test]
fn the_seed() {
    let o = tr(SEED);
    let c = parsed(&o);
    assert_eq!(c.dhcp.interfaces, vec!["10.10.254.0"]);
    assert_eq!(c.dhcp.exclude_interfaces, vec!["virbr0"]);
    assert_eq!(c.dhcp.bios_binary, "undionly.kpxe");
    assert_eq!(c.dhcp.script_url, DEFAULT_SCRIPT_URL);
    assert_eq!(c.dhcp.rules.len(), 1, "{}", o.toml);
    let r = &c.dhcp.rules[0];
    assert_eq!(r.name.as_deref(), Some("netboot-xyz"));
    assert_eq!(r.mac.as_deref(), Some("02:1a:4a:16:01:9c"));
    assert_eq!(r.url.as_deref(), Some(MENU_URL));
    assert!(c.tftp.enabled);
    assert_eq!(
        c.tftp.root.as_deref(),
        Some(std::path::Path::new("/var/ftpd"))
    );
    assert_eq!(c.log.level, "info,kindling_dhcp=debug");
    assert!(
        o.toml
            .contains("checked on interface eth0, address 10.10.254.200/24"),
        "{}",
        o.toml
    );
    assert!(
        o.toml
            .contains("# dnsmasq line 11: log-queries — not translated: DNS"),
        "{}",
        o.toml
    );
    let listed = probe::listed_differences(&o.toml);
    assert!(
        listed.contains(&(Field::Boot, "bios-ipxe@02-1a-4a-16-01-9c".into())),
        "{}",
        o.toml
    );
    assert!(
        listed.contains(&(Field::Siaddr, "bios".into())),
        "{}",
        o.toml
    );
    assert!(
        !listed
            .iter()
            .any(|(f, l)| *f == Field::Boot && (l == "bios" || l == "bios-ipxe")),
        "{}",
        o.toml
    );
    // Kept netboot.xyz: no boot difference left for that machine.
    let k = translate(
        SEED,
        &Options {
            keep_netboot_xyz: true,
            ..Default::default()
        },
    );
    let listed = probe::listed_differences(&k.toml);
    assert!(
        !listed
            .iter()
            .any(|(f, l)| *f == Field::Boot && l == "bios-ipxe@02-1a-4a-16-01-9c"),
        "{}",
        k.toml
    );
    assert!(k.toml.contains("http://10.10.254.200:8081/menus/menu.ipxe"));
}

#[test]
fn matchbox_recipe_with_uefi() {
    let o = tr("dhcp-range=192.168.1.1,proxy,255.255.255.0
enable-tftp
tftp-root=/var/lib/tftpboot
dhcp-userclass=set:ipxe,iPXE
pxe-service=tag:#ipxe,x86PC,\"PXE chainload to iPXE\",undionly.kpxe
pxe-service=tag:ipxe,x86PC,\"iPXE\",http://matchbox.example.com:8080/boot.ipxe
pxe-service=tag:#ipxe,X86-64_EFI,\"PXE chainload to iPXE UEFI\",ipxe.efi
pxe-service=tag:ipxe,X86-64_EFI,\"iPXE UEFI\",http:///matchbox.example.com:8080/boot.ipxe
");
    let c = parsed(&o);
    assert_eq!(c.dhcp.interfaces, vec!["192.168.1.0/24"]);
    assert_eq!(c.dhcp.efi_binary, "ipxe.efi");
    assert_eq!(
        c.dhcp.script_url,
        "http://matchbox.example.com:8080/boot.ipxe"
    );
    // The typo'd UEFI iPXE URL is a listed difference, not a rule.
    assert!(c.dhcp.rules.is_empty(), "{}", o.toml);
    let listed = probe::listed_differences(&o.toml);
    assert!(
        listed.contains(&(Field::Boot, "uefi-ipxe".into())),
        "{}",
        o.toml
    );
}

#[test]
fn ignore_unknown_machines_and_local_boot() {
    let o = tr("dhcp-range=10.0.0.0,proxy
dhcp-host=52:54:00:aa:bb:01,set:disk
dhcp-host=52:54:00:aa:bb:02
pxe-service=tag:disk,x86PC,\"Boot from local disk\"
pxe-service=tag:!disk,x86PC,\"iPXE\",undionly.kpxe
dhcp-ignore=tag:!known
");
    let c = parsed(&o);
    let targets: Vec<Option<TargetKind>> = c.dhcp.rules.iter().map(|r| r.target).collect();
    assert!(targets.contains(&Some(TargetKind::LocalBoot)), "{}", o.toml);
    assert!(targets.contains(&Some(TargetKind::Ignore)), "{}", o.toml);
    // The catch-all ignore comes last.
    let last = c.dhcp.rules.last().unwrap();
    assert_eq!(
        (last.mac.as_deref(), last.target),
        (None, Some(TargetKind::Ignore)),
        "{}",
        o.toml
    );
}

#[test]
fn hostile_input_never_panics_and_stays_valid() {
    let inputs = [
        "",
        "=\n==\n,,,\n",
        "dhcp-range=",
        "dhcp-range=1.2.3.4",
        "dhcp-range=300.1.1.1,proxy",
        "pxe-service=tag:,x86PC,,",
        "dhcp-boot=tag:x,\"file with space\"\ndhcp-range=10.0.0.0,proxy\npxe-prompt=x",
        "dhcp-boot=http://10.0.0.1/\u{0}\ndhcp-range=10.0.0.0,proxy\npxe-service=x86PC,a,b",
        "interface=virbr0\ndhcp-range=10.0.0.0,proxy\npxe-service=x86PC,\"a\",undionly.kpxe",
        "interface=a-very-long-interface-name\ndhcp-range=10.0.0.0,proxy",
        "tag-if=set:a,tag:a*\ntag-if=set:b,tag:!a\ndhcp-range=10.0.0.0,proxy,255.0.0.0\npxe-service=0,x,y",
        "dhcp-mac=set:m,*:*:*:*:*:*\ndhcp-range=10.0.0.0,proxy\npxe-service=tag:m,x86PC,\"a\",undionly.kpxe",
        &format!(
            "dhcp-range=10.0.0.0,proxy\npxe-service=tag:ipxe,x86PC,\"a\",http://10.0.0.1/{}\ndhcp-userclass=set:ipxe,iPXE",
            "x".repeat(300)
        ),
        "dhcp-pxe-vendor=,,\ndhcp-reply-delay=999999\ndhcp-range=10.0.0.0,proxy\npxe-prompt=\"a\",7",
        "\"unterminated\n\u{feff}port=0\n\u{7}",
        "dhcp-range=10.0.0.0,proxy\npxe-prompt=\"\u{1}\",99999\npxe-service=x86PC,\"a\"\npxe-service=x86PC,\"b\",c d",
        &format!(
            "dhcp-range=10.0.0.0,proxy\npxe-prompt=p\n{}",
            (0..12)
                .map(|i| format!("pxe-service=x86PC,\"{}\",f{i}\n", "m".repeat(40)))
                .collect::<String>()
        ),
    ];
    for i in inputs {
        let o = tr(i);
        parsed(&o);
    }
}

const MENU: &str = "dhcp-range=172.16.0.0,proxy,255.255.0.0
pxe-prompt=\"Press F8 for the boot menu\",5
pxe-service=x86PC,\"Boot from local disk\"
pxe-service=x86PC,\"Install Linux (pxelinux)\",pxelinux
pxe-service=x86PC,\"iPXE\",undionly.kpxe
pxe-service=X86-64_EFI,\"iPXE (UEFI)\",ipxe.efi
";

/// Kindling's and the simulated dnsmasq's port-67 offer to a BIOS PXE ROM: option 43.
fn bios_opt43(text: &str, o: &Output) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use crate::migrate::dnsmasq::{parse, sim::Sim};
    use crate::migrate::probe::{Client, DEFAULT_MAC, DISCOVER, Kind};
    use kindling_dhcp::{Context, Decision, ListenPort, decide};
    let server = Ipv4Addr::new(172, 16, 0, 1);
    let mask = Ipv4Addr::new(255, 255, 0, 0);
    let c = Client {
        kind: Kind::Bios,
        mac: DEFAULT_MAC,
    };
    let conf = parse::parse(text);
    let sim = Sim {
        conf: &conf,
        server,
        mask,
        iface: "eth0".into(),
        force_pxe: false,
    };
    let d = sim.offer(&c).and_then(|r| r.reply.opt43);
    let cfg = parsed(o).dhcp.validate().unwrap();
    let local = [(server, mask)];
    let ctx = Context {
        iface: "eth0",
        server_ip: server,
        port: ListenPort::Dhcp,
        source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        local: &local,
        secure_boot: None,
    };
    let pkt = probe::request_bytes(&c, 7, DISCOVER, Ipv4Addr::UNSPECIFIED, None);
    let Decision::Reply(r) = decide(&cfg, &ctx, &pkt).decision else {
        panic!("no offer to BIOS\n{}", o.toml);
    };
    (d, probe::decode_reply(&r.packet).and_then(|r| r.opt43))
}

#[test]
fn a_menu_with_a_prompt_becomes_pxe_menu_item_by_item() {
    let o = tr(MENU);
    let c = parsed(&o);
    let m = &c.dhcp.pxe_menu;
    assert_eq!(
        (m.prompt.as_str(), m.timeout_secs),
        ("Press F8 for the boot menu", 5)
    );
    let items: Vec<(&str, MenuTarget, Option<&str>)> = m
        .items
        .iter()
        .map(|i| (i.text.as_str(), i.target, i.file.as_deref()))
        .collect();
    assert_eq!(
        items,
        [
            ("Boot from local disk", MenuTarget::LocalBoot, None),
            // dnsmasq appends the layer suffix ".0" to a basename without a dot.
            (
                "Install Linux (pxelinux)",
                MenuTarget::Script,
                Some("pxelinux.0")
            ),
            // bios_binary's own file: a plain script item.
            ("iPXE", MenuTarget::Script, None),
        ]
    );
    assert_eq!(c.dhcp.bios_binary, "undionly.kpxe");
    assert!(c.dhcp.rules.is_empty(), "{}", o.toml);
    assert!(!o.toml.contains("issue 19"), "{}", o.toml);
    assert!(
        o.toml.contains(
            "# dnsmasq line 2: pxe-prompt=\"Press F8 for the boot menu\",5 — -> [dhcp.pxe_menu]"
        ),
        "{}",
        o.toml
    );
    // BIOS firmware boots the first item (local disk) under both: no boot difference.
    let listed = probe::listed_differences(&o.toml);
    assert!(
        !listed.contains(&(Field::Boot, "bios".into())),
        "{}",
        o.toml
    );
    // Byte for byte the option 43 dnsmasq sends (same item numbers, prompt, servers).
    let (d, k) = bios_opt43(MENU, &o);
    assert!(d.is_some());
    assert_eq!(d, k, "{}", o.toml);
}

fn menu_of(text: &str) -> (Output, kindling_dhcp::config::PxeMenuConfig) {
    let o = tr(text);
    let m = parsed(&o).dhcp.pxe_menu;
    (o, m)
}

#[test]
fn prompt_timeouts_as_dnsmasq_reads_them() {
    let with = |prompt: &str| {
        format!(
            "dhcp-range=172.16.0.0,proxy,255.255.0.0\n{prompt}\n\
             pxe-service=x86PC,\"Disk\"\npxe-service=x86PC,\"Net\",undionly.kpxe\n"
        )
    };
    // No timeout: dnsmasq waits for a key (255); the bytes agree.
    let t = with("pxe-prompt=\"Choose\"");
    let (o, m) = menu_of(&t);
    assert_eq!(m.timeout_secs, 255);
    assert!(
        o.toml
            .contains("gives no timeout: dnsmasq waits for a key (255)")
    );
    let (d, k) = bios_opt43(&t, &o);
    assert_eq!(d, k);
    // Not a number: dnsmasq ignores it (255).
    let (_, m) = menu_of(&with("pxe-prompt=\"Choose\",soon"));
    assert_eq!(m.timeout_secs, 255);
    // Over 255: clamped to the longest countdown, and said so (dnsmasq keeps the low byte).
    let (o, m) = menu_of(&with("pxe-prompt=\"Choose\",300"));
    assert_eq!(m.timeout_secs, 254);
    assert!(
        o.toml
            .contains("300 s does not fit the PXE prompt's one byte: clamped to 254")
            && o.toml.contains("dnsmasq itself sends the low byte, 44"),
        "{}",
        o.toml
    );
    // No pxe-prompt but two items: dnsmasq's own prompt, waiting for a key.
    let t = "dhcp-range=172.16.0.0,proxy,255.255.0.0\n\
             pxe-service=x86PC,\"Disk\"\npxe-service=x86PC,\"Net\",undionly.kpxe\n";
    let (o, m) = menu_of(t);
    assert_eq!(
        (m.prompt.as_str(), m.timeout_secs, m.items.len()),
        ("PXE", 255, 2)
    );
    // The same sub-options; dnsmasq puts its own prompt before the boot servers.
    let (d, k) = bios_opt43(t, &o);
    let sorted = |o: Option<Vec<u8>>| {
        let mut v = probe::pxe_subs(&o.unwrap_or_default());
        v.sort();
        v
    };
    assert_eq!(sorted(d), sorted(k));
    // One item with timeout 0: nothing to show, no menu.
    let (o, m) = menu_of(
        "dhcp-range=172.16.0.0,proxy,255.255.0.0\npxe-prompt=\"Booting\",0\n\
         pxe-service=x86PC,\"Net\",undionly.kpxe\n",
    );
    assert!(m.items.is_empty(), "{}", o.toml);
    assert!(
        o.toml
            .contains("pxe-prompt=\"Booting\",0 — nothing to show"),
        "{}",
        o.toml
    );
    // One item with a countdown: a one-item menu.
    let (_, m) = menu_of(
        "dhcp-range=172.16.0.0,proxy,255.255.0.0\npxe-prompt=\"Booting\",3\n\
         pxe-service=x86PC,\"Net\",undionly.kpxe\n",
    );
    assert_eq!((m.timeout_secs, m.items.len()), (3, 1));
}

#[test]
fn menu_lines_that_do_not_map_say_why() {
    let o = tr("dhcp-range=172.16.0.0,proxy,255.255.0.0
dhcp-userclass=set:ipxe,iPXE
dhcp-mac=set:lab,52:54:00:aa:*:*
pxe-prompt=\"Choose\",10
pxe-prompt=tag:lab,\"Lab\",3
pxe-service=tag:!ipxe,x86PC,\"Memtest\",memtest
pxe-service=tag:!ipxe,x86PC,\"Chainload iPXE\",undionly.kpxe
pxe-service=tag:lab,x86PC,\"Lab installer\",lab/pxelinux
pxe-service=x86PC,\"Discover\",3
pxe-service=x86PC,\"Remote\",memtest86+.bin,10.9.9.9
pxe-service=x86PC,\"Local\",0
pxe-service=tag:ipxe,x86PC,\"iPXE\",http://172.16.0.1:8080/boot.ipxe
");
    let c = parsed(&o);
    let files: Vec<(MenuTarget, Option<&str>)> = c
        .dhcp
        .pxe_menu
        .items
        .iter()
        .map(|i| (i.target, i.file.as_deref()))
        .collect();
    assert_eq!(
        files,
        [
            (MenuTarget::Script, Some("memtest.0")),
            (MenuTarget::Script, None),
            (MenuTarget::Script, Some("memtest86+.bin")),
            (MenuTarget::LocalBoot, None),
        ],
        "{}",
        o.toml
    );
    let line = |n: usize| {
        o.toml
            .lines()
            .find(|l| l.starts_with(&format!("# dnsmasq line {n}: ")))
            .unwrap_or_else(|| panic!("line {n}\n{}", o.toml))
    };
    assert!(line(4).contains("-> [dhcp.pxe_menu] prompt, timeout_secs = 10"));
    assert!(line(5).contains("not translated: a prompt for tagged machines"));
    assert!(line(6).contains("-> [dhcp.pxe_menu] item 1 (file \"memtest.0\""));
    assert!(line(8).contains("not translated: an item of dnsmasq's menu for bios@52-54-00-aa"));
    assert!(line(9).contains("not translated: an item of dnsmasq's BIOS menu, left out"));
    assert!(line(9).contains("boot server type 3"));
    assert!(line(10).contains("Kindling serves it itself"));
    assert!(line(11).contains("-> [dhcp.pxe_menu] item 4 (target local_boot)"));
}

#[test]
fn a_menu_kindling_refuses_is_not_translated_and_says_why() {
    let o = tr("dhcp-range=172.16.0.0,proxy,255.255.0.0
pxe-prompt=\"Caf\u{e9}\",5
pxe-service=x86PC,\"Disk\"
pxe-service=x86PC,\"Net\",undionly.kpxe
");
    let c = parsed(&o);
    assert!(c.dhcp.pxe_menu.items.is_empty(), "{}", o.toml);
    assert!(
        o.toml.contains("— not translated: dnsmasq's BIOS menu is not translated: Kindling refuses it (dhcp.pxe_menu.prompt: must be printable ASCII"),
        "{}",
        o.toml
    );
}
