//! The [`Loader`]: snapshots re-parsed only where files changed, with the last good version
//! of a file (or of a whole area directory) kept in force while it is broken or gone.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::area::{Area, MAX_DATA_FILE_BYTES, ReadError, human_bytes};
use super::confined::{DataDir, open_in};
use super::snapshot::{Problem, Snapshot};
use super::versions::{Stamp, Versions};
use crate::group::Group;
use crate::index::Index;
use crate::profile::Profile;

fn stamp(meta: &fs::Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp::File {
        modified: meta.modified().ok(),
        len: meta.len(),
        ino: meta.ino(),
    }
}

/// Loads snapshots, re-parsing only files that changed, and keeping the last
/// good version of files that became invalid.
pub struct Loader {
    dir: DataDir,
    groups: Versions<Group>,
    profiles: Versions<Profile>,
    groups_dir: DirState,
    profiles_dir: DirState,
    generation: u64,
}

const MAX_DEPTH: usize = 8;

/// Calls `each` with the path, relative to the area's directory handle `dir`, of every
/// `*.json` file below it (a file's key is its path without `.json`: [`key_of`]), one at a
/// time: no list of them is held. `rel` is the path of `dir` in the area (a buffer, given
/// back as it came). Sub-directories are entered through the handle too (never a symlink).
fn json_files(
    dir: &cap_std::fs::Dir,
    rel: &mut String,
    depth: usize,
    recurse: bool,
    each: &mut dyn FnMut(&str),
) {
    if let Ok(rd) = dir.entries() {
        json_entries(rd, rel, depth, recurse, each);
    }
}

/// [`json_files`] on a directory's listing already opened.
fn json_entries(
    rd: cap_std::fs::ReadDir,
    rel: &mut String,
    depth: usize,
    recurse: bool,
    each: &mut dyn FnMut(&str),
) {
    let len = rel.len();
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(ft) = e.file_type() else { continue };
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(name);
        if ft.is_dir() {
            if recurse
                && depth < MAX_DEPTH
                && let Ok(sub) = e.open_dir()
            {
                json_files(&sub, rel, depth + 1, recurse, each);
            }
        } else if rel.ends_with(".json") {
            each(rel);
        }
        rel.truncate(len);
    }
}

/// One area of the data directory as the Loader reads it.
struct AreaDir {
    dir: cap_std::fs::Dir,
    /// Its listing, opened with it (a directory that cannot be listed is unavailable)
    /// and read once, by [`refresh`].
    entries: cap_std::fs::ReadDir,
    base: PathBuf,
    area: &'static str,
    /// Whether its sub-directories hold files of the area too (profiles).
    recurse: bool,
}

/// A data file's key (group or profile name): its relative path without `.json`.
fn key_of(rel: &str) -> &str {
    rel.strip_suffix(".json").unwrap_or(rel)
}

/// Why an area's directory cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unavailable {
    /// Nothing at its path (deleted, renamed away, a dangling symlink).
    Missing,
    /// Something else than a directory at its path (a file, a FIFO).
    NotADirectory,
    /// A directory that cannot be opened or listed (permissions, I/O).
    Unreadable(String),
}

impl Unavailable {
    fn describe(&self, path: &Path) -> String {
        match self {
            Unavailable::Missing => format!("{} is missing (deleted or renamed?)", path.display()),
            Unavailable::NotADirectory => format!(
                "{} is not a directory (replaced by a file?)",
                path.display()
            ),
            Unavailable::Unreadable(e) => format!("{} cannot be read: {e}", path.display()),
        }
    }
}

impl AreaDir {
    fn open(data: &DataDir, area: Area, recurse: bool) -> Result<AreaDir, Unavailable> {
        let base = data.area(area);
        let dir = cap_std::fs::Dir::open_ambient_dir(&base, cap_std::ambient_authority()).map_err(
            |e| match e.raw_os_error() {
                Some(libc::ENOTDIR) => Unavailable::NotADirectory,
                _ if e.kind() == io::ErrorKind::NotFound => Unavailable::Missing,
                _ => match fs::metadata(&base) {
                    Ok(m) if !m.is_dir() => Unavailable::NotADirectory,
                    _ => Unavailable::Unreadable(e.to_string()),
                },
            },
        )?;
        // A directory that cannot be listed is as good as gone (not as good as empty).
        let entries = dir
            .entries()
            .map_err(|e| Unavailable::Unreadable(e.to_string()))?;
        Ok(AreaDir {
            dir,
            entries,
            base,
            area: area.dir(),
            recurse,
        })
    }
}

/// What the [`Loader`] saw of an area's directory at its last load.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum DirState {
    /// Never read (nothing loaded from it yet), or gone and accepted as gone by an
    /// explicit reload: a missing directory is an empty area, as in matchbox.
    #[default]
    Absent,
    /// Read.
    Present,
    /// Read before, unreadable now (and why): what was loaded from it stays in force.
    Vanished(Unavailable),
}

impl Loader {
    pub fn new(dir: DataDir) -> Loader {
        Loader {
            dir,
            groups: Versions::default(),
            profiles: Versions::default(),
            groups_dir: DirState::Absent,
            profiles_dir: DirState::Absent,
            generation: 0,
        }
    }

    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    /// Makes the next load re-read this group or profile file (`key`: its name without
    /// `.json`) whatever its stamp says: a file rewritten twice within the clock's
    /// granularity, with the same length, can get back an inode number the loader has
    /// seen. The management APIs call this for every object they write.
    pub fn forget(&mut self, area: Area, key: &str) {
        match area {
            Area::Groups => self.groups.forget_stamp(key),
            Area::Profiles => self.profiles.forget_stamp(key),
            _ => {}
        }
    }

    /// Reads the directory and returns a fresh snapshot. Files that no longer parse,
    /// and `groups/` or `profiles/` directories that vanished (deleted, renamed,
    /// replaced by a file, unreadable), keep their last good content in force, reported
    /// as problems.
    pub fn load(&mut self) -> Snapshot {
        let (problems, changed) = self.refresh(false);
        self.snapshot(problems, changed)
    }

    /// The watcher's load, after [`Loader::load`] gave the snapshot in force: a new
    /// snapshot when a file changed, `None` when the one in force still holds (nothing
    /// is built for nothing: at 10,000 groups a snapshot is an index's worth of memory
    /// and time, and the interval re-check runs every 30 s by default).
    ///
    /// `explicit`: the operator's reload (SIGHUP), which always answers a snapshot, and
    /// takes a `groups/` or `profiles/` directory that vanished (deleted, renamed,
    /// replaced by a file, unreadable) as gone: nothing is served from it any more (as
    /// matchbox would do), and the problem says so once. Broken files still keep their
    /// last good version.
    pub fn reload(&mut self, explicit: bool) -> Option<Snapshot> {
        let (problems, changed) = self.refresh(explicit);
        (changed > 0 || explicit).then(|| self.snapshot(problems, changed))
    }

    /// Brings the per-file caches up to date with the directory: (the problems seen,
    /// the files changed).
    fn refresh(&mut self, explicit: bool) -> (Vec<Problem>, usize) {
        let mut problems = Vec::new();
        let mut changed = 0;

        let listed = AreaDir::open(&self.dir, Area::Groups, false);
        let path = self.dir.area(Area::Groups);
        changed += refresh_area(
            &mut self.groups,
            &mut self.groups_dir,
            listed,
            AreaNames {
                area: Area::Groups,
                path: &path,
                one: "group",
                many: "groups",
            },
            explicit,
            Group::parse,
            &mut problems,
        );
        let listed = AreaDir::open(&self.dir, Area::Profiles, true);
        let path = self.dir.area(Area::Profiles);
        changed += refresh_area(
            &mut self.profiles,
            &mut self.profiles_dir,
            listed,
            AreaNames {
                area: Area::Profiles,
                path: &path,
                one: "profile",
                many: "profiles",
            },
            explicit,
            Profile::parse,
            &mut problems,
        );
        (problems, changed)
    }

    fn snapshot(&mut self, problems: Vec<Problem>, changed: usize) -> Snapshot {
        self.generation += 1;
        build(
            &self.groups,
            &self.profiles,
            problems,
            self.generation,
            changed,
        )
    }
}

/// The snapshot of what the caches hold: each file's current version, or its last good
/// one while it is broken.
pub(super) fn build(
    groups: &Versions<Group>,
    profiles: &Versions<Profile>,
    mut problems: Vec<Problem>,
    generation: u64,
    changed_files: usize,
) -> Snapshot {
    let groups: Vec<Arc<Group>> = groups
        .iter()
        .filter_map(|(_, e)| e.in_force().ok().cloned())
        .collect();
    let mut good = HashMap::new();
    let mut invalid_profiles = HashMap::new();
    for (k, e) in profiles.iter() {
        match e.in_force() {
            Ok(p) => {
                good.insert(k.to_string(), p.clone());
            }
            Err(m) => {
                invalid_profiles.insert(k.to_string(), m.clone());
            }
        }
    }
    problems.sort_by(|a, b| a.file.cmp(&b.file));
    Snapshot {
        index: Index::build(groups),
        profiles: good,
        invalid_profiles,
        problems,
        generation,
        changed_files,
        files: None,
    }
}

/// A data file's read error as a problem message (the problem names the file).
fn load_error(e: ReadError) -> String {
    match e {
        ReadError::TooLarge { size, limit, .. } => format!(
            "too large: {size} bytes, over the {} limit for group and profile files \
             (refused without reading it)",
            human_bytes(limit)
        ),
        ReadError::Escapes(_, area) => format!("a symlink that leaves {area}/ (refused)"),
        ReadError::Io { source, .. } => format!("cannot read: {source}"),
        other => format!("cannot read: {other}"),
    }
}

/// How an area is named in problems.
struct AreaNames<'a> {
    area: Area,
    path: &'a Path,
    one: &'static str,
    many: &'static str,
}

impl AreaNames<'_> {
    fn count(&self, n: usize) -> String {
        format!("{n} {}", if n == 1 { self.one } else { self.many })
    }
}

/// Refreshes one area from its listing, or, when its directory cannot be read, keeps
/// what was loaded from it (or drops it on an explicit reload). Returns the files
/// changed (a directory that vanishes or comes back counts as a change: the snapshot
/// is rebuilt and its problems logged once).
#[allow(clippy::too_many_arguments)]
fn refresh_area<T, E: std::fmt::Display>(
    cache: &mut Versions<T>,
    state: &mut DirState,
    listed: Result<AreaDir, Unavailable>,
    names: AreaNames<'_>,
    explicit: bool,
    parse: fn(&str, &[u8]) -> Result<T, E>,
    problems: &mut Vec<Problem>,
) -> usize {
    let file = format!("{}/", names.area.dir());
    let (read, why) = match listed {
        Ok(files) => {
            let (changed, intact) = refresh(cache, files, parse, problems);
            if intact {
                let back = usize::from(matches!(state, DirState::Vanished(_)));
                *state = DirState::Present;
                return back + changed;
            }
            // Deleted or renamed away while it was being read (`rm -rf` under a load):
            // the files it no longer had were kept, the directory is gone.
            (changed, probe_gone(names.path))
        }
        Err(why) => (0, why),
    };
    read + vanished(cache, state, why, &names, file, explicit, problems)
}

/// Why the directory at `path`, read a moment ago, is not there now.
pub(super) fn probe_gone(path: &Path) -> Unavailable {
    match fs::metadata(path) {
        Ok(m) if !m.is_dir() => Unavailable::NotADirectory,
        Ok(_) => Unavailable::Unreadable("replaced by another directory while it was read".into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Unavailable::Missing,
        Err(e) => Unavailable::Unreadable(e.to_string()),
    }
}

/// An area whose directory cannot be read: keeps (or, on an explicit reload, drops)
/// what was loaded from it, reports it. Returns the changes (see [`refresh_area`]).
fn vanished<T>(
    cache: &mut Versions<T>,
    state: &mut DirState,
    why: Unavailable,
    names: &AreaNames<'_>,
    file: String,
    explicit: bool,
    problems: &mut Vec<Problem>,
) -> usize {
    let what = why.describe(names.path);
    match (&*state, explicit) {
        (DirState::Present | DirState::Vanished(_), false) => {
            // Newly gone, or gone another way (deleted, then a file put there): a change,
            // so that the new snapshot, and its warning, come out once.
            let news = usize::from(*state != DirState::Vanished(why.clone()));
            *state = DirState::Vanished(why);
            let kept = cache.len();
            let message = if kept == 0 {
                format!("{what}: nothing was loaded from it")
            } else {
                format!(
                    "{what}: the {} loaded from it stay in force until it is back, or until \
                     an explicit reload (SIGHUP) accepts that it is gone",
                    names.count(kept)
                )
            };
            problems.push(Problem {
                file,
                message,
                kept_previous: kept > 0,
                directory: true,
            });
            news
        }
        (DirState::Present | DirState::Vanished(_), true) => {
            let dropped = cache.len();
            cache.clear();
            *state = DirState::Absent;
            problems.push(Problem {
                file,
                message: format!(
                    "{what}: explicit reload: nothing is served from it ({} dropped)",
                    names.count(dropped)
                ),
                kept_previous: false,
                directory: true,
            });
            dropped.max(1)
        }
        (DirState::Absent, _) => {
            // Nothing was loaded from it: an empty area, as before. A missing directory
            // is ordinary (matchbox serves nothing from it); anything else is reported.
            let dropped = cache.len();
            cache.clear();
            if why != Unavailable::Missing {
                problems.push(Problem {
                    file,
                    message: what,
                    kept_previous: false,
                    directory: true,
                });
            }
            dropped
        }
    }
}

/// Whether the directory `dir` (a handle) is still the one at `base`: not deleted,
/// renamed away or replaced since it was opened.
pub(super) fn still_at(dir: &cap_std::fs::Dir, base: &Path) -> bool {
    use cap_std::fs::MetadataExt as _;
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(held), Ok(now)) = (dir.dir_metadata(), fs::metadata(base)) else {
        return false;
    };
    now.is_dir() && now.dev() == held.dev() && now.ino() == held.ino()
}

/// Re-reads the changed files of an area, in one walk of its directory. Returns the files
/// changed and whether the directory was still in place at the end; when it was not
/// (deleted while being read), files not found are not dropped: the caller treats the
/// directory as vanished.
fn refresh<T, E: std::fmt::Display>(
    cache: &mut Versions<T>,
    area: AreaDir,
    parse: fn(&str, &[u8]) -> Result<T, E>,
    problems: &mut Vec<Problem>,
) -> (usize, bool) {
    let mut changed = 0;
    cache.begin();
    let AreaDir {
        dir,
        entries,
        base,
        area: name,
        recurse,
    } = area;
    let (dir, base) = (&dir, &base);
    json_entries(entries, &mut String::new(), 0, recurse, &mut |rel| {
        // Opened confined; the stamp and the bytes come from the same handle.
        let (stamp, opened) = match open_in(dir, base, name, rel) {
            Ok(o) if o.meta.is_file() => (Ok(stamp(&o.meta)), Some(o)),
            // Not a regular file (a directory, a FIFO) or gone: not a data file.
            Ok(_) | Err(ReadError::NotFound(_)) => return,
            Err(e) => (Err(load_error(e)), None),
        };
        let read = move || match opened {
            Some(o) => o.read_limited(MAX_DATA_FILE_BYTES).map_err(load_error),
            None => Err(String::new()),
        };
        let file = || format!("{name}/{rel}");
        changed += usize::from(cache.update(key_of(rel), file, stamp, read, parse, problems));
    });
    if cache.missed_some() && !still_at(dir, base) {
        return (changed, false);
    }
    (changed + cache.sweep(), true)
}
