use kindling_dhcp::config::{DEFAULT_SCRIPT_URL, TargetKind};

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
    ];
    for i in inputs {
        let o = tr(i);
        parsed(&o);
    }
}
