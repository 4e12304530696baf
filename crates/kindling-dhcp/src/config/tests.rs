//! Unit tests of the `[dhcp]` table: parsing, defaults and validation.

use std::net::Ipv4Addr;

use super::checked::parse_selector;
use super::*;

fn parse(s: &str) -> DhcpConfig {
    toml::from_str(s).unwrap()
}

#[test]
fn defaults_are_valid_and_disabled() {
    let c = DhcpConfig::default().validate().unwrap();
    assert!(!c.enabled);
    assert_eq!(c.efi_binary, "snponly.efi");
    let prefixes: Vec<&str> = c.vendor_prefixes.iter().map(|p| &**p).collect();
    assert_eq!(prefixes, ["PXEClient", "HTTPClient"]);
    let empty: DhcpConfig = parse("");
    assert_eq!(empty, DhcpConfig::default());
}

#[test]
fn unknown_keys_are_rejected() {
    assert!(toml::from_str::<DhcpConfig>("enable = true").is_err());
    assert!(toml::from_str::<DhcpConfig>("[[rules]]\nmacc = \"x\"").is_err());
}

#[test]
fn enabled_without_interfaces_is_an_error() {
    let c = parse("enabled = true");
    assert_eq!(c.validate().unwrap_err(), ConfigError::NoInterfaces);
    assert!(
        parse("enabled = true\nall_interfaces = true")
            .validate()
            .is_ok()
    );
}

#[test]
fn seed_config_translates() {
    let c = parse(
        r#"
            enabled = true
            all_interfaces = true
            exclude_interfaces = ["virbr0"]
            http_port = 8080
            [[rules]]
            name = "netboot-xyz"
            mac = "02:1a:4a:16:01:9c"
            url = "http://10.10.254.200:8081/menus/menu.ipxe"
        "#,
    )
    .validate()
    .unwrap();
    assert_eq!(c.rules.len(), 1);
    assert!(matches!(c.rules[0].target, Target::Url(_)));
    assert!(c.is_excluded("virbr0"));
    assert!(!c.is_excluded("eth0"));
}

#[test]
fn bad_values_name_their_key() {
    let e = parse("[[rules]]\nmac = \"02:1a:4a:16:01\"")
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("dhcp.rules[0].mac"), "{e}");
    let e = parse("[[rules]]\narch = \"efi-sparc\"")
        .validate()
        .unwrap_err();
    assert!(matches!(e, ConfigError::UnknownArch { .. }), "{e}");
    let e = parse(&format!("efi_binary = \"{}\"", "a".repeat(128)))
        .validate()
        .unwrap_err();
    assert!(matches!(e, ConfigError::FileTooLong { .. }), "{e}");
    let e = parse(&format!(
        "[[rules]]\nurl = \"http://{{server_ip}}/{}\"",
        "a".repeat(105)
    ))
    .validate()
    .unwrap_err();
    assert!(matches!(e, ConfigError::FileTooLong { .. }), "{e}");
    let e = parse("[[rules]]\nurl = \"ftp://x/y\"")
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("absolute"), "{e}");
    let e = parse("[[rules]]\ntarget = \"ignore\"\nurl = \"http://x/y\"")
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("rules[0].url"), "{e}");
    let e = parse("[[rules]]\ntarget = \"url\"").validate().unwrap_err();
    assert!(e.to_string().contains("needs a url"), "{e}");
    let e = parse("enabled = true\ninterfaces = [\"virbr0\"]")
        .validate()
        .unwrap_err();
    assert!(matches!(e, ConfigError::AllowedAndExcluded { .. }), "{e}");
    let e = parse("reply_delay_ms = 60000").validate().unwrap_err();
    assert!(e.to_string().contains("reply_delay_ms"), "{e}");
    let e = parse("interfaces = [\"10.0.0.0/33\"]")
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("interfaces[0]"), "{e}");
    let e = parse("[advertise]\neth0 = \"0.0.0.0\"")
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("advertise.eth0"), "{e}");
}

#[test]
fn rate_limit_table() {
    let c = DhcpConfig::default().validate().unwrap();
    let l = c.rate_limit.expect("on by default");
    assert_eq!((l.mac.burst, l.mac.per_minute), (40, 60));
    assert_eq!(l.max_clients, 16_384);
    let c = parse("[rate_limit]\nenabled = false").validate().unwrap();
    assert_eq!(c.rate_limit, None);
    let c = parse("[rate_limit]\nmac_burst = 5\nmac_per_minute = 1\nip_burst = 0")
        .validate()
        .unwrap();
    let l = c.rate_limit.unwrap();
    assert_eq!((l.mac.burst, l.mac.per_minute, l.ip.burst), (5, 1, 0));
    assert!(toml::from_str::<DhcpConfig>("[rate_limit]\nmac_brust = 5").is_err());
    let e = parse("[rate_limit]\nmac_per_minute = 0")
        .validate()
        .unwrap_err();
    assert!(
        e.to_string().contains("dhcp.rate_limit.mac_per_minute"),
        "{e}"
    );
    let e = parse("[rate_limit]\nmax_clients = 0")
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("dhcp.rate_limit.max_clients"), "{e}");
    let e = parse("[rate_limit]\nrelay_burst = 4000000000")
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("dhcp.rate_limit.relay_burst"), "{e}");
}

#[test]
fn arch_lists_and_names() {
    let c = parse("[[rules]]\narch = [\"x86PC\", 7, \"BC_EFI\"]\ntarget = \"ignore\"")
        .validate()
        .unwrap();
    assert_eq!(c.rules[0].arch, vec![0, 7, 9]);
    let c = parse("[[rules]]\narch = 11\ntarget = \"local_boot\"")
        .validate()
        .unwrap();
    assert_eq!(c.rules[0].arch, vec![11]);
    assert_eq!(c.rules[0].target, Target::LocalBoot);
}

#[test]
fn mac_patterns() {
    let p = MacPattern::parse("01:34:23:*:*:*").unwrap();
    assert!(p.matches(&[1, 0x34, 0x23, 9, 9, 9]));
    assert!(!p.matches(&[1, 0x34, 0x24, 9, 9, 9]));
    assert!(MacPattern::parse("01-34-23-AA-bb-0c").is_some());
    assert!(MacPattern::parse("01:34:23:*:*").is_none());
    assert!(MacPattern::parse("01:34:23:*:*:1234").is_none());
    assert!(MacPattern::parse("01:34:23:*:*:zz").is_none());
}

#[test]
fn globs_and_subnets() {
    assert!(NamePattern::new("virbr*").matches("virbr0"));
    assert!(NamePattern::new("*").matches("eth0"));
    assert!(NamePattern::new("e*h*").matches("eth0x"));
    assert!(!NamePattern::new("virbr*").matches("eth0"));
    assert!(!NamePattern::new("eth0").matches("eth01"));
    let s = parse_selector("k", "10.10.254.0").unwrap();
    let m = Ipv4Addr::new(255, 255, 255, 0);
    assert!(s.matches("x", Ipv4Addr::new(10, 10, 254, 200), m));
    assert!(!s.matches("x", Ipv4Addr::new(10, 10, 253, 200), m));
    let s = parse_selector("k", "10.10.0.0/16").unwrap();
    assert!(s.matches("x", Ipv4Addr::new(10, 10, 253, 200), m));
}
