//! The data directory (matchbox's layout) and its loader.
//!
//! `groups/*.json` and `profiles/**/*.json` are loaded into a [`Snapshot`]
//! (an immutable, indexed view). The [`Loader`] remembers the last good
//! version of every file: when a file becomes invalid, the problem is reported
//! and the previous version stays in force until the file is fixed or removed.
//! The same holds for the `groups/` and `profiles/` directories themselves: one
//! that vanishes (deleted, renamed, replaced by a file, unreadable) keeps what
//! was loaded from it in force, reported as a problem naming its path, until it
//! is back or an explicit reload ([`Loader::load_explicit`]) accepts that it is
//! gone. The loader never creates or changes anything in the data directory.
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

/// Largest group or profile file the [`Loader`] parses: 1 MiB. A group with
/// ten thousand selector and metadata entries is a few hundred KiB; a larger
/// file is refused (reported as a problem, its last good version kept) before
/// a byte of it is read.
pub const MAX_DATA_FILE_BYTES: u64 = 1024 * 1024;

/// Largest Ignition, generic or cloud file read per request (and by
/// `kindling check`): 8 MiB. Larger files are refused with a 404 and the
/// reason logged.
pub const MAX_TEMPLATE_BYTES: u64 = 8 * 1024 * 1024;

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
    #[error("{path} is too large: {size} bytes, over the limit of {} ({limit} bytes)", human_bytes(*limit))]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

/// `1 MiB`, `8 MiB`, `512 KiB`, or a byte count.
pub fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
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

/// A file or directory opened inside an area, with the metadata of the
/// opened handle (fstat): what is served is what was checked.
#[derive(Debug)]
pub struct Opened {
    pub file: fs::File,
    /// Metadata of `file` itself (type, size, mtime), never of a path.
    pub meta: fs::Metadata,
    /// `<area dir>/<cleaned name>`: for messages and file-type guesses only.
    /// Never open it again: the name may point elsewhere by then.
    pub path: PathBuf,
}

impl Opened {
    /// The opened directory as a handle (for listings and further confined opens).
    pub fn into_dir(self) -> cap_std::fs::Dir {
        cap_std::fs::Dir::from_std_file(self.file)
    }

    /// Reads the whole file, refusing anything but a regular file and more
    /// than `limit` bytes (checked on the handle's size first, and again while
    /// reading, in case the file grows).
    pub fn read_limited(self, limit: u64) -> Result<Vec<u8>, ReadError> {
        use std::io::Read;
        let path = self.path.display().to_string();
        if !self.meta.is_file() {
            return Err(ReadError::NotAFile(path));
        }
        let too_large = |size| ReadError::TooLarge {
            path: path.clone(),
            size,
            limit,
        };
        if self.meta.len() > limit {
            return Err(too_large(self.meta.len()));
        }
        let mut buf = Vec::with_capacity(self.meta.len() as usize);
        (&self.file)
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| io_error(&self.path, e))?;
        if buf.len() as u64 > limit {
            return Err(too_large(buf.len() as u64));
        }
        Ok(buf)
    }
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

    /// Opens `name` inside `area` (see [`open_confined`]).
    pub fn open(&self, area: Area, name: &str) -> Result<Opened, ReadError> {
        open_confined(&self.area(area), area.dir(), name)
    }

    /// Checks that `name` opens as a regular file inside `area` and returns
    /// its path, for reports only (see [`resolve_confined`]).
    pub fn resolve(&self, area: Area, name: &str) -> Result<PathBuf, ReadError> {
        resolve_confined(&self.area(area), area.dir(), name)
    }

    /// Reads a file of an area (Ignition, generic, cloud templates), confined
    /// to the area and at most [`MAX_TEMPLATE_BYTES`].
    pub fn read(&self, area: Area, name: &str) -> Result<Vec<u8>, ReadError> {
        self.open(area, name)?.read_limited(MAX_TEMPLATE_BYTES)
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

/// cap-std reports a name that resolves outside its directory as
/// `PermissionDenied` without an OS error code (`EXDEV` from `openat2`, or its
/// own walk); a real `EACCES` carries its code.
fn is_escape(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied && e.raw_os_error().is_none()
}

fn open_options() -> cap_std::fs::OpenOptions {
    use cap_std::fs::OpenOptionsExt;
    let mut o = cap_std::fs::OpenOptions::new();
    o.read(true);
    // A FIFO or a device must not block the caller: it is refused after the
    // open as "not a regular file".
    o.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    o
}

/// Opens `name` inside the area whose directory is `base` (shown as `area`
/// in messages), the one confined open every reader uses (`/assets/`,
/// `/ignition`, `/generic`, `/cloud`, the [`Loader`], `kindling check`).
///
/// `name` is cleaned like matchbox's `path.Clean` (`..` that climbs out of
/// the area is refused, a NUL byte is refused), then opened relative to a
/// handle of `base` with the kernel enforcing that resolution stays beneath
/// it (`openat2` with `RESOLVE_BENEATH`, through cap-std): a symlink that
/// leaves the area is refused even if it appears between any check and the
/// open. Symlinks inside the area work; an absolute symlink (or one that
/// climbs out and back in) is followed when its target lies inside the area,
/// and that target is opened confined again. The caller checks the opened
/// handle's metadata (`Opened::meta`), never the path.
pub fn open_confined(base: &Path, area: &'static str, name: &str) -> Result<Opened, ReadError> {
    let rel = confined_name(area, name)?;
    let dir = cap_std::fs::Dir::open_ambient_dir(base, cap_std::ambient_authority())
        .map_err(|e| io_error(base, e))?;
    open_rel(&dir, base, area, name, &rel)
}

/// [`open_confined`] below an already open handle of the area directory.
pub fn open_in(
    dir: &cap_std::fs::Dir,
    base: &Path,
    area: &'static str,
    name: &str,
) -> Result<Opened, ReadError> {
    let rel = confined_name(area, name)?;
    open_rel(dir, base, area, name, &rel)
}

/// The cleaned, relative form of `name` (`.` for the area itself).
fn confined_name(area: &'static str, name: &str) -> Result<PathBuf, ReadError> {
    if name.contains('\0') {
        return Err(ReadError::Nul(name.to_string()));
    }
    let parts =
        clean_within(name, area).ok_or_else(|| ReadError::Escapes(name.to_string(), area))?;
    Ok(if parts.is_empty() {
        PathBuf::from(".")
    } else {
        parts.iter().collect()
    })
}

fn open_rel(
    dir: &cap_std::fs::Dir,
    base: &Path,
    area: &'static str,
    name: &str,
    rel: &Path,
) -> Result<Opened, ReadError> {
    let path = if rel == Path::new(".") {
        base.to_path_buf()
    } else {
        base.join(rel)
    };
    let file = match dir.open_with(rel, &open_options()) {
        Ok(f) => f.into_std(),
        Err(e) if is_escape(&e) => {
            // An absolute symlink into the area, or one climbing out and back:
            // where does it lead now? If inside, open that (without symlinks,
            // unless they changed since: then the confined open refuses them).
            let inside = base.canonicalize().ok().and_then(|b| {
                let target = path.canonicalize().ok()?;
                target.strip_prefix(&b).ok().map(Path::to_path_buf)
            });
            let Some(target) = inside else {
                return Err(ReadError::Escapes(name.to_string(), area));
            };
            let target = if target.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                target
            };
            match dir.open_with(&target, &open_options()) {
                Ok(f) => f.into_std(),
                Err(e) if is_escape(&e) => return Err(ReadError::Escapes(name.to_string(), area)),
                Err(e) => return Err(io_error(&path, e)),
            }
        }
        Err(e) => return Err(io_error(&path, e)),
    };
    let meta = file.metadata().map_err(|e| io_error(&path, e))?;
    Ok(Opened { file, meta, path })
}

/// Checks that `name` opens as a regular file inside the area (with
/// [`open_confined`]) and returns its lexical path, for reports only. To read
/// a file, use [`open_confined`] and the opened handle: a name can change
/// between a check and an open.
pub fn resolve_confined(base: &Path, area: &'static str, name: &str) -> Result<PathBuf, ReadError> {
    let o = open_confined(base, area, name)?;
    if !o.meta.is_file() {
        return Err(ReadError::NotAFile(o.path.display().to_string()));
    }
    Ok(o.path)
}

/// A problem found while loading, shown in logs, `kindling select` and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path relative to the data directory, e.g. `groups/web.json`.
    pub file: String,
    pub message: String,
    /// True when a previous good version of this file is still in force.
    pub kept_previous: bool,
    /// The problem is the area's directory itself (`groups/`, `profiles/`: gone, not a
    /// directory, unreadable), not one file in it.
    pub directory: bool,
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
    /// `None` when the file could not be opened (e.g. a symlink leaving the
    /// area): it is tried again on every load.
    stamp: Option<Stamp>,
    current: Result<Arc<T>, String>,
    last_good: Option<Arc<T>>,
}

/// Loads snapshots, re-parsing only files that changed, and keeping the last
/// good version of files that became invalid.
pub struct Loader {
    dir: DataDir,
    groups: HashMap<Str, Entry<Group>>,
    profiles: HashMap<Str, Entry<Profile>>,
    groups_dir: DirState,
    profiles_dir: DirState,
    generation: u64,
}

const MAX_DEPTH: usize = 8;

/// The `*.json` files below an area's directory handle: (key, relative path).
/// Sub-directories are entered through the handle too (never a symlink).
fn json_files(
    dir: &cap_std::fs::Dir,
    rel: &str,
    depth: usize,
    out: &mut Vec<(String, String)>,
    recurse: bool,
) {
    let Ok(rd) = dir.entries() else {
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
            if recurse
                && depth < MAX_DEPTH
                && let Ok(sub) = e.open_dir()
            {
                json_files(&sub, &relname, depth + 1, out, recurse);
            }
            continue;
        }
        if let Some(stem) = relname.strip_suffix(".json") {
            out.push((stem.to_string(), relname.clone()));
        }
    }
}

/// One area of the data directory as the Loader reads it.
struct AreaFiles {
    dir: cap_std::fs::Dir,
    base: PathBuf,
    area: &'static str,
    files: Vec<(String, String)>,
}

/// Why an area's directory cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unavailable {
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

impl AreaFiles {
    fn list(data: &DataDir, area: Area, recurse: bool) -> Result<AreaFiles, Unavailable> {
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
        if let Err(e) = dir.entries() {
            return Err(Unavailable::Unreadable(e.to_string()));
        }
        let mut files = Vec::new();
        json_files(&dir, "", 0, &mut files, recurse);
        Ok(AreaFiles {
            dir,
            base,
            area: area.dir(),
            files,
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
            groups: HashMap::new(),
            profiles: HashMap::new(),
            groups_dir: DirState::Absent,
            profiles_dir: DirState::Absent,
            generation: 0,
        }
    }

    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    /// Reads the directory and returns a fresh snapshot. Files that no longer parse,
    /// and `groups/` or `profiles/` directories that vanished (deleted, renamed,
    /// replaced by a file, unreadable), keep their last good content in force, reported
    /// as problems.
    pub fn load(&mut self) -> Snapshot {
        self.load_with(false)
    }

    /// An explicit reload (SIGHUP): like [`Loader::load`], but a `groups/` or
    /// `profiles/` directory that vanished is taken as gone: nothing is served from it
    /// any more (as matchbox would do), and the problem says so once. Broken files
    /// still keep their last good version.
    pub fn load_explicit(&mut self) -> Snapshot {
        self.load_with(true)
    }

    fn load_with(&mut self, explicit: bool) -> Snapshot {
        self.generation += 1;
        let mut problems = Vec::new();
        let mut changed = 0;

        let listed = AreaFiles::list(&self.dir, Area::Groups, false);
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
        let groups: Vec<Arc<Group>> = self
            .groups
            .values()
            .filter_map(|e| e.current.as_ref().ok().or(e.last_good.as_ref()).cloned())
            .collect();

        let listed = AreaFiles::list(&self.dir, Area::Profiles, true);
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
    cache: &mut HashMap<Str, Entry<T>>,
    state: &mut DirState,
    listed: Result<AreaFiles, Unavailable>,
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
fn probe_gone(path: &Path) -> Unavailable {
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
    cache: &mut HashMap<Str, Entry<T>>,
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
fn still_at(dir: &cap_std::fs::Dir, base: &Path) -> bool {
    use cap_std::fs::MetadataExt as _;
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(held), Ok(now)) = (dir.dir_metadata(), fs::metadata(base)) else {
        return false;
    };
    now.is_dir() && now.dev() == held.dev() && now.ino() == held.ino()
}

/// Re-reads the changed files of an area. Returns the files changed and whether the
/// directory was still in place at the end; when it was not (deleted while being read),
/// files not found are not dropped: the caller treats the directory as vanished.
fn refresh<T, E: std::fmt::Display>(
    cache: &mut HashMap<Str, Entry<T>>,
    area: AreaFiles,
    parse: fn(&str, &[u8]) -> Result<T, E>,
    problems: &mut Vec<Problem>,
) -> (usize, bool) {
    let mut changed = 0;
    let mut seen = std::collections::HashSet::with_capacity(area.files.len());
    let dir = &area.dir;
    for (key, rel) in area.files {
        seen.insert(key.clone());
        let file = format!("{}/{rel}", area.area);
        // Opened confined; the stamp and the bytes come from the same handle.
        let opened = match open_in(dir, &area.base, area.area, &rel) {
            Ok(o) if o.meta.is_file() => Ok(o),
            // Not a regular file (a directory, a FIFO) or gone: not a data file.
            Ok(_) | Err(ReadError::NotFound(_)) => continue,
            Err(e) => Err(load_error(e)),
        };
        let st = opened.as_ref().ok().map(|o| stamp(&o.meta));
        if let Some(e) = cache.get(key.as_str()) {
            let unchanged = match (&opened, st) {
                (Ok(_), Some(st)) => e.stamp == Some(st),
                (Err(m), _) => e.stamp.is_none() && e.current.as_ref().err() == Some(m),
                _ => false,
            };
            if unchanged {
                if let Err(m) = &e.current {
                    problems.push(Problem {
                        file,
                        message: m.clone(),
                        kept_previous: e.last_good.is_some(),
                        directory: false,
                    });
                }
                continue;
            }
        }
        changed += 1;
        let current = opened.and_then(|o| {
            let bytes = o.read_limited(MAX_DATA_FILE_BYTES).map_err(load_error)?;
            parse(&key, &bytes).map(Arc::new).map_err(|e| e.to_string())
        });
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
                file,
                message: m.clone(),
                kept_previous: last_good.is_some(),
                directory: false,
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
    let gone = cache.keys().any(|k| !seen.contains(k.as_str()));
    if gone && !still_at(dir, &area.base) {
        return (changed, false);
    }
    let before = cache.len();
    cache.retain(|k, _| seen.contains(k.as_str()));
    (changed + (before - cache.len()), true)
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
    #[test]
    fn confined_open_follows_symlinks_inside_only() {
        let root = tmp();
        let dd = DataDir::new(root.join("data"));
        dd.ensure_layout().unwrap();
        let assets = root.join("data/assets");
        fs::create_dir_all(assets.join("sub")).unwrap();
        fs::write(assets.join("a.txt"), "inside").unwrap();
        fs::write(root.join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink("../a.txt", assets.join("sub/rel")).unwrap();
        std::os::unix::fs::symlink(assets.join("a.txt"), assets.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../secret", assets.join("out")).unwrap();
        std::os::unix::fs::symlink(root.join("secret"), assets.join("abs-out")).unwrap();
        std::os::unix::fs::symlink(&root, assets.join("dir-out")).unwrap();
        let read = |n: &str| dd.open(Area::Assets, n).and_then(|o| o.read_limited(100));
        assert_eq!(read("sub/rel").unwrap(), b"inside");
        assert_eq!(read("abs").unwrap(), b"inside");
        for n in ["out", "abs-out", "dir-out/secret", "../../secret"] {
            assert!(matches!(read(n), Err(ReadError::Escapes(..))), "{n}");
        }
        assert!(matches!(read("missing"), Err(ReadError::NotFound(_))));
        // The area itself and sub-directories open as directories.
        assert!(dd.open(Area::Assets, "").unwrap().meta.is_dir());
        let sub = dd.open(Area::Assets, "sub/").unwrap();
        assert!(sub.meta.is_dir());
        let names: Vec<_> = sub
            .into_dir()
            .entries()
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("rel")]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let root = tmp();
        let dd = DataDir::new(&root);
        dd.ensure_layout().unwrap();
        let fifo = root.join("ignition/pipe.ign");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            dd.read(Area::Ignition, "pipe.ign"),
            Err(ReadError::NotAFile(_))
        ));
        let c =
            std::ffi::CString::new(root.join("groups/pipe.json").as_os_str().as_encoded_bytes())
                .unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let s = Loader::new(dd).load();
        assert_eq!(s.index.groups().len(), 0);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn oversized_files_are_refused_before_reading() {
        let root = tmp();
        let dd = DataDir::new(&root);
        dd.ensure_layout().unwrap();
        // A template over the per-request limit.
        let big = fs::File::create(root.join("generic/big")).unwrap();
        big.set_len(MAX_TEMPLATE_BYTES + 1).unwrap();
        let e = dd.read(Area::Generic, "big").unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("generic/big"), "{e}");
        assert!(e.to_string().contains("8 MiB"), "{e}");
        // A group that grows over the limit keeps its last good version.
        let gp = root.join("groups/g.json");
        fs::write(&gp, r#"{"id":"g","profile":"p","selector":{"os":"x"}}"#).unwrap();
        fs::write(
            root.join("groups/other.json"),
            r#"{"id":"o","profile":"p","selector":{"os":"y"}}"#,
        )
        .unwrap();
        let mut loader = Loader::new(dd);
        assert_eq!(loader.load().index.groups().len(), 2);
        let f = fs::OpenOptions::new().append(true).open(&gp).unwrap();
        f.set_len(MAX_DATA_FILE_BYTES + 10).unwrap();
        let s = loader.load();
        assert_eq!(s.index.groups().len(), 2);
        assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
        let p = &s.problems[0];
        assert_eq!(p.file, "groups/g.json");
        assert!(p.kept_previous);
        assert!(p.message.contains("1 MiB"), "{p}");
        // Reported again on the next load, without being re-read.
        let s = loader.load();
        assert_eq!((s.problems.len(), s.changed_files), (1, 0));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn group_symlinks_stay_inside() {
        let root = tmp();
        let dd = DataDir::new(root.join("data"));
        dd.ensure_layout().unwrap();
        let g = r#"{"id":"g","profile":"p","selector":{"os":"x"}}"#;
        fs::write(root.join("outside.json"), g).unwrap();
        fs::write(root.join("data/groups/real.txt"), g).unwrap();
        std::os::unix::fs::symlink("real.txt", root.join("data/groups/in.json")).unwrap();
        std::os::unix::fs::symlink(root.join("outside.json"), root.join("data/groups/out.json"))
            .unwrap();
        let mut loader = Loader::new(dd);
        let s = loader.load();
        let ids: Vec<_> = s
            .index
            .groups()
            .iter()
            .map(|g| g.file_id.to_string())
            .collect();
        assert_eq!(ids, vec!["in".to_string()]);
        assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
        assert_eq!(s.problems[0].file, "groups/out.json");
        assert!(
            s.problems[0].message.contains("leaves groups/"),
            "{}",
            s.problems[0]
        );
        let s = loader.load();
        assert_eq!((s.problems.len(), s.changed_files), (1, 0));
        fs::remove_dir_all(&root).unwrap();
    }

    fn seed(root: &Path) -> DataDir {
        let dd = DataDir::new(root);
        dd.ensure_layout().unwrap();
        fs::write(
            root.join("groups/a.json"),
            r#"{"id":"a","profile":"p","selector":{"mac":"52:54:00:00:00:01"}}"#,
        )
        .unwrap();
        fs::write(
            root.join("groups/b.json"),
            r#"{"id":"b","profile":"p","selector":{"mac":"52:54:00:00:00:02"}}"#,
        )
        .unwrap();
        fs::write(
            root.join("profiles/p.json"),
            r#"{"id":"p","boot":{"kernel":"/assets/k"}}"#,
        )
        .unwrap();
        dd
    }

    fn profile_of(s: &Snapshot, mac: &str) -> Option<String> {
        let labels: Labels = [("mac".to_string(), mac.to_string())].into();
        let g = s.select(&labels)?;
        Some(g.profile.to_string())
    }

    fn dir_problem(s: &Snapshot) -> &Problem {
        let p = s.problems.iter().find(|p| p.directory);
        p.unwrap_or_else(|| panic!("no directory problem in {:?}", s.problems))
    }

    #[test]
    fn a_vanished_groups_dir_keeps_its_groups_until_it_is_back() {
        let root = tmp();
        let dd = seed(&root);
        let mut loader = Loader::new(dd);
        let s = loader.load();
        assert_eq!((s.index.groups().len(), s.problems.len()), (2, 0));
        let groups = root.join("groups");

        // Renamed away: both groups stay, the problem names the path, once a change.
        fs::rename(&groups, root.join("groups.old")).unwrap();
        let s = loader.load();
        assert_eq!(s.index.groups().len(), 2);
        assert_eq!(
            s.changed_files, 1,
            "a vanished directory rebuilds the snapshot"
        );
        let p = dir_problem(&s);
        assert_eq!(p.file, "groups/");
        assert!(p.kept_previous);
        let missing = format!("{} is missing", groups.display());
        assert!(p.message.contains(&missing), "{p}");
        assert!(p.message.contains("the 2 groups"), "{p}");
        // Still gone: the same problem, nothing changed (logged once).
        let s = loader.load();
        assert_eq!((s.index.groups().len(), s.changed_files), (2, 0));
        assert_eq!(s.problems.len(), 1);

        // Replaced by a file: gone another way, a change (its warning comes out once).
        fs::write(&groups, "not a directory").unwrap();
        let s = loader.load();
        assert_eq!((s.index.groups().len(), s.changed_files), (2, 1));
        assert_eq!(loader.load().changed_files, 0);
        let p = dir_problem(&s);
        assert!(p.message.contains("is not a directory"), "{p}");
        assert_eq!(profile_of(&s, "52:54:00:00:00:01").as_deref(), Some("p"));

        // Restored with changed content: the change is served, the problem is gone.
        fs::remove_file(&groups).unwrap();
        fs::create_dir(&groups).unwrap();
        fs::write(
            groups.join("a.json"),
            r#"{"id":"a","profile":"q","selector":{"mac":"52:54:00:00:00:01"}}"#,
        )
        .unwrap();
        let s = loader.load();
        assert!(s.changed_files > 0);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(
            s.index.groups().len(),
            1,
            "b.json is not in the restored groups/"
        );
        assert_eq!(profile_of(&s, "52:54:00:00:00:01").as_deref(), Some("q"));

        // Renamed back as it was: everything is read again from it.
        fs::remove_dir_all(&groups).unwrap();
        let s = loader.load();
        assert_eq!(s.index.groups().len(), 1, "the last loaded content stays");
        fs::rename(root.join("groups.old"), &groups).unwrap();
        let s = loader.load();
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.index.groups().len(), 2);
        assert_eq!(profile_of(&s, "52:54:00:00:00:01").as_deref(), Some("p"));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_vanished_profiles_dir_keeps_its_profiles() {
        let root = tmp();
        let dd = seed(&root);
        let mut loader = Loader::new(dd);
        loader.load();
        fs::remove_dir_all(root.join("profiles")).unwrap();
        let s = loader.load();
        assert!(s.profiles.contains_key("p"));
        let g = s.index.groups().first().cloned().unwrap();
        assert!(s.profile_for(&g).is_ok());
        let p = dir_problem(&s);
        assert_eq!(p.file, "profiles/");
        assert!(p.message.contains("the 1 profile loaded"), "{p}");
        // The loader never recreates what vanished (the data directory may be read-only).
        assert!(!root.join("profiles").exists());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_explicit_reload_accepts_a_vanished_dir() {
        let root = tmp();
        let dd = seed(&root);
        let mut loader = Loader::new(dd);
        loader.load();
        fs::remove_dir_all(root.join("groups")).unwrap();
        assert_eq!(loader.load().index.groups().len(), 2);
        // SIGHUP: matchbox would serve nothing from a missing groups/; so does Kindling.
        let s = loader.load_explicit();
        assert_eq!(s.index.groups().len(), 0);
        assert!(s.changed_files > 0);
        let p = dir_problem(&s);
        assert!(!p.kept_previous);
        assert!(p.message.contains("explicit reload"), "{p}");
        assert!(p.message.contains("2 groups dropped"), "{p}");
        // From then on, a missing groups/ is an empty area, as at start-up.
        let s = loader.load();
        assert_eq!((s.index.groups().len(), s.changed_files), (0, 0));
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert!(!root.join("groups").exists(), "never recreated");
        // Profiles, still there, are untouched by the explicit reload.
        assert!(s.profiles.contains_key("p"));
        // Brought back: loaded again.
        fs::create_dir(root.join("groups")).unwrap();
        fs::write(
            root.join("groups/c.json"),
            r#"{"id":"c","profile":"p","selector":{"os":"x"}}"#,
        )
        .unwrap();
        let s = loader.load();
        assert_eq!(s.index.groups().len(), 1);
        // An explicit reload with everything in place changes nothing.
        let s = loader.load_explicit();
        assert_eq!((s.index.groups().len(), s.changed_files), (1, 0));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn at_first_load_a_missing_dir_is_empty_and_a_file_is_a_problem() {
        let root = tmp();
        fs::create_dir_all(root.join("profiles")).unwrap();
        let s = Loader::new(DataDir::new(&root)).load();
        assert_eq!(s.index.groups().len(), 0);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert!(!root.join("groups").exists());
        fs::write(root.join("groups"), "x").unwrap();
        let s = Loader::new(DataDir::new(&root)).load();
        let p = dir_problem(&s);
        assert!(!p.kept_previous);
        assert!(p.message.contains("is not a directory"), "{p}");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_directory_handle_knows_when_its_path_moved_on() {
        let root = tmp();
        let groups = root.join("groups");
        fs::create_dir_all(&groups).unwrap();
        let open = || cap_std::fs::Dir::open_ambient_dir(&groups, cap_std::ambient_authority());
        let d = open().unwrap();
        assert!(still_at(&d, &groups));
        fs::rename(&groups, root.join("old")).unwrap();
        assert!(!still_at(&d, &groups), "renamed away");
        fs::create_dir(&groups).unwrap();
        assert!(!still_at(&d, &groups), "another directory");
        assert!(still_at(&open().unwrap(), &groups));
        fs::remove_dir(&groups).unwrap();
        fs::write(&groups, "x").unwrap();
        assert!(!still_at(&d, &groups), "a file");
        assert_eq!(probe_gone(&groups), Unavailable::NotADirectory);
        fs::remove_file(&groups).unwrap();
        assert_eq!(probe_gone(&groups), Unavailable::Missing);
        fs::remove_dir_all(&root).unwrap();
    }
}
