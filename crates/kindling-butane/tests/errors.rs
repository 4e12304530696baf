//! Error and warning cases: message, field path, line and column.

use kindling_butane::{Severity, TranslateOptions, translate};

fn err(yaml: &str) -> kindling_butane::TranslateError {
    translate(yaml.as_bytes(), &TranslateOptions::default()).expect_err("must fail")
}

fn first(
    e: &kindling_butane::Report,
    sev: Severity,
) -> (String, String, Option<usize>, Option<usize>) {
    let x = e
        .entries
        .iter()
        .find(|x| x.severity == sev)
        .unwrap_or_else(|| panic!("no {sev:?} in {e}"));
    (x.message.clone(), x.path.clone(), x.line, x.column)
}

fn expect(yaml: &str, msg: &str, path: &str, line: usize, col: usize) {
    let e = err(yaml);
    assert_eq!(
        first(&e.report, Severity::Error),
        (msg.to_string(), path.to_string(), Some(line), Some(col)),
        "{}",
        e.report
    );
}

const TYPO: &str = "variant: fcos\nversion: 1.0.0\npasswd:\n  users:\n    - name: inoue\n      ssh_authorised_keys:\n        - ssh-rsa AAAA\n";

#[test]
fn unknown_key_is_a_warning_like_butane_and_fatal_when_strict() {
    let t = translate(TYPO.as_bytes(), &TranslateOptions::default()).unwrap();
    let w = &t.warnings.entries[0];
    assert_eq!(
        w.to_string(),
        "warning at line 6, column 7 (passwd.users.0.ssh_authorised_keys): unused key ssh_authorised_keys"
    );
    assert_eq!(
        t.json,
        r#"{"ignition":{"version":"3.0.0"},"passwd":{"users":[{"name":"inoue"}]}}"#
    );
    let strict = TranslateOptions {
        strict: true,
        ..Default::default()
    };
    let e = translate(TYPO.as_bytes(), &strict).unwrap_err();
    assert_eq!(
        e.message,
        "Config produced warnings and --strict was specified"
    );
    assert_eq!(first(&e.report, Severity::Warning).2, Some(6));
}

#[test]
fn wrong_types() {
    let h = "variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: /a\n";
    expect(
        &format!("{h}      mode: abc\n"),
        "cannot unmarshal !!str `abc` into int",
        "storage.files.0.mode",
        6,
        13,
    );
    expect(
        &format!("{h}      mode: \"0644\"\n"),
        "cannot unmarshal !!str `0644` into int",
        "storage.files.0.mode",
        6,
        13,
    );
    expect(
        &format!("{h}      overwrite: maybe\n"),
        "cannot unmarshal !!str `maybe` into bool",
        "storage.files.0.overwrite",
        6,
        18,
    );
    expect(
        &format!("{h}      contents: hello\n"),
        "cannot unmarshal !!str `hello` into Resource",
        "storage.files.0.contents",
        6,
        17,
    );
    expect(
        "variant: fcos\nversion: 1.4.0\npasswd:\n  users:\n    - name: a\n      groups: wheel\n",
        "cannot unmarshal !!str `wheel` into []string",
        "passwd.users.0.groups",
        6,
        15,
    );
    expect(
        "variant: fcos\nversion: 1.4.0\nstorage: [1]\n",
        "cannot unmarshal !!seq into Storage",
        "storage",
        3,
        10,
    );
}

#[test]
fn versions_and_variants() {
    expect(
        "variant: fcos\nversion: 1.8.0-experimental\n",
        "No translator exists for variant fcos with version 1.8.0-experimental (experimental spec versions are not supported; kindling translates fcos 1.0.0 to 1.6.0 and flatcar 1.0.0 to 1.1.0)",
        "version",
        2,
        10,
    );
    expect(
        "variant: fcos\nversion: 1.7.0\n",
        "No translator exists for variant fcos with version 1.7.0 (kindling translates fcos 1.0.0 to 1.6.0 and flatcar 1.0.0 to 1.1.0)",
        "version",
        2,
        10,
    );
    expect(
        "version: 1.0.0\n",
        "error parsing variant; must be specified",
        "variant",
        1,
        1,
    );
    expect(
        "variant: fcos\nversion: 1.0\n",
        "error parsing version; must be a valid semver",
        "version",
        2,
        10,
    );
    expect(
        "variant: rhcos\nversion: 0.1.0\n",
        "No translator exists for variant rhcos with version 0.1.0 (kindling translates fcos 1.0.0 to 1.6.0 and flatcar 1.0.0 to 1.1.0)",
        "version",
        2,
        10,
    );
}

#[test]
fn yaml_syntax_and_duplicate_keys() {
    let e = err("variant: fcos\nversion: 1.0.0\npasswd:\n  users: [\n");
    let (msg, _, line, _) = first(&e.report, Severity::Error);
    assert!(msg.starts_with("yaml: "), "{msg}");
    assert!(line.is_some_and(|l| l >= 4), "{line:?}");
    expect(
        "variant: fcos\nversion: 1.0.0\nstorage: {}\nstorage: {}\n",
        "yaml: mapping key \"storage\" already defined at line 3",
        "",
        4,
        1,
    );
}

#[test]
fn resource_sources() {
    expect(
        "variant: fcos\nversion: 1.1.0\nstorage:\n  files:\n    - path: /a\n      contents:\n        inline: x\n        source: https://example.com/a\n",
        "only one of the following can be set: inline, local, source",
        "storage.files.0.contents.source",
        8,
        9,
    );
    expect(
        "variant: fcos\nversion: 1.1.0\nstorage:\n  files:\n    - path: /a\n      contents:\n        local: a.txt\n",
        "local file paths are relative to a files directory that must be specified with -d/--files-dir",
        "storage.files.0.contents.local",
        7,
        9,
    );
    let d = tempfile::tempdir().unwrap();
    let opts = TranslateOptions {
        files_dir: Some(d.path().to_path_buf()),
        ..Default::default()
    };
    let e = translate(
        b"variant: fcos\nversion: 1.1.0\nstorage:\n  files:\n    - path: /a\n      contents:\n        local: ../../etc/passwd\n",
        &opts,
    )
    .unwrap_err();
    assert_eq!(
        first(&e.report, Severity::Error),
        (
            "local file path traverses outside the files directory".into(),
            "storage.files.0.contents.local".into(),
            Some(7),
            Some(9)
        )
    );
    let e = translate(
        b"variant: fcos\nversion: 1.1.0\nstorage:\n  files:\n    - path: /a\n      contents:\n        local: missing.txt\n",
        &opts,
    )
    .unwrap_err();
    let (msg, ..) = first(&e.report, Severity::Error);
    assert!(
        msg.starts_with("open ") && msg.ends_with("missing.txt: no such file or directory"),
        "{msg}"
    );
}

#[test]
fn ignition_semantic_errors_point_at_yaml_lines() {
    expect(
        "variant: fcos\nversion: 1.0.0\nstorage:\n  files:\n    - path: etc/motd\n",
        "path not absolute",
        "storage.files.0.path",
        5,
        7,
    );
    expect(
        "variant: fcos\nversion: 1.0.0\nstorage:\n  files:\n    - path: /etc/a\n  directories:\n    - path: /etc/a\n",
        "duplicate entry defined",
        "storage.files.0",
        5,
        7,
    );
    expect(
        "variant: fcos\nversion: 1.0.0\nsystemd:\n  units:\n    - name: a.service\n    - name: a.service\n",
        "duplicate entry defined",
        "systemd.units.1",
        6,
        7,
    );
    expect(
        "variant: fcos\nversion: 1.0.0\npasswd:\n  users:\n    - groups: [wheel]\n",
        "field \"name\" is required",
        "passwd.users.0",
        5,
        7,
    );
    expect(
        "variant: fcos\nversion: 1.0.0\nsystemd:\n  units:\n    - name: foo.conf\n",
        "invalid systemd unit extension",
        "systemd.units.0.name",
        5,
        7,
    );
    expect(
        "variant: fcos\nversion: 1.0.0\nstorage:\n  files:\n    - path: /a\n      mode: 99999\n",
        "illegal file mode",
        "storage.files.0.mode",
        6,
        7,
    );
    expect(
        "variant: fcos\nversion: 1.1.0\nstorage:\n  files:\n    - path: /a\n      contents:\n        source: https://x/a\n        verification:\n          hash: sha512-abc\n",
        "incorrect size for hash sum",
        "storage.files.0.contents.verification.hash",
        9,
        11,
    );
    expect(
        "variant: fcos\nversion: 1.1.0\nstorage:\n  files:\n    - path: /a\n      contents:\n        source: ftp://x/a\n",
        "invalid url scheme",
        "storage.files.0.contents.source",
        7,
        9,
    );
}

#[test]
fn butane_warnings() {
    let t = translate(
        b"variant: fcos\nversion: 1.0.0\nstorage:\n  files:\n    - path: /a\n      mode: 644\nsystemd:\n  units:\n    - name: x.service\n      enabled: true\n      contents: \"[Service]\\nExecStart=/bin/true\\n\"\n",
        &TranslateOptions::default(),
    )
    .unwrap();
    let w: Vec<String> = t.warnings.entries.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "warning at line 6, column 7 (storage.files.0.mode): unreasonable mode would be reasonable if specified in octal; remember to add a leading zero",
            // 644 decimal is 0o1204: the sticky bit (Ignition's special-bits warning).
            "warning at line 6, column 7 (storage.files.0.mode): setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0",
            "warning at line 11, column 7 (systemd.units.0.contents): unit \"x.service\" is enabled, but has no install section so enable does nothing",
        ]
    );
}

#[test]
fn sugar_validation_errors() {
    expect(
        "variant: fcos\nversion: 1.4.0\nstorage:\n  filesystems:\n    - device: /dev/vdb\n      with_mount_unit: true\n",
        "format is required if with_mount_unit is true",
        "storage.filesystems.0.format",
        5,
        7,
    );
    // fcos 1.1-1.3 (base v0_2/v0_3) report the path first.
    expect(
        "variant: fcos\nversion: 1.2.0\nstorage:\n  filesystems:\n    - device: /dev/vdb\n      with_mount_unit: true\n",
        "path is required if with_mount_unit is true and format is not swap",
        "storage.filesystems.0.path",
        5,
        7,
    );
    // fcos 1.0 reports inline+source at inline.
    expect(
        "variant: fcos\nversion: 1.0.0\nstorage:\n  files:\n    - path: /a\n      contents:\n        source: https://x/a\n        inline: x\n",
        "only one of the following can be set: inline, local, source",
        "storage.files.0.contents.inline",
        8,
        9,
    );
    expect(
        "variant: fcos\nversion: 1.4.0\nboot_device:\n  layout: x86_64\n  mirror:\n    devices: [/dev/sda]\n",
        "mirroring requires at least two devices",
        "boot_device.mirror.devices",
        6,
        5,
    );
    expect(
        "variant: fcos\nversion: 1.4.0\nboot_device:\n  layout: s390x-eckd\n",
        "layout must be one of: aarch64, ppc64le, x86_64",
        "boot_device.layout",
        4,
        3,
    );
    expect(
        "variant: fcos\nversion: 1.5.0\ngrub:\n  users:\n    - name: root\n",
        "field \"password_hash\" is required",
        "grub.users.0.password_hash",
        5,
        7,
    );
    expect(
        "variant: fcos\nversion: 1.6.0\nstorage:\n  filesystems:\n    - device: /dev/vdb\n      format: xfs\n      path: /srv\n      with_mount_unit: true\n",
        "path must be under /etc or /var if with_mount_unit is true",
        "storage.filesystems.0.path",
        7,
        7,
    );
    expect(
        "variant: fcos\nversion: 1.5.0\nsystemd:\n  units:\n    - name: a.service\n      contents: x\n      contents_local: a\n",
        "only one of the following can be set: contents, contents_local",
        "systemd.units.0.contents_local",
        7,
        7,
    );
}

#[test]
fn embedded_ignition_configs_are_validated() {
    expect(
        "variant: fcos\nversion: 1.4.0\nignition:\n  config:\n    merge:\n      - inline: '{\"ignition\":{\"version\":\"3.3.0\"},\"storage\":{\"files\":[{\"path\":\"rel\"}]}}'\n",
        "path not absolute (embedded config: storage.files.0.path)",
        "ignition.config.merge.0.inline",
        6,
        9,
    );
    let t = translate(
        b"variant: fcos\nversion: 1.4.0\nignition:\n  config:\n    replace:\n      inline: '{\"ignition\":{\"version\":\"3.2.0\"}}'\n",
        &TranslateOptions::default(),
    )
    .unwrap();
    assert_eq!(
        t.warnings.entries[0].message,
        "skipping validation for the merge/replace ignition config due to an unkown version"
    );
}
