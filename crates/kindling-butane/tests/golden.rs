//! Golden Butane -> Ignition cases. The expected JSON is written by hand from Butane's
//! `docs/config-fcos-v1_*.md` / `docs/upgrading.md` and Ignition's `docs/configuration-v3_*.md`
//! (field names, spec versions, data URL rules, desugaring layouts), in Go's key order.
//! Every output of spec <= 3.3.0 is also fed to Debian's `ignition-validate`.

mod common;
use kindling_butane::{TranslateOptions, translate};
use std::path::Path;

fn opts(dir: Option<&Path>) -> TranslateOptions {
    TranslateOptions {
        files_dir: dir.map(Path::to_path_buf),
        ..Default::default()
    }
}

fn check(name: &str, yaml: &str, dir: Option<&Path>, expected: &str) {
    let t = translate(yaml.as_bytes(), &opts(dir))
        .unwrap_or_else(|e| panic!("{name}: translation failed: {e}\n{}", e.report));
    assert_eq!(t.json, expected, "{name}");
    let spec_minor: u8 = t.spec_version[2..3].parse().unwrap();
    if spec_minor <= 3
        && let Some((ok, out)) = common::ignition_validate(&t.json)
    {
        assert!(ok, "{name}: ignition-validate rejected {}: {out}", t.json);
    }
}

const H: &str = "variant: fcos\nversion: ";

#[test]
fn versions_map_to_documented_specs() {
    for (v, spec) in [
        ("1.0.0", "3.0.0"),
        ("1.1.0", "3.1.0"),
        ("1.2.0", "3.2.0"),
        ("1.3.0", "3.2.0"),
        ("1.4.0", "3.3.0"),
        ("1.5.0", "3.4.0"),
        ("1.6.0", "3.5.0"),
    ] {
        check(
            v,
            &format!("{H}{v}\n"),
            None,
            &format!("{{\"ignition\":{{\"version\":\"{spec}\"}}}}"),
        );
    }
}

#[test]
fn inline_v1_0_is_plain_data_url_without_compression() {
    check(
        "inline 1.0",
        &format!(
            "{H}1.0.0\nstorage:\n  files:\n    - path: /etc/motd\n      mode: 0644\n      contents:\n        inline: hello world\n"
        ),
        None,
        r##"{"ignition":{"version":"3.0.0"},"storage":{"files":[{"path":"/etc/motd","contents":{"source":"data:,hello%20world"},"mode":420}]}}"##,
    );
}

#[test]
fn inline_v1_1_sets_empty_compression() {
    check(
        "inline 1.1",
        &format!(
            "{H}1.1.0\nstorage:\n  files:\n    - path: /etc/hostname\n      overwrite: true\n      contents:\n        inline: node-1\n"
        ),
        None,
        r##"{"ignition":{"version":"3.1.0"},"storage":{"files":[{"overwrite":true,"path":"/etc/hostname","contents":{"compression":"","source":"data:,node-1"}}]}}"##,
    );
}

#[test]
fn inline_binary_prefers_base64() {
    check(
        "base64",
        &format!(
            "{H}1.4.0\nstorage:\n  files:\n    - path: /etc/x\n      contents:\n        inline: ÀÀÀÀ\n"
        ),
        None,
        r##"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/etc/x","contents":{"compression":"","source":"data:;base64,w4DDgMOAw4A="}}]}}"##,
    );
}

#[test]
fn inline_compressible_is_gzipped() {
    let text = "0123456789".repeat(50);
    let y = format!(
        "{H}1.5.0\nstorage:\n  files:\n    - path: /etc/big\n      contents:\n        inline: \"{text}\"\n"
    );
    let t = translate(y.as_bytes(), &opts(None)).unwrap();
    let c = &t.value["storage"]["files"][0]["contents"];
    assert_eq!(c["compression"], "gzip");
    let src = c["source"].as_str().unwrap();
    assert!(src.starts_with("data:;base64,H4sIAAAAAAAC/"), "{src}");
    let gz = kindling_butane::dataurl::decode(src).unwrap();
    let mut out = String::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, text);
    // User-specified compression is left alone and never recompressed.
    let y = format!(
        "{H}1.5.0\nstorage:\n  files:\n    - path: /etc/big\n      contents:\n        compression: gzip\n        inline: \"{text}\"\n"
    );
    let t = translate(y.as_bytes(), &opts(None)).unwrap();
    assert_eq!(
        t.value["storage"]["files"][0]["contents"]["source"]
            .as_str()
            .unwrap(),
        format!("data:,{text}")
    );
}

#[test]
fn source_with_verification_passes_through() {
    let hash = format!("sha512-{}", "a".repeat(128));
    check(
        "source",
        &format!(
            "{H}1.2.0\nstorage:\n  files:\n    - path: /opt/bin/tool\n      mode: 0755\n      contents:\n        source: https://example.com/tool\n        verification:\n          hash: {hash}\n"
        ),
        None,
        &format!(
            r##"{{"ignition":{{"version":"3.2.0"}},"storage":{{"files":[{{"path":"/opt/bin/tool","contents":{{"source":"https://example.com/tool","verification":{{"hash":"{hash}"}}}},"mode":493}}]}}}}"##
        ),
    );
}

#[test]
fn local_file_from_files_dir() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("motd"), "hi\n").unwrap();
    check(
        "local",
        &format!(
            "{H}1.1.0\nstorage:\n  files:\n    - path: /etc/motd\n      contents:\n        local: motd\n"
        ),
        Some(d.path()),
        r##"{"ignition":{"version":"3.1.0"},"storage":{"files":[{"path":"/etc/motd","contents":{"compression":"","source":"data:,hi%0A"}}]}}"##,
    );
}

#[test]
fn trees_become_files_and_links() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("tree");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.conf"), "x").unwrap();
    std::fs::write(root.join("sub/run.sh"), "y").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        root.join("sub/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("a.conf", root.join("link")).unwrap();
    check(
        "trees",
        &format!("{H}1.1.0\nstorage:\n  trees:\n    - local: tree\n      path: /etc/app\n"),
        Some(d.path()),
        r##"{"ignition":{"version":"3.1.0"},"storage":{"files":[{"path":"/etc/app/a.conf","contents":{"compression":"","source":"data:,x"},"mode":420},{"path":"/etc/app/sub/run.sh","contents":{"compression":"","source":"data:,y"},"mode":493}],"links":[{"path":"/etc/app/link","target":"a.conf"}]}}"##,
    );
}

#[test]
fn units_and_dropins() {
    check(
        "dropins",
        &format!(
            "{H}1.0.0\nsystemd:\n  units:\n    - name: docker.service\n      mask: true\n    - name: sshd.service\n      dropins:\n        - name: port.conf\n          contents: \"[Service]\\nEnvironment=PORT=2222\\n\"\n"
        ),
        None,
        r##"{"ignition":{"version":"3.0.0"},"systemd":{"units":[{"mask":true,"name":"docker.service"},{"dropins":[{"contents":"[Service]\nEnvironment=PORT=2222\n","name":"port.conf"}],"name":"sshd.service"}]}}"##,
    );
}

#[test]
fn unit_and_dropin_contents_local() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("u.service"),
        "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    std::fs::write(d.path().join("d.conf"), "[Service]\nNice=5\n").unwrap();
    let yaml = |v: &str| {
        format!(
            "{H}{v}\nsystemd:\n  units:\n    - name: u.service\n      enabled: true\n      contents_local: u.service\n      dropins:\n        - name: d.conf\n          contents_local: d.conf\n"
        )
    };
    check(
        "contents_local 1.5",
        &yaml("1.5.0"),
        Some(d.path()),
        r##"{"ignition":{"version":"3.4.0"},"systemd":{"units":[{"contents":"[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n","dropins":[{"contents":"[Service]\nNice=5\n","name":"d.conf"}],"enabled":true,"name":"u.service"}]}}"##,
    );
    check(
        "contents_local 1.6",
        &yaml("1.6.0"),
        Some(d.path()),
        r##"{"ignition":{"version":"3.5.0"},"systemd":{"units":[{"contents":"[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n","dropins":[{"contents":"[Service]\nNice=5\n","name":"d.conf"}],"enabled":true,"name":"u.service"}]}}"##,
    );
}

#[test]
fn users_groups_password_hash() {
    check(
        "users",
        &format!(
            "{H}1.4.0\npasswd:\n  groups:\n    - name: ops\n      gid: 2000\n  users:\n    - name: core\n      password_hash: $y$j9T$abc\n      groups: [wheel, ops]\n      ssh_authorized_keys:\n        - ssh-ed25519 AAAA one\n      home_dir: /var/home/core\n      uid: 1001\n      should_exist: true\n"
        ),
        None,
        r##"{"ignition":{"version":"3.3.0"},"passwd":{"groups":[{"gid":2000,"name":"ops"}],"users":[{"groups":["wheel","ops"],"homeDir":"/var/home/core","name":"core","passwordHash":"$y$j9T$abc","sshAuthorizedKeys":["ssh-ed25519 AAAA one"],"shouldExist":true,"uid":1001}]}}"##,
    );
}

#[test]
fn ssh_authorized_keys_local() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("keys"),
        "ssh-ed25519 AAAA two\r\n\nssh-rsa BBBB three\n",
    )
    .unwrap();
    check(
        "keys_local",
        &format!(
            "{H}1.5.0\npasswd:\n  users:\n    - name: core\n      ssh_authorized_keys: [ssh-ed25519 AAAA one]\n      ssh_authorized_keys_local: [keys]\n"
        ),
        Some(d.path()),
        r##"{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["ssh-ed25519 AAAA one","ssh-ed25519 AAAA two","ssh-rsa BBBB three"]}]}}"##,
    );
}

#[test]
fn kernel_arguments() {
    check(
        "kargs",
        &format!(
            "{H}1.4.0\nkernel_arguments:\n  should_exist: [systemd.unified_cgroup_hierarchy=0]\n  should_not_exist: [\"mitigations=auto,nosmt\"]\n"
        ),
        None,
        r##"{"ignition":{"version":"3.3.0"},"kernelArguments":{"shouldExist":["systemd.unified_cgroup_hierarchy=0"],"shouldNotExist":["mitigations=auto,nosmt"]}}"##,
    );
    // Not in 1.3.0: ignored with Butane's "unused key" warning.
    let t = translate(
        format!("{H}1.3.0\nkernel_arguments:\n  should_exist: [a]\n").as_bytes(),
        &opts(None),
    )
    .unwrap();
    assert_eq!(t.json, r##"{"ignition":{"version":"3.2.0"}}"##);
    let w = &t.warnings.entries[0];
    assert_eq!(
        (w.message.as_str(), w.line, w.column),
        ("unused key kernel_arguments", Some(3), Some(1))
    );
}

#[test]
fn boot_device_luks_tpm2_v1_3() {
    check(
        "tpm2",
        &format!("{H}1.3.0\nboot_device:\n  luks:\n    tpm2: true\n"),
        None,
        r##"{"ignition":{"version":"3.2.0"},"storage":{"filesystems":[{"device":"/dev/mapper/root","format":"xfs","label":"root","wipeFilesystem":true}],"luks":[{"clevis":{"tpm2":true},"device":"/dev/disk/by-partlabel/root","label":"luks-root","name":"root","wipeVolume":true}]}}"##,
    );
}

#[test]
fn boot_device_luks_tang_threshold_v1_4() {
    check(
        "tang",
        &format!(
            "{H}1.4.0\nboot_device:\n  luks:\n    tang:\n      - url: https://tang.example.com\n        thumbprint: REPLACE-THIS\n    threshold: 2\n    tpm2: true\n"
        ),
        None,
        r##"{"ignition":{"version":"3.3.0"},"storage":{"filesystems":[{"device":"/dev/mapper/root","format":"xfs","label":"root","wipeFilesystem":true}],"luks":[{"clevis":{"tang":[{"thumbprint":"REPLACE-THIS","url":"https://tang.example.com"}],"threshold":2,"tpm2":true},"device":"/dev/disk/by-partlabel/root","label":"luks-root","name":"root","wipeVolume":true}]}}"##,
    );
}

#[test]
fn boot_device_mirror_x86_64() {
    check(
        "mirror",
        &format!(
            "{H}1.4.0\nboot_device:\n  layout: x86_64\n  mirror:\n    devices: [/dev/sda, /dev/sdb]\n"
        ),
        None,
        concat!(
            r##"{"ignition":{"version":"3.3.0"},"storage":{"disks":["##,
            r##"{"device":"/dev/sda","partitions":[{"label":"bios-1","sizeMiB":1,"typeGuid":"21686148-6449-6E6F-744E-656564454649"},{"label":"esp-1","sizeMiB":127,"typeGuid":"C12A7328-F81F-11D2-BA4B-00A0C93EC93B"},{"label":"boot-1","sizeMiB":384},{"label":"root-1"}],"wipeTable":true},"##,
            r##"{"device":"/dev/sdb","partitions":[{"label":"bios-2","sizeMiB":1,"typeGuid":"21686148-6449-6E6F-744E-656564454649"},{"label":"esp-2","sizeMiB":127,"typeGuid":"C12A7328-F81F-11D2-BA4B-00A0C93EC93B"},{"label":"boot-2","sizeMiB":384},{"label":"root-2"}],"wipeTable":true}],"##,
            r##""filesystems":[{"device":"/dev/disk/by-partlabel/esp-1","format":"vfat","label":"esp-1","wipeFilesystem":true},{"device":"/dev/disk/by-partlabel/esp-2","format":"vfat","label":"esp-2","wipeFilesystem":true},{"device":"/dev/md/md-boot","format":"ext4","label":"boot","wipeFilesystem":true},{"device":"/dev/md/md-root","format":"xfs","label":"root","wipeFilesystem":true}],"##,
            r##""raid":[{"devices":["/dev/disk/by-partlabel/boot-1","/dev/disk/by-partlabel/boot-2"],"level":"raid1","name":"md-boot","options":["--metadata=1.0"]},{"devices":["/dev/disk/by-partlabel/root-1","/dev/disk/by-partlabel/root-2"],"level":"raid1","name":"md-root"}]}}"##
        ),
    );
}

#[test]
fn boot_device_mirror_luks_aarch64_discard_v1_5() {
    check(
        "mirror+luks",
        &format!(
            "{H}1.5.0\nboot_device:\n  layout: aarch64\n  luks:\n    tpm2: true\n    discard: true\n  mirror:\n    devices: [/dev/vda, /dev/vdb]\n"
        ),
        None,
        concat!(
            r##"{"ignition":{"version":"3.4.0"},"storage":{"disks":["##,
            r##"{"device":"/dev/vda","partitions":[{"label":"reserved-1","sizeMiB":1,"typeGuid":"8DA63339-0007-60C0-C436-083AC8230908"},{"label":"esp-1","sizeMiB":127,"typeGuid":"C12A7328-F81F-11D2-BA4B-00A0C93EC93B"},{"label":"boot-1","sizeMiB":384},{"label":"root-1"}],"wipeTable":true},"##,
            r##"{"device":"/dev/vdb","partitions":[{"label":"reserved-2","sizeMiB":1,"typeGuid":"8DA63339-0007-60C0-C436-083AC8230908"},{"label":"esp-2","sizeMiB":127,"typeGuid":"C12A7328-F81F-11D2-BA4B-00A0C93EC93B"},{"label":"boot-2","sizeMiB":384},{"label":"root-2"}],"wipeTable":true}],"##,
            r##""filesystems":[{"device":"/dev/disk/by-partlabel/esp-1","format":"vfat","label":"esp-1","wipeFilesystem":true},{"device":"/dev/disk/by-partlabel/esp-2","format":"vfat","label":"esp-2","wipeFilesystem":true},{"device":"/dev/md/md-boot","format":"ext4","label":"boot","wipeFilesystem":true},{"device":"/dev/mapper/root","format":"xfs","label":"root","wipeFilesystem":true}],"##,
            r##""luks":[{"clevis":{"tpm2":true},"device":"/dev/md/md-root","discard":true,"label":"luks-root","name":"root","wipeVolume":true}],"##,
            r##""raid":[{"devices":["/dev/disk/by-partlabel/boot-1","/dev/disk/by-partlabel/boot-2"],"level":"raid1","name":"md-boot","options":["--metadata=1.0"]},{"devices":["/dev/disk/by-partlabel/root-1","/dev/disk/by-partlabel/root-2"],"level":"raid1","name":"md-root"}]}}"##
        ),
    );
}

#[test]
fn grub_users_v1_5() {
    check(
        "grub",
        &format!(
            "{H}1.5.0\ngrub:\n  users:\n    - name: root\n      password_hash: grub.pbkdf2.sha512.10000.AB\n"
        ),
        None,
        r##"{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/boot/grub2/user.cfg","append":[{"compression":"","source":"data:,%23%20Generated%20by%20Butane%0A%0Aset%20superusers%3D%22root%22%0Apassword_pbkdf2%20root%20grub.pbkdf2.sha512.10000.AB%0A"}]}],"filesystems":[{"device":"/dev/disk/by-label/boot","format":"ext4","path":"/boot"}]}}"##,
    );
}

#[test]
fn mount_unit_ext4_with_options_v1_2() {
    check(
        "mount",
        &format!(
            "{H}1.2.0\nstorage:\n  filesystems:\n    - device: /dev/disk/by-label/data\n      format: ext4\n      path: /var/lib/data\n      mount_options: [noatime, nodev]\n      with_mount_unit: true\n"
        ),
        None,
        r##"{"ignition":{"version":"3.2.0"},"storage":{"filesystems":[{"device":"/dev/disk/by-label/data","format":"ext4","mountOptions":["noatime","nodev"],"path":"/var/lib/data"}]},"systemd":{"units":[{"contents":"# Generated by Butane\n[Unit]\nRequires=systemd-fsck@dev-disk-by\\x2dlabel-data.service\nAfter=systemd-fsck@dev-disk-by\\x2dlabel-data.service\n\n[Mount]\nWhere=/var/lib/data\nWhat=/dev/disk/by-label/data\nType=ext4\nOptions=noatime,nodev\n\n[Install]\nRequiredBy=local-fs.target","enabled":true,"name":"var-lib-data.mount"}]}}"##,
    );
}

#[test]
fn mount_unit_swap_v1_4() {
    check(
        "swap",
        &format!(
            "{H}1.4.0\nstorage:\n  filesystems:\n    - device: /dev/vdb\n      format: swap\n      with_mount_unit: true\n"
        ),
        None,
        r##"{"ignition":{"version":"3.3.0"},"storage":{"filesystems":[{"device":"/dev/vdb","format":"swap"}]},"systemd":{"units":[{"contents":"# Generated by Butane\n[Swap]\nWhat=/dev/vdb\n\n[Install]\nRequiredBy=swap.target","enabled":true,"name":"dev-vdb.swap"}]}}"##,
    );
}

#[test]
fn mount_unit_remote_over_tang_luks() {
    check(
        "remote",
        &format!(
            "{H}1.4.0\nstorage:\n  luks:\n    - name: data\n      device: /dev/vdb\n      clevis:\n        tang:\n          - url: http://tang\n            thumbprint: T\n  filesystems:\n    - device: /dev/mapper/data\n      format: xfs\n      path: /var/data\n      with_mount_unit: true\n"
        ),
        None,
        r##"{"ignition":{"version":"3.3.0"},"storage":{"filesystems":[{"device":"/dev/mapper/data","format":"xfs","path":"/var/data"}],"luks":[{"clevis":{"tang":[{"thumbprint":"T","url":"http://tang"}]},"device":"/dev/vdb","name":"data"}]},"systemd":{"units":[{"contents":"# Generated by Butane\n[Unit]\nRequires=systemd-fsck@dev-mapper-data.service\nAfter=systemd-fsck@dev-mapper-data.service\n\n[Mount]\nWhere=/var/data\nWhat=/dev/mapper/data\nType=xfs\nOptions=_netdev\n\n[Install]\nRequiredBy=remote-fs.target","enabled":true,"name":"var-data.mount"}]}}"##,
    );
}

#[test]
fn directories_and_links_with_owners_v1_0() {
    check(
        "dirs",
        &format!(
            "{H}1.0.0\nstorage:\n  directories:\n    - path: /var/app\n      mode: 0750\n      user:\n        name: core\n      group:\n        id: 1000\n  links:\n    - path: /usr/local/bin/app\n      target: /var/app/bin\n      hard: false\n"
        ),
        None,
        r##"{"ignition":{"version":"3.0.0"},"storage":{"directories":[{"group":{"id":1000},"path":"/var/app","user":{"name":"core"},"mode":488}],"links":[{"path":"/usr/local/bin/app","hard":false,"target":"/var/app/bin"}]}}"##,
    );
}

#[test]
fn ignition_merge_inline_and_proxy_timeouts_tls_v1_1() {
    check(
        "ignition section",
        &format!(
            "{H}1.1.0\nignition:\n  config:\n    merge:\n      - inline: '{{\"ignition\":{{\"version\":\"3.1.0\"}}}}'\n  proxy:\n    http_proxy: http://proxy:3128\n    no_proxy: [localhost]\n  timeouts:\n    http_total: 30\n  security:\n    tls:\n      certificate_authorities:\n        - source: https://example.com/ca.pem\n"
        ),
        None,
        r##"{"ignition":{"config":{"merge":[{"compression":"","source":"data:;base64,eyJpZ25pdGlvbiI6eyJ2ZXJzaW9uIjoiMy4xLjAifX0="}]},"proxy":{"httpProxy":"http://proxy:3128","noProxy":["localhost"]},"security":{"tls":{"certificateAuthorities":[{"source":"https://example.com/ca.pem"}]}},"timeouts":{"httpTotal":30},"version":"3.1.0"}}"##,
    );
}

#[test]
fn go_html_escaping_in_output() {
    check(
        "escape",
        &format!(
            "{H}1.0.0\nsystemd:\n  units:\n    - name: a.service\n      contents: \"[Service]\\nExecStart=/bin/sh -c 'a && b < c > d'\\n\"\n"
        ),
        None,
        r##"{"ignition":{"version":"3.0.0"},"systemd":{"units":[{"contents":"[Service]\nExecStart=/bin/sh -c 'a \u0026\u0026 b \u003c c \u003e d'\n","name":"a.service"}]}}"##,
    );
}

#[test]
fn partitions_v1_3_and_resize() {
    check(
        "partitions",
        &format!(
            "{H}1.3.0\nstorage:\n  disks:\n    - device: /dev/disk/by-id/coreos-boot-disk\n      wipe_table: false\n      partitions:\n        - number: 4\n          label: root\n          size_mib: 8192\n          resize: true\n        - size_mib: 0\n          label: var\n"
        ),
        None,
        r##"{"ignition":{"version":"3.2.0"},"storage":{"disks":[{"device":"/dev/disk/by-id/coreos-boot-disk","partitions":[{"label":"root","number":4,"resize":true,"sizeMiB":8192},{"label":"var","sizeMiB":0}],"wipeTable":false}]}}"##,
    );
}

#[test]
fn yaml_1_1_booleans_and_hex_modes() {
    check(
        "bools",
        &format!(
            "{H}1.0.0\nstorage:\n  files:\n    - path: /a\n      overwrite: no\n      mode: 0o600\n    - path: /b\n      mode: 0x1ed\n"
        ),
        None,
        r##"{"ignition":{"version":"3.0.0"},"storage":{"files":[{"overwrite":false,"path":"/a","mode":384},{"path":"/b","mode":493}]}}"##,
    );
}

#[test]
fn luks_and_raid_v1_6_with_cex_field_absent() {
    check(
        "luks 1.6",
        &format!(
            "{H}1.6.0\nstorage:\n  luks:\n    - name: data\n      device: /dev/vdc\n      discard: true\n      open_options: [--perf-no_read_workqueue]\n      key_file:\n        inline: secret\n  raid:\n    - name: md0\n      level: raid1\n      devices: [/dev/vdd, /dev/vde]\n"
        ),
        None,
        r##"{"ignition":{"version":"3.5.0"},"storage":{"luks":[{"device":"/dev/vdc","discard":true,"keyFile":{"compression":"","source":"data:,secret"},"name":"data","openOptions":["--perf-no_read_workqueue"]}],"raid":[{"devices":["/dev/vdd","/dev/vde"],"level":"raid1","name":"md0"}]}}"##,
    );
}

#[test]
fn user_config_overrides_desugared_boot_device() {
    // The user's own filesystem entry for /dev/mapper/root is merged into the generated one.
    check(
        "merge",
        &format!(
            "{H}1.4.0\nboot_device:\n  luks:\n    tpm2: true\nstorage:\n  filesystems:\n    - device: /dev/mapper/root\n      format: ext4\n      wipe_filesystem: true\n      label: root\n"
        ),
        None,
        r##"{"ignition":{"version":"3.3.0"},"storage":{"filesystems":[{"device":"/dev/mapper/root","format":"ext4","label":"root","wipeFilesystem":true}],"luks":[{"clevis":{"tpm2":true},"device":"/dev/disk/by-partlabel/root","label":"luks-root","name":"root","wipeVolume":true}]}}"##,
    );
}

#[test]
fn flatcar_variant() {
    // matchbox's examples use flatcar 1.0.0 (-> 3.3.0) and 1.1.0 (-> 3.4.0).
    check(
        "flatcar 1.0",
        "variant: flatcar\nversion: 1.0.0\npasswd:\n  users:\n    - name: core\n      ssh_authorized_keys: [ssh-ed25519 AAAA]\nstorage:\n  files:\n    - path: /etc/hostname\n      contents:\n        inline: fc1\n",
        None,
        r##"{"ignition":{"version":"3.3.0"},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["ssh-ed25519 AAAA"]}]},"storage":{"files":[{"path":"/etc/hostname","contents":{"compression":"","source":"data:,fc1"}}]}}"##,
    );
    check(
        "flatcar 1.1",
        "variant: flatcar\nversion: 1.1.0\nsystemd:\n  units:\n    - name: etcd-member.service\n      dropins:\n        - name: 20-clct-etcd-member.conf\n          contents: \"[Service]\\nEnvironment=ETCD_NAME=node1\\n\"\n",
        None,
        r##"{"ignition":{"version":"3.4.0"},"systemd":{"units":[{"dropins":[{"contents":"[Service]\nEnvironment=ETCD_NAME=node1\n","name":"20-clct-etcd-member.conf"}],"name":"etcd-member.service"}]}}"##,
    );
    // No boot_device sugar and no Clevis in Flatcar.
    let t = translate(
        b"variant: flatcar\nversion: 1.0.0\nboot_device:\n  luks:\n    tpm2: true\n",
        &opts(None),
    )
    .unwrap();
    assert_eq!(t.json, r#"{"ignition":{"version":"3.3.0"}}"#);
    assert_eq!(t.warnings.entries[0].message, "unused key boot_device");
    let e = translate(
        b"variant: flatcar\nversion: 1.1.0\nstorage:\n  luks:\n    - name: data\n      device: /dev/vdb\n      clevis:\n        tpm2: true\n",
        &opts(None),
    )
    .unwrap_err();
    let x = e.report.errors().next().unwrap();
    assert_eq!(
        (x.message.as_str(), x.path.as_str(), x.line, x.column),
        (
            "clevis is not supported in this spec version",
            "storage.luks.0.clevis",
            Some(7),
            Some(7)
        )
    );
}

#[test]
fn append_ca_and_http_headers_v1_1() {
    check(
        "append/ca/headers",
        &format!(
            "{H}1.1.0\nignition:\n  security:\n    tls:\n      certificate_authorities:\n        - inline: PEM\nstorage:\n  files:\n    - path: /etc/hosts\n      append:\n        - inline: \"10.0.0.1 a\\n\"\n    - path: /opt/x\n      contents:\n        source: https://example.com/x\n        http_headers:\n          - name: Authorization\n            value: Bearer t\n"
        ),
        None,
        r##"{"ignition":{"security":{"tls":{"certificateAuthorities":[{"compression":"","source":"data:,PEM"}]}},"version":"3.1.0"},"storage":{"files":[{"path":"/etc/hosts","append":[{"compression":"","source":"data:,10.0.0.1%20a%0A"}]},{"path":"/opt/x","contents":{"httpHeaders":[{"name":"Authorization","value":"Bearer t"}],"source":"https://example.com/x"}}]}}"##,
    );
}

#[test]
fn boot_device_mirror_ppc64le_v1_3() {
    check(
        "ppc64le",
        &format!(
            "{H}1.3.0\nboot_device:\n  layout: ppc64le\n  mirror:\n    devices: [/dev/sda, /dev/sdb]\n"
        ),
        None,
        concat!(
            r##"{"ignition":{"version":"3.2.0"},"storage":{"disks":["##,
            r##"{"device":"/dev/sda","partitions":[{"label":"prep-1","sizeMiB":4,"typeGuid":"9E1A2D38-C612-4316-AA26-8B49521E5A8B"},{"label":"reserved-1","sizeMiB":1,"typeGuid":"8DA63339-0007-60C0-C436-083AC8230908"},{"label":"boot-1","sizeMiB":384},{"label":"root-1"}],"wipeTable":true},"##,
            r##"{"device":"/dev/sdb","partitions":[{"label":"prep-2","sizeMiB":4,"typeGuid":"9E1A2D38-C612-4316-AA26-8B49521E5A8B"},{"label":"reserved-2","sizeMiB":1,"typeGuid":"8DA63339-0007-60C0-C436-083AC8230908"},{"label":"boot-2","sizeMiB":384},{"label":"root-2"}],"wipeTable":true}],"##,
            r##""filesystems":[{"device":"/dev/md/md-boot","format":"ext4","label":"boot","wipeFilesystem":true},{"device":"/dev/md/md-root","format":"xfs","label":"root","wipeFilesystem":true}],"##,
            r##""raid":[{"devices":["/dev/disk/by-partlabel/boot-1","/dev/disk/by-partlabel/boot-2"],"level":"raid1","name":"md-boot","options":["--metadata=1.0"]},{"devices":["/dev/disk/by-partlabel/root-1","/dev/disk/by-partlabel/root-2"],"level":"raid1","name":"md-root"}]}}"##
        ),
    );
}

#[test]
fn boot_device_cex_s390x_eckd_v1_6() {
    check(
        "cex",
        &format!(
            "{H}1.6.0\nboot_device:\n  layout: s390x-eckd\n  luks:\n    device: /dev/dasda\n    cex:\n      enabled: true\n"
        ),
        None,
        r##"{"ignition":{"version":"3.5.0"},"storage":{"filesystems":[{"device":"/dev/mapper/root","format":"xfs","label":"root","wipeFilesystem":true}],"luks":[{"cex":{"enabled":true},"device":"/dev/dasda2","label":"luks-root","name":"root","wipeVolume":true}]}}"##,
    );
}

#[test]
fn yaml_anchors_and_flow_style() {
    check(
        "anchors",
        &format!(
            "{H}1.2.0\npasswd:\n  users:\n    - name: a\n      ssh_authorized_keys: &keys [ssh-ed25519 K1, ssh-ed25519 K2]\n    - {{name: b, ssh_authorized_keys: *keys}}\n"
        ),
        None,
        r##"{"ignition":{"version":"3.2.0"},"passwd":{"users":[{"name":"a","sshAuthorizedKeys":["ssh-ed25519 K1","ssh-ed25519 K2"]},{"name":"b","sshAuthorizedKeys":["ssh-ed25519 K1","ssh-ed25519 K2"]}]}}"##,
    );
}

#[test]
fn trees_follow_filepath_walk_order() {
    // filepath.Walk descends into "a" before visiting "a-b" ('-' sorts before '/').
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("t");
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::write(root.join("a/x"), "1").unwrap();
    std::fs::write(root.join("a-b"), "2").unwrap();
    check(
        "walk order",
        &format!("{H}1.2.0\nstorage:\n  trees:\n    - local: t\n"),
        Some(d.path()),
        r##"{"ignition":{"version":"3.2.0"},"storage":{"files":[{"path":"/a/x","contents":{"compression":"","source":"data:,1"},"mode":420},{"path":"/a-b","contents":{"compression":"","source":"data:,2"},"mode":420}]}}"##,
    );
}
