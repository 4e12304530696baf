//! The configuration's tests: defaults, limits, checks.

use super::*;

#[test]
fn empty_file_is_all_defaults() {
    let c: Config = toml::from_str("").unwrap();
    assert_eq!(c.http.listen.port(), 8080);
    assert!(c.http.assets);
    assert!(c.reload.watch);
}

#[test]
fn admin_defaults_to_loopback_without_credentials() {
    let c: Config = toml::from_str("").unwrap();
    let plan = c.admin.plan(None).unwrap().unwrap();
    assert_eq!(plan.listen, ADMIN_DEFAULT_LISTEN.parse().unwrap());
    assert!(plan.listen.ip().is_loopback());
    assert_eq!((plan.token_file, plan.tls), (None, None));
    assert_eq!(c.http.max_connections_per_client, 64);
    assert!(!c.http.asset_listings);
    assert!(!c.http.ignition_binding);
}

#[test]
fn admin_off() {
    let c: Config = toml::from_str("[admin]\nlisten = \"\"\n").unwrap();
    assert_eq!(c.admin.plan(None).unwrap(), None);
    let c: Config = toml::from_str("[admin]\nenabled = false\n").unwrap();
    assert_eq!(c.admin.plan(None).unwrap(), None);
    let c: Config = toml::from_str("").unwrap();
    assert_eq!(c.admin.plan(Some("")).unwrap(), None);
}

#[test]
fn exposed_admin_needs_credentials() {
    let c: Config = toml::from_str("[admin]\nlisten = \"0.0.0.0:8082\"\n").unwrap();
    let e = c.admin.plan(None).unwrap_err().to_string();
    assert!(e.contains("without credentials"), "{e}");
    assert!(e.contains("0.0.0.0 is not a loopback address"), "{e}");
    let c: Config =
        toml::from_str("[admin]\nlisten = \"[::]:8082\"\ntoken_file = \"/t\"\n").unwrap();
    assert!(c.admin.plan(None).unwrap().is_some());
    let c: Config = toml::from_str("[admin]\nrequire_auth = true\n").unwrap();
    let e = c.admin.plan(None).unwrap_err().to_string();
    assert!(e.contains("require_auth is set"), "{e}");
    let c: Config = toml::from_str(
        "[admin]\nlisten = \"10.0.0.1:8082\"\ntls_cert = \"/c\"\ntls_key = \"/k\"\n",
    )
    .unwrap();
    let e = c.admin.plan(None).unwrap_err().to_string();
    assert!(e.contains("client_ca"), "{e}");
    let c: Config = toml::from_str(
        "[admin]\nlisten = \"10.0.0.1:8082\"\ntls_cert = \"/c\"\ntls_key = \"/k\"\nclient_ca = \"/ca\"\n",
    )
    .unwrap();
    assert!(c.admin.plan(None).unwrap().unwrap().tls.is_some());
}

#[test]
fn http_limits_follow_the_descriptor_limit() {
    let c: Config = toml::from_str("").unwrap();
    assert_eq!(c.http.limits(1024).total, 384);
    assert_eq!(c.http.limits(1024).per_client, 64);
    let c: Config = toml::from_str("[http]\nmax_connections = 10\n").unwrap();
    assert_eq!(c.http.limits(1024).total, 10);
    // TFTP's transfers take their descriptors first, and fit in half of what is left:
    // 1024 allows (1024 - 256) / 4 = 192 transfers, then (1024 - 2 * 192 - 256) / 2.
    let c: Config = toml::from_str("[tftp]\nenabled = true\n").unwrap();
    assert_eq!(c.tftp_transfers(1024), 192);
    assert_eq!(c.http_limits(1024).total, 192);
    assert_eq!(c.tftp_transfers(65536), 1024);
    assert_eq!(c.http_limits(1 << 20).total, ((1 << 20) - 2048 - 256) / 2);
    assert_eq!(c.tftp_transfers(100), 8);
    let c: Config = toml::from_str("").unwrap();
    assert_eq!(c.http_limits(1024).total, 384);
}

#[test]
fn unknown_keys_rejected_with_position() {
    let e = toml::from_str::<Config>("[http]\nlisten = \"0.0.0.0:80\"\nlisen = 1\n").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("lisen"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
}
