//! systemd checks: unit and drop-in names, unit file syntax (go-systemd's parser, with its
//! messages), enabled units without `[Install]`, and storage paths that collide with units.

use super::checker::{V, arr, j, st};
use serde_json::Value;
use std::collections::HashSet;

/// Units and drop-ins, then (spec >= 3.1) storage nodes at their paths.
pub(super) fn units(v: &mut V, c: &Value) {
    let mut seen = HashSet::new();
    let mut unit_paths = HashSet::new();
    for (i, u) in arr(c, "/systemd/units").iter().enumerate() {
        let at = format!("systemd.units.{i}");
        let name = st(u, "name").unwrap_or("");
        if !valid_unit_ext(name) {
            v.err(j(&at, "name"), "invalid systemd unit extension");
        }
        let contents = st(u, "contents").unwrap_or("");
        if !contents.is_empty() {
            unit_paths.insert(format!("/etc/systemd/system/{name}"));
            if let Err(e) = parse_unit(contents) {
                v.err(j(&at, "contents"), e);
            } else if u.get("enabled").and_then(Value::as_bool) == Some(true)
                && !has_install(contents)
            {
                v.warn(
                        j(&at, "contents"),
                        format!("unit {name:?} is enabled, but has no install section so enable does nothing"),
                    );
            }
        }
        v.dups(std::iter::once((at.clone(), Some(name))), &mut seen);
        let mut dseen = HashSet::new();
        for (d, dropin) in arr(u, "/dropins").iter().enumerate() {
            let dat = j(&at, format!("dropins.{d}"));
            let dname = st(dropin, "name").unwrap_or("");
            if !dname.ends_with(".conf") {
                v.err(j(&dat, "name"), "invalid systemd drop-in extension");
            }
            let dc = st(dropin, "contents").unwrap_or("");
            if !dc.is_empty() {
                unit_paths.insert(format!("/etc/systemd/system/{name}.d/{dname}"));
                if let Err(e) = parse_unit(dc) {
                    v.err(j(&dat, "contents"), e);
                }
            }
            v.dups(std::iter::once((dat, Some(dname))), &mut dseen);
        }
    }
    if v.minor >= 1 {
        for k in ["files", "directories", "links"] {
            for (i, n) in arr(c, &format!("/storage/{k}")).iter().enumerate() {
                if st(n, "path").is_some_and(|p| unit_paths.contains(p)) {
                    v.err(
                        format!("storage.{k}.{i}.path"),
                        "path conflicts with systemd unit or dropin",
                    );
                }
            }
        }
    }
}

fn valid_unit_ext(name: &str) -> bool {
    let ext = match name.rfind('.') {
        Some(i) if i > 0 || name.len() > 1 => &name[i..],
        _ => "",
    };
    matches!(
        ext,
        ".service"
            | ".socket"
            | ".device"
            | ".mount"
            | ".automount"
            | ".swap"
            | ".target"
            | ".path"
            | ".timer"
            | ".snapshot"
            | ".slice"
            | ".scope"
    )
}

/// A systemd unit-file syntax check following go-systemd's `unit.DeserializeOptions` (which
/// Ignition uses), with its error messages.
fn parse_unit(contents: &str) -> Result<(), String> {
    let wrap = |m: &str| Err(format!("invalid unit content: {m}"));
    if contents.split('\n').any(|l| l.len() >= 2048) {
        return wrap("line too long (max 2048 bytes)");
    }
    let mut rest = contents;
    let mut in_section = false;
    loop {
        let trimmed = rest.trim_start();
        let Some(c) = trimmed.chars().next() else {
            return Ok(());
        };
        if c == '#' || c == ';' {
            rest = trimmed.split_once('\n').map(|x| x.1).unwrap_or("");
            continue;
        }
        if c == '[' {
            let Some(end) = trimmed.find(']') else {
                return wrap("unable to find end of section");
            };
            let after = &trimmed[end + 1..];
            let (line_rest, next) = after.split_once('\n').unwrap_or((after, ""));
            if !line_rest.trim().is_empty() {
                // go-systemd prints the section name before it is recorded, i.e. empty.
                return wrap(&format!(
                    "found garbage after section name : {:?}",
                    line_rest.trim()
                ));
            }
            in_section = true;
            rest = next;
            continue;
        }
        if !in_section {
            // Before the first section go-systemd skips anything that is not a '['.
            rest = &trimmed[c.len_utf8()..];
            continue;
        }
        // Option: a name up to '=' on the same line, then a value with '\' continuations.
        let line_end = trimmed.find('\n').unwrap_or(trimmed.len());
        let line = &trimmed[..line_end];
        if !line.contains('=') {
            if line_end == trimmed.len() {
                return wrap("unexpected EOF encountered while parsing option name");
            }
            return wrap("unexpected newline encountered while parsing option name");
        }
        let mut r = trimmed;
        loop {
            let (l, next) = r.split_once('\n').unwrap_or((r, ""));
            r = next;
            if !l.trim_end_matches('\r').ends_with('\\') || r.is_empty() {
                break;
            }
        }
        rest = r;
    }
}

fn has_install(contents: &str) -> bool {
    contents.lines().any(|l| {
        l.trim_start()
            .strip_prefix("[Install]")
            .is_some_and(|r| r.trim().is_empty())
    })
}
