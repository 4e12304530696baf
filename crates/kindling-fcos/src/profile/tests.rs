//! Unit tests of the automatic and the operator's profiles.

use super::*;

fn spec(release: &str) -> ProfileSpec {
    ProfileSpec {
        track: Track::new("stable", "x86_64").unwrap(),
        release: release.into(),
        kernel: format!("fedora-coreos-{release}-live-kernel.x86_64"),
        initramfs: format!("fedora-coreos-{release}-live-initramfs.x86_64.img"),
        rootfs: format!("fedora-coreos-{release}-live-rootfs.x86_64.img"),
        server_url: "http://10.10.254.200:8080".into(),
    }
}

fn args(b: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(b).unwrap();
    serde_json::from_value(v["boot"]["args"].clone()).unwrap()
}

#[test]
fn new_profile_boots_live_pxe() {
    let out = render(None, &spec("42.1"), &[]).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["id"], "fedora-coreos-stable");
    assert_eq!(
        v["boot"]["kernel"],
        "/assets/fedora-coreos/stable/42.1/fedora-coreos-42.1-live-kernel.x86_64"
    );
    assert_eq!(
        v["boot"]["initrd"],
        json!([
            "--name main /assets/fedora-coreos/stable/42.1/fedora-coreos-42.1-live-initramfs.x86_64.img"
        ])
    );
    assert_eq!(
        args(&out),
        vec![
            "initrd=main",
            "coreos.live.rootfs_url=http://10.10.254.200:8080/assets/fedora-coreos/stable/42.1/fedora-coreos-42.1-live-rootfs.x86_64.img",
            "ignition.firstboot",
            "ignition.platform.id=metal",
            "ignition.config.url=http://10.10.254.200:8080/ignition?mac=${mac:hexhyp}",
        ]
    );
    assert_eq!(
        server_url_of(&out).as_deref(),
        Some("http://10.10.254.200:8080")
    );
    assert_eq!(release_of(&out, &spec("0").track).as_deref(), Some("42.1"));
}

#[test]
fn update_keeps_operator_fields_and_args() {
    let first = render(None, &spec("42.1"), &[]).unwrap();
    let mut v: Value = serde_json::from_slice(&first).unwrap();
    v["ignition_id"] = json!("fs.ign");
    v["x-unknown"] = json!({"a": 1});
    let a = v["boot"]["args"].as_array_mut().unwrap();
    a.insert(2, json!("selinux=0"));
    a.push(json!("systemd.unified_cgroup_hierarchy=0"));
    a.push(json!("foo=/assets/fedora-coreos/stable/42.1/extra"));
    v["boot"]["initrd"]
        .as_array_mut()
        .unwrap()
        .push(json!("--name net /assets/net.cpio"));
    let edited = serde_json::to_vec(&v).unwrap();
    let out = render(Some(&edited), &spec("42.2"), &["42.1".into()]).unwrap();
    let w: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(w["ignition_id"], "fs.ign");
    assert_eq!(w["x-unknown"], json!({"a": 1}));
    assert_eq!(
        w["boot"]["initrd"],
        json!([
            "--name main /assets/fedora-coreos/stable/42.2/fedora-coreos-42.2-live-initramfs.x86_64.img",
            "--name net /assets/net.cpio"
        ])
    );
    let a = args(&out);
    assert!(a.contains(&"selinux=0".to_string()));
    assert!(a.contains(&"systemd.unified_cgroup_hierarchy=0".to_string()));
    assert!(!a.iter().any(|x| x.contains("/42.1/")), "{a:?}");
    assert_eq!(
        a.iter()
            .filter(|x| x.starts_with("coreos.live.rootfs_url="))
            .count(),
        1
    );
    assert_eq!(
        a.iter()
            .filter(|x| x.starts_with("ignition.config.url="))
            .count(),
        1
    );
    // Same input twice: same bytes (no churn for the watcher).
    assert_eq!(
        render(Some(&out), &spec("42.2"), &["42.1".into()]).unwrap(),
        out
    );
}

#[test]
fn broken_existing_profile_is_not_overwritten() {
    assert!(render(Some(b"{not json"), &spec("1"), &[]).is_err());
    assert!(render(Some(b"[1]"), &spec("1"), &[]).is_err());
    assert!(render(Some(br#"{"boot": {"args": "x"}}"#), &spec("1"), &[]).is_err());
}

#[test]
fn server_urls() {
    assert_eq!(
        normalize_server_url("http://a:8080/").unwrap(),
        "http://a:8080"
    );
    assert!(normalize_server_url("a:8080").is_err());
    assert!(normalize_server_url("http://a b").is_err());
    assert!(normalize_server_url("http://").is_err());
}

/// The seed's profile, as the blog post has it.
const SEED: &str = include_str!("../../tests/data/seed-fedora-core-1.json");

#[test]
fn operator_profile_changes_only_what_the_release_owns() {
    assert_eq!(
        operator_server_url(SEED.as_bytes()).as_deref(),
        Some("http://10.10.254.200:8080")
    );
    let out = update_operator(SEED.as_bytes(), &spec("42.1")).unwrap();
    let out = String::from_utf8(out).unwrap();
    let dir = "/assets/fedora-coreos/stable/42.1";
    let want = SEED
            .replace(
                "/assets/fedora-coreos-31.20200407.3.0-live-kernel-x86_64",
                &format!("{dir}/fedora-coreos-42.1-live-kernel.x86_64"),
            )
            .replace(
                "/assets/fedora-coreos-31.20200407.3.0-live-initramfs.x86_64.img",
                &format!("{dir}/fedora-coreos-42.1-live-initramfs.x86_64.img"),
            )
            .replace(
                "${mac:hexhyp}\"]",
                &format!(
                    "${{mac:hexhyp}}\",\n             \"coreos.live.rootfs_url=http://10.10.254.200:8080{dir}/fedora-coreos-42.1-live-rootfs.x86_64.img\"]"
                ),
            );
    assert_eq!(out, want);
    // The next release replaces the same strings, nothing else.
    let again = update_operator(out.as_bytes(), &spec("42.2")).unwrap();
    assert_eq!(
        String::from_utf8(again).unwrap(),
        want.replace("42.1", "42.2")
    );
    // Same release: same bytes.
    assert_eq!(
        update_operator(out.as_bytes(), &spec("42.1")).unwrap(),
        out.as_bytes()
    );
}

#[test]
fn operator_profile_named_initrd_and_escapes_kept() {
    let text = "{\"id\":\"p\",\"x\":\"caf\\u00e9\",\"boot\":{\"args\":[],\"initrd\":[\"--name main /assets/old-live-initramfs.x86_64.img\",\"/assets/extra.cpio\"],\"kernel\":\"/assets/old-live-kernel.x86_64\"}}";
    let out = String::from_utf8(update_operator(text.as_bytes(), &spec("7")).unwrap()).unwrap();
    assert!(out.starts_with("{\"id\":\"p\",\"x\":\"caf\\u00e9\",\"boot\":{\"args\":[\"coreos.live.rootfs_url=http://10.10.254.200:8080/assets/fedora-coreos/stable/7/"), "{out}");
    assert!(out.contains("\"--name main /assets/fedora-coreos/stable/7/fedora-coreos-7-live-initramfs.x86_64.img\",\"/assets/extra.cpio\"]"), "{out}");
}

#[test]
fn operator_profile_refusals() {
    let other_arch = SEED.replace("kernel-x86_64", "kernel-aarch64");
    let e = update_operator(other_arch.as_bytes(), &spec("1")).unwrap_err();
    assert!(e.contains("it boots aarch64"), "{e}");
    let not_fcos = SEED.replace(
        "/assets/fedora-coreos-31.20200407.3.0-live-kernel-x86_64",
        "/assets/vmlinuz",
    );
    let e = update_operator(not_fcos.as_bytes(), &spec("1")).unwrap_err();
    assert!(e.contains("not a Fedora CoreOS live kernel"), "{e}");
    assert!(!boots_fcos_live(not_fcos.as_bytes()));
    assert!(update_operator(b"{\"boot\": {\"kernel\": 1}}", &spec("1")).is_err());
    assert!(update_operator(b"{truncated", &spec("1")).is_err());
    // Duplicate keys: serde_json keeps the last; so does the scanner.
    let dup = "{\"boot\":{\"kernel\":\"/a-live-kernel.x86_64\",\"initrd\":[],\"args\":[],\"kernel\":\"/b-live-kernel.x86_64\"}}";
    let out = String::from_utf8(update_operator(dup.as_bytes(), &spec("1")).unwrap()).unwrap();
    assert!(
        out.contains("\"kernel\":\"/a-live-kernel.x86_64\""),
        "{out}"
    );
}
