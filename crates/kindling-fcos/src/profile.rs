//! The live-PXE profile `profiles/fedora-coreos-<stream>.json`.
//!
//! Written with serde_json values so that every field Kindling does not
//! manage (name, ignition_id, generic_id, metadata, unknown fields) survives an
//! update, and atomically (temporary file + rename) so that the server's
//! watcher sees the old profile or the new one, never a mix.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::FcosError;

/// What a profile boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSpec {
    pub stream: String,
    pub release: String,
    pub kernel: String,
    pub initramfs: String,
    pub rootfs: String,
    /// `http://host:port` the machines reach this server on (no trailing `/`).
    pub server_url: String,
}

/// The profile id for a stream: `fedora-coreos-<stream>`.
pub fn profile_id(stream: &str) -> String {
    format!("fedora-coreos-{stream}")
}

/// `<data_dir>/profiles/fedora-coreos-<stream>.json`.
pub fn profile_path(data_dir: &Path, stream: &str) -> PathBuf {
    data_dir
        .join("profiles")
        .join(format!("{}.json", profile_id(stream)))
}

/// URL path of a release's asset directory: `/assets/fedora-coreos/<stream>/<release>`.
pub fn asset_path(stream: &str, release: &str) -> String {
    format!("/assets/fedora-coreos/{stream}/{release}")
}

/// Checks and normalises a server URL (`http://10.0.0.1:8080`). It ends up in
/// a kernel command line that Linux (not iPXE) fetches the rootfs with, so it
/// must be an http(s) URL without spaces or quotes.
pub fn normalize_server_url(s: &str) -> Result<String, FcosError> {
    let t = s.trim().trim_end_matches('/');
    let rest = t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("https://"));
    let ok = match rest {
        Some(r) => {
            !r.is_empty()
                && !r
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b == b'"' || b == b'\'' || b < 0x20)
        }
        None => false,
    };
    if ok {
        Ok(t.to_string())
    } else {
        Err(FcosError::Invalid {
            what: "server URL",
            value: s.to_string(),
            why: "expected http://host:port (no spaces or quotes)",
        })
    }
}

/// The server URL an existing profile's `coreos.live.rootfs_url` points at
/// (used when none is configured, so a plain `kindling fcos pull` keeps it).
pub fn server_url_of(profile: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(profile).ok()?;
    let args = v.get("boot")?.get("args")?.as_array()?;
    args.iter().filter_map(Value::as_str).find_map(|a| {
        let url = a.strip_prefix("coreos.live.rootfs_url=")?;
        let i = url.find("/assets/")?;
        url.get(..i).map(str::to_string)
    })
}

/// The release the profile's kernel points at, if it is one of ours.
pub fn release_of(profile: &[u8], stream: &str) -> Option<String> {
    let v: Value = serde_json::from_slice(profile).ok()?;
    let kernel = v.get("boot")?.get("kernel")?.as_str()?;
    let rest = kernel.strip_prefix(&format!(
        "{}/",
        asset_path(stream, "").trim_end_matches('/')
    ))?;
    rest.split_once('/').map(|(r, _)| r.to_string())
}

const MANAGED_REPLACED: [&str; 2] = ["initrd=", "coreos.live.rootfs_url="];

/// Renders the profile: a new one when `existing` is `None`, else `existing`
/// updated. `known_releases` are releases of this stream whose asset paths
/// may appear in old arguments and initrds (they are dropped).
pub fn render(
    existing: Option<&[u8]>,
    spec: &ProfileSpec,
    known_releases: &[String],
) -> Result<Vec<u8>, String> {
    let dir = asset_path(&spec.stream, &spec.release);
    let kernel = format!("{dir}/{}", spec.kernel);
    let main_initrd = format!("--name main {dir}/{}", spec.initramfs);
    let rootfs_arg = format!(
        "coreos.live.rootfs_url={}{dir}/{}",
        spec.server_url, spec.rootfs
    );
    let ignition_url = format!(
        "ignition.config.url={}/ignition?mac=${{mac:hexhyp}}",
        spec.server_url
    );

    let mut obj: Map<String, Value> = match existing {
        None => {
            let mut m = Map::new();
            m.insert("id".into(), json!(profile_id(&spec.stream)));
            m.insert(
                "name".into(),
                json!(format!("Fedora CoreOS {} (live PXE)", spec.stream)),
            );
            m
        }
        Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err("not a JSON object".into()),
            Err(e) => {
                return Err(format!(
                    "not valid JSON: {e}; repair it or delete it (the next pull writes a new one)"
                ));
            }
        },
    };
    if obj
        .get("id")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        obj.insert("id".into(), json!(profile_id(&spec.stream)));
    }

    let mut stale: BTreeSet<String> = known_releases
        .iter()
        .map(|r| format!("{}/", asset_path(&spec.stream, r)))
        .collect();
    if let Some(b) = existing
        && let Some(r) = release_of(b, &spec.stream)
    {
        stale.insert(format!("{}/", asset_path(&spec.stream, &r)));
    }
    let points_at_release = |s: &str| stale.iter().any(|p| s.contains(p.as_str()));

    let mut boot: Map<String, Value> = match obj.remove("boot") {
        Some(Value::Object(b)) => b,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err("\"boot\" is not an object".into()),
    };
    let old_args = string_list(&boot, "args")?;
    let old_initrd = string_list(&boot, "initrd")?;

    // Arguments: ours replaced in place, stale ones dropped, the operator's kept.
    let mut args: Vec<String> = Vec::new();
    let (mut have_initrd, mut have_rootfs) = (false, false);
    let (mut have_firstboot, mut have_platform, mut have_config) = (false, false, false);
    for a in old_args {
        if a.starts_with(MANAGED_REPLACED[0]) {
            if !have_initrd {
                args.push("initrd=main".into());
                have_initrd = true;
            }
        } else if a.starts_with(MANAGED_REPLACED[1]) {
            if !have_rootfs {
                args.push(rootfs_arg.clone());
                have_rootfs = true;
            }
        } else if points_at_release(&a) {
            continue;
        } else {
            // The operator may tune these (ignition.platform.id=qemu for VMs,
            // another Ignition URL): kept as they are.
            have_firstboot |= a == "ignition.firstboot";
            have_platform |= a.starts_with("ignition.platform.id=");
            have_config |= a.starts_with("ignition.config.url=");
            args.push(a);
        }
    }
    let mut front = Vec::new();
    if !have_initrd {
        front.push("initrd=main".to_string());
    }
    if !have_rootfs {
        front.push(rootfs_arg);
    }
    args.splice(0..0, front);
    if !have_firstboot {
        args.push("ignition.firstboot".into());
    }
    if !have_platform {
        args.push("ignition.platform.id=metal".into());
    }
    if !have_config {
        args.push(ignition_url);
    }

    // Initrds: ours first, the operator's extra ones (not of a release) kept.
    let mut initrd = vec![main_initrd];
    initrd.extend(
        old_initrd
            .into_iter()
            .filter(|i| !i.starts_with("--name main ") && !points_at_release(i)),
    );

    boot.insert("kernel".into(), json!(kernel));
    boot.insert("initrd".into(), json!(initrd));
    boot.insert("args".into(), json!(args));
    obj.insert("boot".into(), Value::Object(boot));
    let mut out = serde_json::to_vec_pretty(&Value::Object(obj)).map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}

/// Checks that the stream's existing profile (if any) can be updated: it
/// must parse as JSON and have the shape [`render`] updates. Run before
/// anything is downloaded, so a broken profile fails a pull at once, naming
/// the file and (for bad JSON) the line and column.
pub fn check_existing(data_dir: &Path, stream: &str) -> Result<(), FcosError> {
    let path = profile_path(data_dir, stream);
    let existing = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(FcosError::io(&path, e)),
    };
    let probe = ProfileSpec {
        stream: stream.to_string(),
        release: "0".into(),
        kernel: "k".into(),
        initramfs: "i".into(),
        rootfs: "r".into(),
        server_url: "http://localhost".into(),
    };
    render(Some(&existing), &probe, &[])
        .map(|_| ())
        .map_err(|why| FcosError::Profile { path, why })
}

/// Renders and writes the profile atomically. Returns its path.
pub fn write(
    data_dir: &Path,
    spec: &ProfileSpec,
    known_releases: &[String],
) -> Result<PathBuf, FcosError> {
    let path = profile_path(data_dir, &spec.stream);
    let existing = match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(FcosError::io(&path, e)),
    };
    let bytes =
        render(existing.as_deref(), spec, known_releases).map_err(|why| FcosError::Profile {
            path: path.clone(),
            why,
        })?;
    if existing.as_deref() == Some(&bytes[..]) {
        return Ok(path);
    }
    crate::fsutil::write_atomic(&path, &bytes)?;
    Ok(path)
}

/// A `boot.<key>` list of strings (absent or null: empty).
fn string_list(boot: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match boot.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("boot.{key} holds a non-string"))
            })
            .collect(),
        Some(_) => Err(format!("boot.{key} is not a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(release: &str) -> ProfileSpec {
        ProfileSpec {
            stream: "stable".into(),
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
        assert_eq!(release_of(&out, "stable").as_deref(), Some("42.1"));
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
}
