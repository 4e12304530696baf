//! `boot_device` (LUKS with TPM2/Tang, mirroring; fcos >= 1.3.0) and `grub.users` (fcos >= 1.5.0)
//! desugaring, following the partition layout Butane documents.

use crate::merge::merge;
use crate::report::{Report, Severity};
use crate::yaml::{self, Kind, Node, Pos, get};
use serde_json::{Value, json};
use std::collections::HashMap;

const RESERVED_TYPE_GUID: &str = "8DA63339-0007-60C0-C436-083AC8230908";
const BIOS_TYPE_GUID: &str = "21686148-6449-6E6F-744E-656564454649";
const PREP_TYPE_GUID: &str = "9E1A2D38-C612-4316-AA26-8B49521E5A8B";
const ESP_TYPE_GUID: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

fn key_pos(n: &Node, key: &str) -> Option<Pos> {
    match &n.kind {
        Kind::Map(items) => items
            .iter()
            .find(|(k, _)| k.text == key)
            .map(|(k, _)| k.pos),
        _ => None,
    }
}
fn s(n: Option<&Node>) -> Option<String> {
    match n.map(|n| &n.kind) {
        Some(Kind::Scalar { text, .. }) => Some(text.clone()),
        _ => None,
    }
}
fn b(n: Option<&Node>) -> Option<bool> {
    match n.map(|n| &n.kind) {
        Some(Kind::Scalar { text, .. }) => yaml::parse_bool(text),
        _ => None,
    }
}
fn i(n: Option<&Node>) -> Option<i64> {
    match n.map(|n| &n.kind) {
        Some(Kind::Scalar { text, .. }) => yaml::parse_int(text),
        _ => None,
    }
}
fn list(n: Option<&Node>) -> Vec<&Node> {
    match n.map(|n| &n.kind) {
        Some(Kind::Seq(items)) => items.iter().collect(),
        _ => Vec::new(),
    }
}

/// Desugars `boot_device` into `out` (Butane's `processBootDevice`).
pub(crate) fn process(
    report: &mut Report,
    out: &mut Value,
    bd: &Node,
    minor: u8,
    origins: &mut HashMap<String, (String, Pos)>,
) {
    let layout = s(get(bd, "layout"));
    let luks = get(bd, "luks");
    let mirror = get(bd, "mirror");
    let devices: Vec<String> = list(mirror.and_then(|m| get(m, "devices")))
        .into_iter()
        .filter_map(|n| s(Some(n)))
        .collect();
    let tang = list(luks.and_then(|l| get(l, "tang")));
    let tpm2 = b(luks.and_then(|l| get(l, "tpm2"))).unwrap_or(false);
    let cex = b(luks
        .and_then(|l| get(l, "cex"))
        .and_then(|c| get(c, "enabled")))
    .unwrap_or(false);
    let luks_device = s(luks.and_then(|l| get(l, "device")));

    // Validation (fcos validate.go).
    let lpos = key_pos(bd, "layout").unwrap_or(bd.pos);
    if !devices.is_empty() && layout.is_none() {
        report.push(
            Severity::Warning,
            "boot_device.layout should be specified when boot_device.mirror is specified",
            "boot_device.mirror",
            key_pos(bd, "mirror"),
        );
    }
    if let Some(l) = &layout {
        let legacy = minor < 6;
        match l.as_str() {
            "aarch64" | "ppc64le" | "x86_64" => {}
            "s390x-eckd" | "s390x-zfcp" | "s390x-virt" if !legacy => {
                if l != "s390x-virt" {
                    match &luks_device {
                        None => report.push(
                            Severity::Error,
                            "device is required for layouts: s390x-eckd, s390x-zfcp",
                            "boot_device.layout",
                            Some(lpos),
                        ),
                        Some(d) => {
                            let prefix = if l == "s390x-eckd" {
                                "/dev/dasd"
                            } else {
                                "/dev/sd"
                            };
                            let ok = d.strip_prefix(prefix).is_some_and(|r| {
                                r.len() == 1 && r.as_bytes()[0].is_ascii_lowercase()
                            });
                            if !ok {
                                report.push(Severity::Error, "device name must start with /dev/dasd on s390x-eckd layout or /dev/sd on s390x-zfcp layout", "boot_device.layout", Some(lpos));
                            }
                        }
                    }
                }
                if !devices.is_empty() {
                    report.push(
                        Severity::Error,
                        "mirroring not supported on layouts: s390x-eckd, s390x-zfcp, s390x-virt",
                        "boot_device.layout",
                        Some(lpos),
                    );
                }
            }
            _ => {
                let msg = if legacy {
                    "layout must be one of: aarch64, ppc64le, x86_64"
                } else {
                    "layout must be one of: aarch64, ppc64le, s390x-eckd, s390x-virt, s390x-zfcp, x86_64"
                };
                report.push(Severity::Error, msg, "boot_device.layout", Some(lpos));
            }
        }
    }
    if devices.len() == 1 {
        let pos = mirror.and_then(|m| key_pos(m, "devices"));
        report.push(
            Severity::Error,
            "mirroring requires at least two devices",
            "boot_device.mirror.devices",
            pos,
        );
    }
    if cex {
        if layout.as_deref().is_none_or(|l| !l.starts_with("s390x")) {
            report.push(
                Severity::Error,
                "when using cex the targeted architecture must match s390x",
                "boot_device.layout",
                Some(lpos),
            );
        }
        if !tang.is_empty() || tpm2 {
            report.push(
                Severity::Error,
                "cannot use cex with clevis",
                "boot_device.luks",
                key_pos(bd, "luks"),
            );
        }
    }
    if report.has_errors() {
        return;
    }

    let want_luks = tpm2 || !tang.is_empty() || cex;
    let want_mirror = !devices.is_empty();
    if !want_luks && !want_mirror {
        return;
    }
    let (bios, efi, prep) = match layout.as_deref() {
        None | Some("x86_64") => (true, true, false),
        Some("aarch64") => (false, true, false),
        Some("ppc64le") => (false, false, true),
        _ => (false, false, false),
    };
    let mut disks = Vec::new();
    let mut filesystems = Vec::new();
    let mut raid = Vec::new();
    if want_mirror {
        for (idx, dev) in devices.iter().enumerate() {
            let n = idx + 1;
            let mut parts = Vec::new();
            if bios {
                parts.push(
                    json!({"label": format!("bios-{n}"), "sizeMiB": 1, "typeGuid": BIOS_TYPE_GUID}),
                );
            } else if prep {
                parts.push(
                    json!({"label": format!("prep-{n}"), "sizeMiB": 4, "typeGuid": PREP_TYPE_GUID}),
                );
            } else {
                parts.push(json!({"label": format!("reserved-{n}"), "sizeMiB": 1, "typeGuid": RESERVED_TYPE_GUID}));
            }
            if efi {
                parts.push(
                    json!({"label": format!("esp-{n}"), "sizeMiB": 127, "typeGuid": ESP_TYPE_GUID}),
                );
            } else {
                parts.push(json!({"label": format!("reserved-{n}"), "sizeMiB": 1, "typeGuid": RESERVED_TYPE_GUID}));
            }
            parts.push(json!({"label": format!("boot-{n}"), "sizeMiB": 384}));
            parts.push(json!({"label": format!("root-{n}")}));
            origins
                .entry(format!("storage.disks.{idx}"))
                .or_insert(("boot_device.mirror.devices".into(), bd.pos));
            disks.push(json!({"device": dev, "partitions": parts, "wipeTable": true}));
            if efi {
                filesystems.push(json!({"device": format!("/dev/disk/by-partlabel/esp-{n}"), "format": "vfat", "label": format!("esp-{n}"), "wipeFilesystem": true}));
            }
        }
        let devs = |p: &str| -> Vec<String> {
            (1..=devices.len())
                .map(|i| format!("/dev/disk/by-partlabel/{p}-{i}"))
                .collect()
        };
        raid.push(json!({"devices": devs("boot"), "level": "raid1", "name": "md-boot", "options": ["--metadata=1.0"]}));
        raid.push(json!({"devices": devs("root"), "level": "raid1", "name": "md-root"}));
        filesystems.push(json!({"device": "/dev/md/md-boot", "format": "ext4", "label": "boot", "wipeFilesystem": true}));
    }
    let mut luks_out = Vec::new();
    if want_luks {
        let dev = match layout.as_deref() {
            Some("s390x-eckd") => format!("{}2", luks_device.clone().unwrap_or_default()),
            Some("s390x-zfcp") => format!("{}4", luks_device.clone().unwrap_or_default()),
            _ if want_mirror => "/dev/md/md-root".into(),
            _ => "/dev/disk/by-partlabel/root".into(),
        };
        let mut l = serde_json::Map::new();
        if cex {
            l.insert("cex".into(), json!({"enabled": true}));
        } else {
            let mut clevis = serde_json::Map::new();
            let tangs: Vec<Value> = tang
                .iter()
                .map(|t| {
                    let mut m = serde_json::Map::new();
                    if minor >= 5
                        && let Some(a) = s(get(t, "advertisement"))
                    {
                        m.insert("advertisement".into(), json!(a));
                    }
                    if let Some(tp) = s(get(t, "thumbprint")) {
                        m.insert("thumbprint".into(), json!(tp));
                    }
                    if let Some(u) = s(get(t, "url")).filter(|u| !u.is_empty()) {
                        m.insert("url".into(), json!(u));
                    }
                    Value::Object(m)
                })
                .collect();
            if !tangs.is_empty() {
                clevis.insert("tang".into(), Value::Array(tangs));
            }
            if let Some(th) = i(luks.and_then(|l| get(l, "threshold"))) {
                clevis.insert("threshold".into(), json!(th));
            }
            if let Some(t) = b(luks.and_then(|l| get(l, "tpm2"))) {
                clevis.insert("tpm2".into(), json!(t));
            }
            l.insert("clevis".into(), Value::Object(clevis));
        }
        l.insert("device".into(), json!(dev));
        if minor >= 5
            && let Some(d) = b(luks.and_then(|l| get(l, "discard")))
        {
            l.insert("discard".into(), json!(d));
        }
        l.insert("label".into(), json!("luks-root"));
        l.insert("name".into(), json!("root"));
        l.insert("wipeVolume".into(), json!(true));
        origins
            .entry("storage.luks.0".into())
            .or_insert(("boot_device.luks".into(), bd.pos));
        luks_out.push(Value::Object(l));
    }
    let root_dev = if want_luks {
        "/dev/mapper/root"
    } else {
        "/dev/md/md-root"
    };
    filesystems.push(
        json!({"device": root_dev, "format": "xfs", "label": "root", "wipeFilesystem": true}),
    );
    let mut storage = serde_json::Map::new();
    if !disks.is_empty() {
        storage.insert("disks".into(), Value::Array(disks));
    }
    storage.insert("filesystems".into(), Value::Array(filesystems));
    if !luks_out.is_empty() {
        storage.insert("luks".into(), Value::Array(luks_out));
    }
    if !raid.is_empty() {
        storage.insert("raid".into(), Value::Array(raid));
    }
    let mut rendered = json!({"storage": Value::Object(storage)});
    merge(&mut rendered, std::mem::take(out), "");
    *out = rendered;
}

/// Desugars `grub.users` (Butane's `handleUserGrubCfg`).
pub(crate) fn grub(report: &mut Report, out: &mut Value, g: &Node, no_comp: bool) {
    let users = list(get(g, "users"));
    if users.is_empty() {
        return;
    }
    let mut names = Vec::new();
    let mut cmds = Vec::new();
    for (idx, u) in users.iter().enumerate() {
        let name = s(get(u, "name")).unwrap_or_default();
        let hash = s(get(u, "password_hash")).unwrap_or_default();
        if name.is_empty() {
            report.push(
                Severity::Error,
                "field \"name\" is required",
                format!("grub.users.{idx}.name"),
                Some(u.pos),
            );
        }
        if hash.is_empty() {
            report.push(
                Severity::Error,
                "field \"password_hash\" is required",
                format!("grub.users.{idx}.password_hash"),
                Some(u.pos),
            );
        }
        cmds.push(format!("password_pbkdf2 {name} {hash}"));
        names.push(name);
    }
    if report.has_errors() {
        return;
    }
    let cfg = format!(
        "# Generated by Butane\n\nset superusers=\"{}\"\n{}\n",
        names.join(" "),
        cmds.join("\n")
    );
    let d = crate::dataurl::make_data_url(cfg.as_bytes(), None, !no_comp);
    let mut res = serde_json::Map::new();
    if let Some(c) = d.compression {
        res.insert("compression".into(), json!(c));
    }
    res.insert("source".into(), json!(d.url));
    let mut rendered = json!({"storage": {
        "files": [{"path": "/boot/grub2/user.cfg", "append": [Value::Object(res)]}],
        "filesystems": [{"device": "/dev/disk/by-label/boot", "format": "ext4", "path": "/boot"}],
    }});
    merge(&mut rendered, std::mem::take(out), "");
    *out = rendered;
}
