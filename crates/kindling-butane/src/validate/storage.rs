//! Storage checks: files, directories and links (paths, modes, owners, links in paths, hard
//! links), disks and partitions, filesystems, LUKS devices and RAID arrays.

use super::checker::{V, arr, clean, j, st};
use serde_json::Value;
use std::collections::HashSet;

/// Files, directories and links, in the order Ignition's `ValidateDups` walks them.
pub(super) fn nodes(v: &mut V, c: &Value) {
    let mut node_seen = HashSet::new();
    // Same order as Ignition's ValidateDups walks Storage's fields.
    for (i, d) in arr(c, "/storage/directories").iter().enumerate() {
        let at = format!("storage.directories.{i}");
        v.path(st(d, "path"), j(&at, "path"));
        v.mode(d, j(&at, "mode"));
        v.owner(d, &at);
        v.dups(std::iter::once((at, st(d, "path"))), &mut node_seen);
    }
    for (i, f) in arr(c, "/storage/files").iter().enumerate() {
        let at = format!("storage.files.{i}");
        v.path(st(f, "path"), j(&at, "path"));
        v.mode(f, j(&at, "mode"));
        v.owner(f, &at);
        if let Some(r) = f.get("contents") {
            v.resource(r, &j(&at, "contents"), false);
        }
        for (k, r) in arr(f, "/append").iter().enumerate() {
            v.resource(r, &j(&at, format!("append.{k}")), true);
        }
        if f.get("overwrite").and_then(Value::as_bool) == Some(true)
            && f.pointer("/contents/source").is_none_or(Value::is_null)
        {
            v.err(
                j(&at, "overwrite"),
                "overwrite must be false if source is unspecified",
            );
        }
        v.dups(std::iter::once((at, st(f, "path"))), &mut node_seen);
    }
    for (i, l) in arr(c, "/storage/links").iter().enumerate() {
        let at = format!("storage.links.{i}");
        v.path(st(l, "path"), j(&at, "path"));
        v.owner(l, &at);
        if v.minor >= 3 && st(l, "target").unwrap_or("").is_empty() {
            v.err(j(&at, "target"), "link target is required");
        }
        v.dups(std::iter::once((at, st(l, "path"))), &mut node_seen);
    }
    let links: Vec<&str> = arr(c, "/storage/links")
        .iter()
        .filter_map(|l| st(l, "path"))
        .collect();
    let dirs: Vec<&str> = arr(c, "/storage/directories")
        .iter()
        .filter_map(|d| st(d, "path"))
        .collect();
    for (k, msg) in [
        ("directories", "directory path includes link in config"),
        ("files", "file path includes link in config"),
        ("links", "link path includes link in config"),
    ] {
        for (i, n) in arr(c, &format!("/storage/{k}")).iter().enumerate() {
            let p = st(n, "path").unwrap_or("");
            if links.iter().any(|l| p.starts_with(&format!("{l}/"))) {
                v.err(format!("storage.{k}.{i}"), msg);
            }
        }
    }
    for (i, l) in arr(c, "/storage/links").iter().enumerate() {
        let Some(target) = st(l, "target").filter(|t| !t.is_empty()) else {
            continue;
        };
        if l.get("hard").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let lp = st(l, "path").unwrap_or("");
        let t = if target.starts_with('/') {
            clean(target)
        } else {
            clean(&format!("{lp}/{target}"))
        };
        if dirs.contains(&t.as_str()) {
            v.err(
                format!("storage.links.{i}"),
                "hard link target is a directory",
            );
        }
        for (o, f) in [
            ("user", "id"),
            ("user", "name"),
            ("group", "id"),
            ("group", "name"),
        ] {
            if l.get(o)
                .and_then(|x| x.get(f))
                .is_some_and(|x| !x.is_null())
                && v.minor >= 3
            {
                v.warn(
                    format!("storage.links.{i}.{o}.{f}"),
                    "user/group ignored for hard link",
                );
            }
        }
    }
}

/// Disks and their partitions.
pub(super) fn disks(v: &mut V, c: &Value) {
    let mut seen = HashSet::new();
    for (i, d) in arr(c, "/storage/disks").iter().enumerate() {
        let at = format!("storage.disks.{i}");
        if st(d, "device").unwrap_or("").is_empty() {
            v.err(j(&at, "device"), "disk device is required");
        }
        v.dups(std::iter::once((at.clone(), st(d, "device"))), &mut seen);
        let mut labels = HashSet::new();
        let mut numbers = HashSet::new();
        for (p, part) in arr(d, "/partitions").iter().enumerate() {
            let pat = j(&at, format!("partitions.{p}"));
            if let Some(l) = st(part, "label") {
                if l.chars().count() > 36 {
                    v.err(
                        j(&pat, "label"),
                        "partition labels may not exceed 36 characters",
                    );
                }
                if !labels.insert(l.to_string()) {
                    v.err(
                        j(&pat, "label"),
                        "cannot use the same partition label twice",
                    );
                }
            }
            if let Some(n) = part.get("number").and_then(Value::as_i64)
                && n != 0
                && !numbers.insert(n)
            {
                v.err(j(&pat, "number"), "partition numbers collide");
            }
            for k in ["guid", "typeGuid"] {
                if let Some(g) = st(part, k)
                    && !g.is_empty()
                    && !is_guid(g)
                {
                    v.err(
                        j(&pat, k),
                        "doesn't match the form \"01234567-89AB-CDEF-EDCB-A98765432101\"",
                    );
                }
            }
        }
    }
}

/// Filesystems: paths, formats and label lengths, and overlaps with disks.
pub(super) fn filesystems(v: &mut V, c: &Value) {
    let mut seen = HashSet::new();
    for (i, fs) in arr(c, "/storage/filesystems").iter().enumerate() {
        let at = format!("storage.filesystems.{i}");
        let device = st(fs, "device").unwrap_or("");
        v.path(Some(device), j(&at, "device"));
        if let Some(p) = st(fs, "path")
            && !p.is_empty()
        {
            v.path(Some(p), j(&at, "path"));
        }
        let nonempty = |k: &str| st(fs, k).is_some_and(|s| !s.is_empty());
        let label = st(fs, "label").unwrap_or("");
        match st(fs, "format") {
            Some("") | None => {
                let others = nonempty("path")
                    || nonempty("label")
                    || nonempty("uuid")
                    || fs.get("wipeFilesystem").and_then(Value::as_bool) == Some(true)
                    || !arr(fs, "/mountOptions").is_empty()
                    || !arr(fs, "/options").is_empty();
                if others {
                    v.err(
                            j(&at, "format"),
                            "format cannot be empty when path, label, uuid, wipeFilesystem, options, or mountOptions is specified",
                        );
                }
                if !label.is_empty() {
                    v.err(
                        j(&at, "label"),
                        "filesystem must specify format if label is specified",
                    );
                }
            }
            Some(f @ ("ext4" | "btrfs" | "xfs" | "vfat" | "swap")) => {
                let (max, msg) = match f {
                    "ext4" => (
                        16,
                        "filesystem labels cannot be longer than 16 characters when using ext4",
                    ),
                    "btrfs" => (
                        256,
                        "filesystem labels cannot be longer than 256 characters when using btrfs",
                    ),
                    "xfs" => (
                        12,
                        "filesystem labels cannot be longer than 12 characters when using xfs",
                    ),
                    "swap" => (
                        15,
                        "filesystem labels cannot be longer than 15 characters when using swap",
                    ),
                    _ => (
                        11,
                        "filesystem labels cannot be longer than 11 characters when using vfat",
                    ),
                };
                if label.len() > max {
                    v.err(j(&at, "label"), msg);
                }
            }
            Some("none") if v.minor >= 2 => {}
            Some(_) => v.err(j(&at, "format"), "invalid filesystem format"),
        }
        if let Some(disk) = arr(c, "/storage/disks")
            .iter()
            .find(|d| st(d, "device") == Some(device))
        {
            if !arr(disk, "/partitions").is_empty() {
                v.warn(j(&at, "device"), "filesystem overwrites partitioned device");
            } else if fs.get("wipeFilesystem").and_then(Value::as_bool) != Some(true)
                && disk.get("wipeTable").and_then(Value::as_bool) == Some(true)
            {
                v.warn(
                    j(&at, "device"),
                    "device matches disk with wipeTable enabled; filesystem will be wiped",
                );
            }
        }
        v.dups(std::iter::once((at, st(fs, "device"))), &mut seen);
    }
}

/// LUKS devices: names, labels, key files and Tang servers.
pub(super) fn luks(v: &mut V, c: &Value) {
    let mut seen = HashSet::new();
    for (i, l) in arr(c, "/storage/luks").iter().enumerate() {
        let at = format!("storage.luks.{i}");
        let name = st(l, "name");
        if name.is_some_and(|n| n.contains('/')) {
            v.err(j(&at, "name"), "device names cannot contain slashes");
        }
        if st(l, "label").is_some_and(|n| n.chars().count() > 47) {
            v.err(
                j(&at, "label"),
                "luks device labels cannot be longer than 47 characters",
            );
        }
        if let Some(k) = l.get("keyFile") {
            v.resource(k, &j(&at, "keyFile"), false);
        }
        for (t, tang) in arr(l, "/clevis/tang").iter().enumerate() {
            let tat = j(&at, format!("clevis.tang.{t}"));
            match st(tang, "url") {
                Some(u) if !u.is_empty() => {
                    if !url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                        v.err(j(&tat, "url"), "invalid url scheme");
                    }
                }
                _ => v.err(j(&tat, "url"), "unable to parse url"),
            }
            if v.minor >= 3 && st(tang, "thumbprint").unwrap_or("").is_empty() {
                v.err(j(&tat, "thumbprint"), "thumbprint is required");
            }
        }
        v.dups(std::iter::once((at, name)), &mut seen);
    }
}

/// RAID arrays: levels and devices.
pub(super) fn raid(v: &mut V, c: &Value) {
    let mut seen = HashSet::new();
    for (i, r) in arr(c, "/storage/raid").iter().enumerate() {
        let at = format!("storage.raid.{i}");
        match st(r, "level") {
            None | Some("") => v.err(j(&at, "level"), "raid level is required"),
            Some("linear" | "raid0" | "raid1" | "raid4" | "raid5" | "raid6" | "raid10") => {}
            Some(_) => v.err(j(&at, "level"), "unrecognized raid level"),
        }
        if arr(r, "/devices").is_empty() {
            v.err(j(&at, "devices"), "raid devices required");
        }
        v.dups(std::iter::once((at, st(r, "name"))), &mut seen);
    }
}

fn is_guid(g: &str) -> bool {
    let b = g.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}
