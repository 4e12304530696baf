//! systemd sugar: `contents_local` of units and drop-ins, and the mount and swap units that
//! filesystems with `with_mount_unit` get.

use super::ctx::{Ctx, Fields, MountReq, Sugar, join};
use crate::merge::merge;
use serde_json::{Value, json};

const ERR_SYSTEMD_SOURCES: &str = "only one of the following can be set: contents, contents_local";

/// `contents_local` of a unit or drop-in.
pub(super) fn contents_local(ctx: &mut Ctx<'_>, out: &mut Fields, sugar: &Sugar<'_>) {
    let (ypath, jpath) = (sugar.ypath, sugar.jpath);
    if let Some((Some(Value::String(local)), pos)) = sugar.get("contents_local") {
        let yp = join(ypath, "contents_local");
        if out.contains_key("contents") {
            ctx.err(ERR_SYSTEMD_SOURCES, &yp, pos);
        } else if let Some(data) = ctx.read_local(&local, &yp, pos) {
            out.insert(
                "contents",
                Value::String(String::from_utf8_lossy(&data).into_owned()),
            );
            ctx.origin(&join(jpath, "contents"), &yp, pos);
        }
    }
}

/// `with_mount_unit` of a filesystem: checks it and records the unit to generate.
pub(super) fn with_mount_unit(ctx: &mut Ctx<'_>, out: &Fields, sugar: &Sugar<'_>) {
    let ypath = sugar.ypath;
    if let Some((Some(Value::Bool(true)), pos)) = sugar.get("with_mount_unit") {
        let format = out
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let path = out.get("path").and_then(Value::as_str).map(str::to_string);
        // Missing fields are reported at the filesystem entry, present ones at
        // their key (like vcontext's marker fallback).
        let at = |k: &str| sugar.get(k).map(|v| v.1).unwrap_or(sugar.pos);
        let no_path = path.as_deref().unwrap_or("").is_empty();
        const NO_FORMAT: &str = "format is required if with_mount_unit is true";
        const NO_PATH: &str = "path is required if with_mount_unit is true and format is not swap";
        if ctx.minor < 4 && (no_path || format.is_empty()) {
            // base v0_2/v0_3 check both, path first.
            if no_path {
                ctx.err(NO_PATH, &join(ypath, "path"), at("path"));
            }
            if format.is_empty() {
                ctx.err(NO_FORMAT, &join(ypath, "format"), at("format"));
            }
        } else if format.is_empty() {
            ctx.err(NO_FORMAT, &join(ypath, "format"), at("format"));
        } else if format != "swap" && no_path {
            ctx.err(NO_PATH, &join(ypath, "path"), at("path"));
        } else {
            if ctx.minor >= 6
                && let Some(p) = &path
                && !(p == "/etc" || p == "/var" || p.starts_with("/etc/") || p.starts_with("/var/"))
            {
                ctx.err(
                    "path must be under /etc or /var if with_mount_unit is true",
                    &join(ypath, "path"),
                    at("path"),
                );
            }
            ctx.mounts.push(MountReq {
                ypath: join(ypath, "with_mount_unit"),
                pos,
                device: out
                    .get("device")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                format,
                path,
                mount_options: out
                    .get("mountOptions")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
}

/// Adds the recorded mount units under the user's config (the rendered units are the parent,
/// the user's config the child).
pub(super) fn add_mount_units(ctx: &mut Ctx<'_>, out: &mut Value) {
    if !ctx.mounts.is_empty() {
        let luks_remote: Vec<String> = out
            .pointer("/storage/luks")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|l| {
                        l.pointer("/clevis/tang")
                            .and_then(Value::as_array)
                            .is_some_and(|t| !t.is_empty())
                    })
                    .filter_map(|l| l.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut units = Vec::new();
        for m in &ctx.mounts {
            let remote = luks_remote.iter().any(|n| {
                m.device == format!("/dev/mapper/{n}")
                    || m.device == format!("/dev/disk/by-id/dm-name-{n}")
            });
            let jp = format!("systemd.units.{}", units.len());
            ctx.origins.entry(jp).or_insert((m.ypath.clone(), m.pos));
            units.push(mount_unit(m, ctx.minor, remote));
        }
        let mut rendered = json!({"systemd": {"units": units}});
        merge(&mut rendered, std::mem::take(out), "");
        *out = rendered;
    }
}

/// systemd's path escaping (`systemd-escape --path`, go-systemd `UnitNamePathEscape`).
pub fn unit_name_path_escape(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    let trimmed = parts.join("/");
    if trimmed.is_empty() {
        return "-".into();
    }
    let mut out = String::new();
    for (i, b) in trimmed.bytes().enumerate() {
        if b == b'/' {
            out.push('-');
        } else if (b == b'.' && i == 0)
            || !(b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'.')
        {
            out.push_str(&format!("\\x{b:02x}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

fn mount_unit(m: &MountReq, minor: u8, remote: bool) -> Value {
    let swap = minor >= 4 && m.format == "swap";
    let esc = unit_name_path_escape(&m.device);
    let mut opts: Vec<String> = m.mount_options.clone();
    let remote = remote && minor >= 2;
    if remote {
        opts.push("_netdev".into());
    }
    let options = if opts.is_empty() {
        String::new()
    } else {
        format!("\nOptions={}", opts.join(","))
    };
    let (name, contents) = if swap {
        (
            format!("{esc}.swap"),
            format!(
                "# Generated by Butane\n[Swap]\nWhat={}{}\n\n[Install]\nRequiredBy=swap.target",
                m.device, options
            ),
        )
    } else {
        let path = m.path.clone().unwrap_or_default();
        (
            format!("{}.mount", unit_name_path_escape(&path)),
            format!(
                "# Generated by Butane\n[Unit]\nRequires=systemd-fsck@{esc}.service\nAfter=systemd-fsck@{esc}.service\n\n[Mount]\nWhere={path}\nWhat={}\nType={}{}\n\n[Install]\nRequiredBy={}",
                m.device,
                m.format,
                options,
                if remote {
                    "remote-fs.target"
                } else {
                    "local-fs.target"
                }
            ),
        )
    };
    json!({"contents": contents, "enabled": true, "name": name})
}
