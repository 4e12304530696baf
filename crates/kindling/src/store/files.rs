//! A data directory's objects as (relative path, bytes), for `kindling store import` and
//! `export`: the paths are the keys of the etcd store (`groups/web.json`).

use std::path::Path;

use anyhow::{Context, Result};
use kindling_model::store::{
    Area, MAX_DATA_FILE_BYTES, MAX_TEMPLATE_BYTES, area_of, open_confined, write_atomic,
};
use kindling_model::{Group, Profile};

const AREAS: [Area; 5] = [
    Area::Groups,
    Area::Profiles,
    Area::Ignition,
    Area::Generic,
    Area::Cloud,
];

/// Sub-directories entered at most.
const MAX_DEPTH: usize = 8;

/// Every object file below `dir`, read confined to its area (sorted by path). Hidden
/// files (editors' and interrupted writes' temporaries) are left out.
pub fn read_tree(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for area in AREAS {
        let base = dir.join(area.dir());
        let mut names = Vec::new();
        list(&base, "", 0, &mut names).with_context(|| format!("listing {}", base.display()))?;
        for name in names {
            let rel = format!("{}/{name}", area.dir());
            if area_of(&rel) != Some(area) {
                continue;
            }
            let limit = match area {
                Area::Groups | Area::Profiles => MAX_DATA_FILE_BYTES,
                _ => MAX_TEMPLATE_BYTES,
            };
            let bytes = open_confined(&base, area.dir(), &name)
                .and_then(|o| o.read_limited(limit))
                .with_context(|| format!("reading {rel}"))?;
            out.push((rel, bytes));
        }
    }
    out.sort();
    Ok(out)
}

fn list(base: &Path, rel: &str, depth: usize, out: &mut Vec<String>) -> std::io::Result<()> {
    let here = base.join(rel);
    let rd = match std::fs::read_dir(&here) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && rel.is_empty() => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        // Symlinks are not followed (a link to `.` would repeat the tree), as the server's
        // own listing of groups/ and profiles/ does not.
        let t = std::fs::symlink_metadata(e.path())?;
        if t.is_dir() {
            if depth < MAX_DEPTH {
                list(base, &path, depth + 1, out)?;
            }
        } else if t.is_file()
            || (t.is_symlink() && std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()))
        {
            // A symlink to a file is read as the server reads it: confined to its area.
            out.push(path);
        }
    }
    Ok(())
}

/// Whether an object would load (groups and profiles with the server's parsers).
pub fn check(rel: &str, bytes: &[u8]) -> Result<(), String> {
    let Some(area) = area_of(rel) else {
        return Err("not a path of the data directory layout".into());
    };
    let stem = |dir: &str| {
        rel.strip_prefix(dir)
            .and_then(|r| r.strip_suffix(".json"))
            .unwrap_or(rel)
            .to_string()
    };
    match area {
        Area::Groups => Group::parse(&stem("groups/"), bytes)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Area::Profiles => Profile::parse(&stem("profiles/"), bytes)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        _ => Ok(()),
    }
}

/// Writes one object below `dir` (atomically, durably), its directories created.
pub fn write(dir: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
    anyhow::ensure!(
        area_of(rel).is_some(),
        "{rel:?} is not a data directory path"
    );
    let path = dir.join(rel);
    let (parent, name) = (
        path.parent().context("no parent")?,
        path.file_name()
            .and_then(|n| n.to_str())
            .context("no name")?,
    );
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    write_atomic(parent, name, bytes).with_context(|| format!("writing {}", path.display()))
}
