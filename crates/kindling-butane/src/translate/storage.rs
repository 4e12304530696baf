//! Storage checks of the translated config: octal-looking decimal modes of files and
//! directories, the partition layout warnings of fcos, and flatcar's refusal of Clevis.

use super::ctx::{Ctx, Fields, Sugar, join};
use super::origins::nearest_origin;
use crate::report::Severity;
use serde_json::Value;

const ERR_DECIMAL_MODE: &str =
    "unreasonable mode would be reasonable if specified in octal; remember to add a leading zero";

/// Warns about a file or directory mode that is only reasonable read as octal.
pub(super) fn check_mode(ctx: &mut Ctx<'_>, out: &Fields, sugar: &Sugar<'_>, directory: bool) {
    if let Some(Value::Number(n)) = out.get("mode")
        && let Some(m) = n.as_i64()
        && decimal_mode_suspicious(m, directory)
    {
        let pos = sugar.get("mode").map(|v| v.1).unwrap_or(sugar.pos);
        ctx.warn(ERR_DECIMAL_MODE, &join(sugar.ypath, "mode"), pos);
    }
}

/// Butane's `CheckForDecimalMode`.
pub fn decimal_mode_suspicious(mode: i64, directory: bool) -> bool {
    if !(0..=7777).contains(&mode) {
        return false;
    }
    let mut corrected = 0i64;
    let mut divisor = 1000;
    while divisor > 0 {
        let digit = (mode / divisor) % 10;
        if digit > 7 {
            return false;
        }
        corrected = (corrected << 3) | digit;
        divisor /= 10;
    }
    !typical_mode(mode, directory) && typical_mode(corrected, directory)
}

fn typical_mode(mode: i64, directory: bool) -> bool {
    if mode == 0 {
        return true;
    }
    let perms = [mode & 0o7, (mode & 0o70) >> 3, (mode & 0o700) >> 6];
    let (mut had_r, mut had_w, mut had_x) = (false, false, false);
    for perm in perms {
        let r = perm & 4 != 0;
        let w = perm & 2 != 0;
        let x = perm & 1 != 0;
        if (!r && had_r) || (!w && had_w) || (!x && had_x) {
            return false;
        }
        if x && had_r && !had_x {
            return false;
        }
        if (w || x) && !r {
            return false;
        }
        had_r |= r;
        had_w |= w;
        had_x |= x;
    }
    if !had_r {
        return false;
    }
    if directory {
        if !had_x || mode & 0o4000 != 0 || (mode & 0o3000 != 0 && !had_w) {
            return false;
        }
    } else {
        if mode & 0o6000 != 0 && (!had_x || mode & 2 != 0) {
            return false;
        }
        if mode & 0o1000 != 0 {
            return false;
        }
    }
    true
}

/// flatcar has no Clevis: each LUKS device that sets it is an error.
pub(super) fn reject_clevis(ctx: &mut Ctx<'_>, out: &Value) {
    for (i, l) in out
        .pointer("/storage/luks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if l.get("clevis").is_some() {
            let jp = format!("storage.luks.{i}.clevis");
            let (yp, pos) = nearest_origin(&ctx.origins, &jp).unwrap_or((jp.clone(), (1, 1)));
            ctx.err("clevis is not supported in this spec version", &yp, pos);
        }
    }
}

/// Butane's fcos partition warnings: root size and growth, reserved labels with other
/// numbers, and (fcos >= 1.6) partitions reused by label.
pub(super) fn partition_warnings(ctx: &mut Ctx<'_>, out: &Value) {
    let Some(disks) = out.pointer("/storage/disks").and_then(Value::as_array) else {
        return;
    };
    let mut warns = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        let wipe = disk
            .get("wipeTable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let parts = disk
            .get("partitions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (p, part) in parts.iter().enumerate() {
            let Some(label) = part.get("label").and_then(Value::as_str) else {
                continue;
            };
            let number = part.get("number").and_then(Value::as_i64).unwrap_or(0);
            let base = format!("storage.disks.{i}.partitions.{p}");
            if ctx.minor >= 3 && label == "root" {
                let size = part.get("sizeMiB").and_then(Value::as_i64).unwrap_or(0);
                if size == 0 {
                    let constrained = parts.iter().enumerate().any(|(idx, o)| {
                        idx != p && o.get("startMiB").and_then(Value::as_i64).unwrap_or(0) == 0
                    });
                    if constrained {
                        warns.push((format!("{base}.label"), "root partition cannot expand; it is set to fill available space but is followed by an auto-positioned partition"));
                    }
                } else if size < 8192 {
                    warns.push((
                        format!("{base}.sizeMiB"),
                        "root should have 8GiB of space assigned",
                    ));
                }
            }
            if !wipe {
                let wrong = matches!((label, number), ("BIOS-BOOT", n) | ("PowerPC-PReP-boot", n) if n != 1)
                    || (label == "EFI-SYSTEM" && number != 2)
                    || (label == "boot" && number != 3)
                    || (label == "root" && number != 4);
                if wrong {
                    warns.push((format!("{base}.label"), "incorrect partition number; a new partition will be created using reserved label"));
                }
            }
        }
        if ctx.minor >= 6 {
            let device = disk.get("device").and_then(Value::as_str).unwrap_or("");
            if device != "/dev/disk/by-id/coreos-boot-disk" && !wipe {
                for (p, part) in parts.iter().enumerate() {
                    if part.get("number").is_none() && part.get("label").is_some() {
                        warns.push((format!("storage.disks.{i}.partitions.{p}.number"), "partitions cannot be reused by label; number must be specified except on boot disk (/dev/disk/by-id/coreos-boot-disk) or when wipe_table is true"));
                    }
                }
            }
        }
    }
    for (jp, msg) in warns {
        let (yp, pos) = nearest_origin(&ctx.origins, &jp).unwrap_or((jp.clone(), (0, 0)));
        ctx.report.push(
            Severity::Warning,
            msg,
            yp,
            if pos == (0, 0) { None } else { Some(pos) },
        );
    }
}
