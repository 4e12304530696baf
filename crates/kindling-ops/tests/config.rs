//! `[ops]` from TOML: the names, the defaults, unknown keys refused.

#[test]
fn ops_config_from_toml() {
    let c: kindling_ops::OpsConfig = toml::from_str(
        "state_dir = \"/var/lib/kindling\"\njournal_files = 2\nfsync = \"always\"\nboot_gap_secs = 60\n",
    )
    .unwrap();
    assert_eq!(c.journal_files, 2);
    assert_eq!(c.fsync, kindling_ops::FsyncPolicy::Always);
    assert_eq!(c.limits().boot_gap_ms, 60_000);
    assert_eq!(c.max_boots, kindling_ops::OpsConfig::default().max_boots);
    assert!(toml::from_str::<kindling_ops::OpsConfig>("jounral = true").is_err());
}
