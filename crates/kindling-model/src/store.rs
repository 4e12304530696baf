//! The data directory (matchbox's layout) and its loader.
//!
//! `groups/*.json` and `profiles/**/*.json` are loaded into a [`Snapshot`]
//! (an immutable, indexed view). The [`Loader`] remembers the last good
//! version of every file: when a file becomes invalid, the problem is reported
//! and the previous version stays in force until the file is fixed or removed.
//! Ignition, generic and cloud files are read per request, confined to their
//! directories (symlinks that leave them are refused).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::group::{Group, Str};
use crate::index::Index;
use crate::labels::Labels;
use crate::profile::Profile;

/// The standard sub-directories of a data directory.
pub const LAYOUT: [&str; 6] = [
    "groups", "profiles", "ignition", "generic", "cloud", "assets",
];

/// One area of the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Area {
    Groups,
    Profiles,
    Ignition,
    Generic,
    Cloud,
    Assets,
}

impl Area {
    pub fn dir(self) -> &'static str {
        match self {
            Area::Groups => "groups",
            Area::Profiles => "profiles",
            Area::Ignition => "ignition",
            Area::Generic => "generic",
            Area::Cloud => "cloud",
            Area::Assets => "assets",
        }
    }
}

/// Why a name could not be read from an area.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0:?} leaves {1}/ (refused)")]
    Escapes(String, &'static str),
    #[error("{0:?} contains a NUL byte (refused)")]
    Nul(String),
    #[error("no file {0}")]
    NotFound(String),
    #[error("{0} is not a regular file")]
    NotAFile(String),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

/// Cleans `name` relative to `area`, as matchbox's `path.Clean` does, but
/// refuses any result outside the area. Returns the relative components.
pub fn clean_within(name: &str, area: &str) -> Option<Vec<String>> {
    let mut parts: Vec<String> = vec![area.to_string()];
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                // Above the data directory itself: refuse.
                parts.pop()?;
            }
            c => parts.push(c.to_string()),
        }
    }
    if parts.first().map(String::as_str) != Some(area) {
        return None;
    }
    parts.remove(0);
    Some(parts)
}

/// A data directory in matchbox's layout.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn area(&self, area: Area) -> PathBuf {
        self.root.join(area.dir())
    }

    /// Creates the directory and any missing standard sub-directory; returns
    /// what it created.
    pub fn ensure_layout(&self) -> io::Result<Vec<PathBuf>> {
        let mut created = Vec::new();
        if !self.root.is_dir() {
            fs::create_dir_all(&self.root)?;
            created.push(self.root.clone());
        }
        for d in LAYOUT {
            let p = self.root.join(d);
            if !p.is_dir() {
                fs::create_dir_all(&p)?;
                created.push(p);
            }
        }
        Ok(created)
    }

    /// Resolves `name` inside `area`, refusing `..` escapes, NUL bytes and
    /// symlinks whose target lies outside the area.
    pub fn resolve(&self, area: Area, name: &str) -> Result<PathBuf, ReadError> {
        resolve_confined(&self.area(area), area.dir(), name)
    }

    /// Reads a file of an area (Ignition, generic, cloud templates).
    pub fn read(&self, area: Area, name: &str) -> Result<Vec<u8>, ReadError> {
        let path = self.resolve(area, name)?;
        fs::read(&path).map_err(|e| io_error(&path, e))
    }
}

fn io_error(path: &Path, e: io::Error) -> ReadError {
    match e.kind() {
        io::ErrorKind::NotFound => ReadError::NotFound(path.display().to_string()),
        io::ErrorKind::IsADirectory => ReadError::NotAFile(path.display().to_string()),
        _ => ReadError::Io {
            path: path.display().to_string(),
            source: e,
        },
    }
}

/// Resolves `name` under `base` (whose display name is `area`), confined.
pub fn resolve_confined(base: &Path, area: &'static str, name: &str) -> Result<PathBuf, ReadError> {
    if name.contains('\0') {
        return Err(ReadError::Nul(name.to_string()));
    }
    let parts =
        clean_within(name, area).ok_or_else(|| ReadError::Escapes(name.to_string(), area))?;
    let mut path = base.to_path_buf();
    for p in &parts {
        path.push(p);
    }
    let canon_base = base.canonicalize().map_err(|e| io_error(base, e))?;
    let canon = path.canonicalize().map_err(|e| io_error(&path, e))?;
    if !canon.starts_with(&canon_base) {
        return Err(ReadError::Escapes(name.to_string(), area));
    }
    if !canon.is_file() {
        return Err(ReadError::NotAFile(path.display().to_string()));
    }
    Ok(canon)
}

/// A problem found while loading, shown in logs, `kindling select` and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path relative to the data directory, e.g. `groups/web.json`.
    pub file: String,
    pub message: String,
    /// True when a previous good version of this file is still in force.
    pub kept_previous: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.message)?;
        if self.kept_previous {
            write!(f, " (previous version kept in force)")?;
        }
        Ok(())
    }
}

/// Why a group's profile cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileLookupError {
    #[error("group {group:?} names profile {profile:?}, which does not exist (no {file})")]
    Missing {
        group: String,
        profile: String,
        file: String,
    },
    #[error("group {group:?} names profile {profile:?}, which is invalid: {message}")]
    Invalid {
        group: String,
        profile: String,
        message: String,
    },
    #[error("group {group:?} names profile {profile:?}, which leaves profiles/ (refused)")]
    Escapes { group: String, profile: String },
}

/// An immutable, indexed view of the data directory.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub index: Index,
    pub profiles: HashMap<String, Arc<Profile>>,
    /// Profiles that failed to load and have no good version: key -> message.
    pub invalid_profiles: HashMap<String, String>,
    pub problems: Vec<Problem>,
    pub generation: u64,
    /// Files parsed anew or removed since the previous load.
    pub changed_files: usize,
}

impl Snapshot {
    pub fn select(&self, labels: &Labels) -> Option<&Arc<Group>> {
        self.index.select(labels)
    }

    /// The profile a group names, looked up like matchbox's file store
    /// (`profiles/<id>.json`), but never outside `profiles/`.
    pub fn profile_for(&self, group: &Group) -> Result<&Arc<Profile>, ProfileLookupError> {
        let key = profile_key(&group.profile).ok_or_else(|| ProfileLookupError::Escapes {
            group: group.file_id.to_string(),
            profile: group.profile.to_string(),
        })?;
        if let Some(p) = self.profiles.get(&key) {
            return Ok(p);
        }
        if let Some(m) = self.invalid_profiles.get(&key) {
            return Err(ProfileLookupError::Invalid {
                group: group.file_id.to_string(),
                profile: group.profile.to_string(),
                message: m.clone(),
            });
        }
        Err(ProfileLookupError::Missing {
            group: group.file_id.to_string(),
            profile: group.profile.to_string(),
            file: format!("profiles/{key}.json"),
        })
    }
}

/// The key of profile id `id` (its path below `profiles/` without `.json`).
pub fn profile_key(id: &str) -> Option<String> {
    let parts = clean_within(&format!("{id}.json"), "profiles")?;
    let joined = parts.join("/");
    joined
        .strip_suffix(".json")
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
}

fn stamp(meta: &fs::Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        ino: meta.ino(),
    }
}

struct Entry<T> {
    stamp: Stamp,
    current: Result<Arc<T>, String>,
    last_good: Option<Arc<T>>,
}

/// Loads snapshots, re-parsing only files that changed, and keeping the last
/// good version of files that became invalid.
pub struct Loader {
    dir: DataDir,
    groups: HashMap<Str, Entry<Group>>,
    profiles: HashMap<Str, Entry<Profile>>,
    generation: u64,
}

const MAX_DEPTH: usize = 8;

fn json_files(
    base: &Path,
    rel: &str,
    depth: usize,
    out: &mut Vec<(String, PathBuf)>,
    recurse: bool,
) {
    let Ok(rd) = fs::read_dir(base.join(rel)) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let relname = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if recurse && depth < MAX_DEPTH {
                json_files(base, &relname, depth + 1, out, recurse);
            }
            continue;
        }
        if let Some(stem) = relname.strip_suffix(".json") {
            out.push((stem.to_string(), e.path()));
        }
    }
}

impl Loader {
    pub fn new(dir: DataDir) -> Loader {
        Loader {
            dir,
            groups: HashMap::new(),
            profiles: HashMap::new(),
            generation: 0,
        }
    }

    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    /// Reads the directory and returns a fresh snapshot.
    pub fn load(&mut self) -> Snapshot {
        self.generation += 1;
        let mut problems = Vec::new();
        let mut changed = 0;

        let mut files = Vec::new();
        json_files(&self.dir.area(Area::Groups), "", 0, &mut files, false);
        changed += refresh(
            &mut self.groups,
            files,
            Group::parse,
            "groups",
            &mut problems,
        );
        let groups: Vec<Arc<Group>> = self
            .groups
            .values()
            .filter_map(|e| e.current.as_ref().ok().or(e.last_good.as_ref()).cloned())
            .collect();

        let mut files = Vec::new();
        json_files(&self.dir.area(Area::Profiles), "", 0, &mut files, true);
        changed += refresh(
            &mut self.profiles,
            files,
            Profile::parse,
            "profiles",
            &mut problems,
        );
        let mut profiles = HashMap::new();
        let mut invalid_profiles = HashMap::new();
        for (k, e) in &self.profiles {
            match (&e.current, &e.last_good) {
                (Ok(p), _) | (Err(_), Some(p)) => {
                    profiles.insert(k.to_string(), p.clone());
                }
                (Err(m), None) => {
                    invalid_profiles.insert(k.to_string(), m.clone());
                }
            }
        }
        problems.sort_by(|a, b| a.file.cmp(&b.file));
        Snapshot {
            index: Index::build(groups),
            profiles,
            invalid_profiles,
            problems,
            generation: self.generation,
            changed_files: changed,
        }
    }
}

fn refresh<T, E: std::fmt::Display>(
    cache: &mut HashMap<Str, Entry<T>>,
    files: Vec<(String, PathBuf)>,
    parse: fn(&str, &[u8]) -> Result<T, E>,
    area: &str,
    problems: &mut Vec<Problem>,
) -> usize {
    let mut changed = 0;
    let mut seen = std::collections::HashSet::with_capacity(files.len());
    for (key, path) in files {
        seen.insert(key.clone());
        let meta = match fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            _ => continue,
        };
        let st = stamp(&meta);
        if let Some(e) = cache.get(key.as_str())
            && e.stamp == st
        {
            if let Err(m) = &e.current {
                problems.push(Problem {
                    file: format!("{area}/{key}.json"),
                    message: m.clone(),
                    kept_previous: e.last_good.is_some(),
                });
            }
            continue;
        }
        changed += 1;
        let current = match fs::read(&path) {
            Ok(bytes) => parse(&key, &bytes).map(Arc::new).map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot read: {e}")),
        };
        let previous_good = cache.get(key.as_str()).and_then(|e| match &e.current {
            Ok(v) => Some(v.clone()),
            Err(_) => e.last_good.clone(),
        });
        let last_good = match &current {
            Ok(v) => Some(v.clone()),
            Err(_) => previous_good,
        };
        if let Err(m) = &current {
            problems.push(Problem {
                file: format!("{area}/{key}.json"),
                message: m.clone(),
                kept_previous: last_good.is_some(),
            });
        }
        cache.insert(
            key.into(),
            Entry {
                stamp: st,
                current,
                last_good,
            },
        );
    }
    let before = cache.len();
    cache.retain(|k, _| seen.contains(k.as_str()));
    changed + (before - cache.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "kindling-model-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn clean_within_rules() {
        assert_eq!(
            clean_within("a/b.ign", "ignition"),
            Some(vec!["a".into(), "b.ign".into()])
        );
        assert_eq!(
            clean_within("/x.ign", "ignition"),
            Some(vec!["x.ign".into()])
        );
        assert_eq!(
            clean_within("../ignition/x.ign", "ignition"),
            Some(vec!["x.ign".into()])
        );
        assert_eq!(clean_within("../profiles/x.json", "ignition"), None);
        assert_eq!(clean_within("../../etc/passwd", "ignition"), None);
        assert_eq!(clean_within("a/../../x", "ignition"), None);
    }

    #[test]
    fn last_good_version_kept() {
        let root = tmp();
        let dd = DataDir::new(&root);
        dd.ensure_layout().unwrap();
        let gp = root.join("groups/a.json");
        fs::write(&gp, r#"{"id":"a","profile":"p","selector":{"os":"x"}}"#).unwrap();
        let mut loader = Loader::new(dd.clone());
        let s = loader.load();
        assert_eq!(s.index.groups().len(), 1);
        assert!(s.problems.is_empty());
        // Break it: same number of groups, previous kept, problem reported.
        fs::write(&gp, r#"{"id":"a","profile":"p","selector":{"os":"x"}"#).unwrap();
        let s = loader.load();
        assert_eq!(s.index.groups().len(), 1);
        assert_eq!(s.problems.len(), 1);
        assert!(s.problems[0].kept_previous);
        assert!(
            s.problems[0].message.contains("line 1"),
            "{}",
            s.problems[0].message
        );
        // Remove it: gone.
        fs::remove_file(&gp).unwrap();
        let s = loader.load();
        assert_eq!(s.index.groups().len(), 0);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn confined_reads_refuse_symlinks_out() {
        let root = tmp();
        let dd = DataDir::new(root.join("data"));
        dd.ensure_layout().unwrap();
        fs::write(root.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(root.join("secret"), root.join("data/ignition/link.ign"))
            .unwrap();
        fs::write(root.join("data/ignition/ok.ign"), "{}").unwrap();
        assert!(dd.read(Area::Ignition, "ok.ign").is_ok());
        assert!(matches!(
            dd.read(Area::Ignition, "link.ign"),
            Err(ReadError::Escapes(..))
        ));
        assert!(matches!(
            dd.read(Area::Ignition, "../../secret"),
            Err(ReadError::Escapes(..))
        ));
        assert!(matches!(
            dd.read(Area::Ignition, ""),
            Err(ReadError::NotAFile(..))
        ));
        fs::remove_dir_all(&root).unwrap();
    }
}
