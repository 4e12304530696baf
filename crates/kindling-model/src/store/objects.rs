//! The write side of a data directory: what the management APIs (matchbox's gRPC, later
//! REST and the CLI) put, get, delete and list. One object is one file where matchbox keeps
//! it (`groups/<id>.json`, `profiles/<id>.json`, `ignition/<name>`, `generic/<name>`), so
//! the loader, `kindling check` and matchbox itself read what was written.
//!
//! Every write is atomic and durable: the bytes go to a new hidden temporary file in the
//! same directory, which is synced, renamed over the name, and the directory is synced.
//! A crash leaves the old file or the new one, never a mix, and an acknowledged write
//! survives power loss. The temporary names (`.<name>.<pid>.<n>.tmp`) never end in
//! `.json`, so the loader never reads one.
//!
//! Names are refused, not cleaned: an id with `/`, `..`, a leading `.`, a NUL or a control
//! character, or longer than 200 bytes, cannot name a file of another area (matchbox
//! writes `IgnitionPut "../profiles/x.json"` into `profiles/`). Groups and profiles are
//! parsed before they are written, with the loader's own parsers, so a write the server
//! would not load (a MAC selector that does not parse, a profile without an id) is refused
//! with the reason. Errors name the object, never a server path.

use std::io;
use std::sync::{Arc, Mutex};

use super::area::{Area, MAX_DATA_FILE_BYTES, MAX_TEMPLATE_BYTES, ReadError, human_bytes};
use super::confined::{DataDir, open_confined};
use super::durable::{open_area, sweep_interrupted, sync_dir, write_atomic};
use super::remote::{Expect, Mismatch, Remote};
use crate::group::Group;
use crate::profile::Profile;

/// The kinds of object the management APIs write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Group,
    Profile,
    Ignition,
    Generic,
}

impl Kind {
    pub fn area(self) -> Area {
        match self {
            Kind::Group => Area::Groups,
            Kind::Profile => Area::Profiles,
            Kind::Ignition => Area::Ignition,
            Kind::Generic => Area::Generic,
        }
    }

    /// The word for messages: "group", "profile", "Ignition config", "generic template".
    pub fn what(self) -> &'static str {
        match self {
            Kind::Group => "group",
            Kind::Profile => "profile",
            Kind::Ignition => "Ignition config",
            Kind::Generic => "generic template",
        }
    }

    /// Groups and profiles are `<id>.json`; templates keep their name.
    pub(super) fn file_name(self, id: &str) -> String {
        match self {
            Kind::Group | Kind::Profile => format!("{id}.json"),
            Kind::Ignition | Kind::Generic => id.to_string(),
        }
    }

    /// The id of a file of this area, or `None` for files that are not objects.
    pub(super) fn id_of(self, file: &str) -> Option<&str> {
        let id = match self {
            Kind::Group | Kind::Profile => file.strip_suffix(".json")?,
            Kind::Ignition | Kind::Generic => file,
        };
        check_id(id).ok().map(|()| id)
    }

    fn limit(self) -> u64 {
        match self {
            Kind::Group | Kind::Profile => MAX_DATA_FILE_BYTES,
            Kind::Ignition | Kind::Generic => MAX_TEMPLATE_BYTES,
        }
    }
}

/// Longest id accepted (a file name is at most 255 bytes; room for `.json` and the
/// temporary name's decorations).
pub const MAX_ID_BYTES: usize = 200;

/// Why an object could not be written, read, deleted or listed. Messages name the object
/// and never a path of the server.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{what} id {id:?} is refused: {why}")]
    BadId {
        what: &'static str,
        id: String,
        why: &'static str,
    },
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id:?} is not valid: {reason}")]
    Invalid {
        what: &'static str,
        id: String,
        reason: String,
    },
    #[error("{what} {id:?} is too large: {size} bytes, over the limit of {}", human_bytes(*limit))]
    TooLarge {
        what: &'static str,
        id: String,
        size: u64,
        limit: u64,
    },
    #[error("{what} {id:?} is not as expected: {}", changed(current.as_deref()))]
    Changed {
        what: &'static str,
        id: String,
        /// Its tag now (`None`: there is none).
        current: Option<String>,
    },
    #[error("{what} {id:?}: storage error: {}", io_kind(source))]
    Io {
        what: &'static str,
        id: String,
        source: io::Error,
    },
}

fn changed(current: Option<&str>) -> String {
    match current {
        Some(t) => format!("its tag is now {t:?}"),
        None => "it does not exist".into(),
    }
}

/// An object's version tag: the first 128 bits of the SHA-256 of its bytes, in hex (the
/// REST API's ETag). Equal bytes, equal tags, whoever wrote them.
pub fn tag(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The error's kind and OS code without the path the standard library may not add anyway.
fn io_kind(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{} (os error {code})", e.kind()),
        None => e.kind().to_string(),
    }
}

/// Refuses ids that could name anything but one file of one area.
pub fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("it is empty");
    }
    if id.len() > MAX_ID_BYTES {
        return Err("it is longer than 200 bytes");
    }
    if id.contains('/') {
        return Err("it contains '/'");
    }
    if id.contains("..") {
        return Err("it contains '..'");
    }
    if id.starts_with('.') {
        return Err("it starts with '.'");
    }
    if id.chars().any(|c| c.is_control()) {
        return Err("it contains a control character");
    }
    Ok(())
}

/// The objects of a data directory. Clones share one write lock: a write's precondition
/// and the write itself happen as one step for every writer of this process.
#[derive(Debug, Clone)]
pub struct Objects {
    dir: DataDir,
    writing: Arc<Mutex<()>>,
    /// A shared store that holds the objects instead of the data directory.
    remote: Option<Arc<dyn Remote>>,
}

impl Objects {
    pub fn new(dir: DataDir) -> Objects {
        Objects {
            dir,
            writing: Arc::new(Mutex::new(())),
            remote: None,
        }
    }

    /// The objects of a shared store (etcd); `dir` is still the data directory of the
    /// server's assets.
    pub fn shared(dir: DataDir, remote: Arc<dyn Remote>) -> Objects {
        Objects {
            remote: Some(remote),
            ..Objects::new(dir)
        }
    }

    /// The shared store, when the objects live in one.
    pub fn remote(&self) -> Option<&Arc<dyn Remote>> {
        self.remote.as_ref()
    }

    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    fn checked(kind: Kind, id: &str) -> Result<(), ObjectError> {
        check_id(id).map_err(|why| ObjectError::BadId {
            what: kind.what(),
            id: id.to_string(),
            why,
        })
    }

    /// Checks that `bytes` would load as this kind of object (groups and profiles with
    /// the loader's parsers; templates are rendered per request and checked there).
    pub fn validate(kind: Kind, id: &str, bytes: &[u8]) -> Result<(), ObjectError> {
        Self::checked(kind, id)?;
        let size = bytes.len() as u64;
        if size > kind.limit() {
            return Err(ObjectError::TooLarge {
                what: kind.what(),
                id: id.to_string(),
                size,
                limit: kind.limit(),
            });
        }
        let reason = match kind {
            Kind::Group => Group::parse(id, bytes).err().map(|e| e.to_string()),
            Kind::Profile => Profile::parse(id, bytes).err().map(|e| e.to_string()),
            Kind::Ignition | Kind::Generic => None,
        };
        match reason {
            Some(reason) => Err(ObjectError::Invalid {
                what: kind.what(),
                id: id.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Writes the object atomically and durably (see the module's documentation), after
    /// [`Objects::validate`]. The area directory is created when missing, as matchbox does.
    /// A file replaced keeps its permission bits; a new one is 0644, as matchbox's.
    pub fn put(&self, kind: Kind, id: &str, bytes: &[u8]) -> Result<(), ObjectError> {
        self.put_expecting(kind, id, bytes, &Expect::Anything)
            .map(|_| ())
    }

    /// [`Objects::put`] when `expect` holds for what is there now, checked and written as
    /// one step ([`ObjectError::Changed`] otherwise, with nothing written). Returns the new
    /// tag and whether the object is new.
    pub fn put_expecting(
        &self,
        kind: Kind,
        id: &str,
        bytes: &[u8],
        expect: &Expect,
    ) -> Result<(String, bool), ObjectError> {
        Self::validate(kind, id, bytes)?;
        if let Some(r) = &self.remote {
            return remote_put(r.as_ref(), kind, id, bytes, expect);
        }
        let io_err = |source| ObjectError::Io {
            what: kind.what(),
            id: id.to_string(),
            source,
        };
        let _one_writer = self.lock();
        let area = self.dir.area(kind.area());
        let name = kind.file_name(id);
        // Without a precondition nothing is read: a stored file that is too large or
        // unreadable is simply replaced.
        let existed = match expect {
            Expect::Anything => area.join(&name).symlink_metadata().is_ok(),
            _ => self.expected(kind, id, expect)?.is_some(),
        };
        if !area.is_dir() {
            // A new area directory must survive a crash too: sync its parent.
            std::fs::create_dir_all(&area).map_err(io_err)?;
            sync_dir(&open_area(self.dir.root()).map_err(io_err)?).map_err(io_err)?;
        }
        write_atomic(&area, &name, bytes).map_err(io_err)?;
        Ok((tag(bytes), !existed))
    }

    /// The write lock: this process's mutex, then an exclusive `flock` on
    /// `<data dir>/.kindling-objects.lock`, so that a precondition and its write are one
    /// step for every writer of the directory (a server, and `kindling group put` without
    /// `--server`). Where the lock file cannot be made (a read-only data directory, where
    /// writes fail anyway), the mutex alone is held.
    fn lock(&self) -> (std::sync::MutexGuard<'_, ()>, Option<std::fs::File>) {
        use std::os::fd::AsRawFd;
        let guard = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.root().join(".kindling-objects.lock"))
            .ok()
            .filter(|f| {
                // SAFETY: flock on a descriptor we own; released when the file closes.
                unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) == 0 }
            });
        (guard, file)
    }

    /// The current tag when `expect` holds for it, else [`ObjectError::Changed`]. Called
    /// with the write lock held.
    fn expected(
        &self,
        kind: Kind,
        id: &str,
        expect: &Expect,
    ) -> Result<Option<String>, ObjectError> {
        let current = self.current_tag(kind, id)?;
        if expect.holds(current.as_deref()) {
            Ok(current)
        } else {
            Err(ObjectError::Changed {
                what: kind.what(),
                id: id.to_string(),
                current,
            })
        }
    }

    /// The object's tag, `None` when there is no object.
    pub fn current_tag(&self, kind: Kind, id: &str) -> Result<Option<String>, ObjectError> {
        if let Some(r) = &self.remote {
            Self::checked(kind, id)?;
            return remote_current_tag(r.as_ref(), kind, id);
        }
        match self.get(kind, id) {
            Ok(b) => Ok(Some(tag(&b))),
            Err(ObjectError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The object's bytes as stored.
    pub fn get(&self, kind: Kind, id: &str) -> Result<Vec<u8>, ObjectError> {
        self.get_tagged(kind, id).map(|(bytes, _)| bytes)
    }

    /// The object's bytes and its tag (the REST API's ETag): the bytes' [`tag`] in a data
    /// directory, the store's version (etcd: the mod revision) in a shared store, read
    /// together so that they agree.
    pub fn get_tagged(&self, kind: Kind, id: &str) -> Result<(Vec<u8>, String), ObjectError> {
        Self::checked(kind, id)?;
        if let Some(r) = &self.remote {
            return remote_get(r.as_ref(), kind, id);
        }
        let bytes = self.read_file(kind, id)?;
        let t = tag(&bytes);
        Ok((bytes, t))
    }

    fn read_file(&self, kind: Kind, id: &str) -> Result<Vec<u8>, ObjectError> {
        let area = kind.area();
        let opened = open_confined(&self.dir.area(area), area.dir(), &kind.file_name(id));
        let what = kind.what();
        let id = id.to_string();
        match opened.and_then(|o| o.read_limited(kind.limit())) {
            Ok(bytes) => Ok(bytes),
            Err(ReadError::NotFound(_) | ReadError::NotAFile(_)) => {
                Err(ObjectError::NotFound { what, id })
            }
            Err(ReadError::TooLarge { size, limit, .. }) => Err(ObjectError::TooLarge {
                what,
                id,
                size,
                limit,
            }),
            Err(ReadError::Io { source, .. }) => Err(ObjectError::Io { what, id, source }),
            Err(ReadError::Escapes(..) | ReadError::Nul(_)) => Err(ObjectError::BadId {
                what,
                id,
                why: "it resolves outside its directory",
            }),
        }
    }

    /// Removes the object and syncs its directory; `Ok(false)` when there was none.
    pub fn delete(&self, kind: Kind, id: &str) -> Result<bool, ObjectError> {
        self.delete_expecting(kind, id, &Expect::Anything)
    }

    /// [`Objects::delete`] when `expect` holds for what is there now (checked and removed
    /// as one step).
    pub fn delete_expecting(
        &self,
        kind: Kind,
        id: &str,
        expect: &Expect,
    ) -> Result<bool, ObjectError> {
        Self::checked(kind, id)?;
        if let Some(r) = &self.remote {
            return remote_delete(r.as_ref(), kind, id, expect);
        }
        let _one_writer = self.lock();
        if *expect != Expect::Anything {
            self.expected(kind, id, expect)?;
        }
        let io_err = |source| ObjectError::Io {
            what: kind.what(),
            id: id.to_string(),
            source,
        };
        let area = match open_area(&self.dir.area(kind.area())) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(e)),
        };
        match area.remove_file(kind.file_name(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(e)),
        }
        sync_dir(&area).map_err(io_err)?;
        Ok(true)
    }

    /// Removes the temporary files of writes that a crash interrupted (`.<name>.<pid>.<n>.tmp`
    /// whose process is gone, or older than an hour) from every area; returns how many.
    /// Recent files of a live process (another server writing the same directory) are
    /// left alone.
    pub fn sweep_temporaries(&self) -> usize {
        if self.remote.is_some() {
            return 0;
        }
        [Kind::Group, Kind::Profile, Kind::Ignition, Kind::Generic]
            .into_iter()
            .map(|kind| sweep_interrupted(&self.dir.area(kind.area())))
            .sum()
    }

    /// The ids of this kind's objects, sorted (files with names no id could have, such as
    /// temporary files, are left out; a missing area is empty).
    pub fn list(&self, kind: Kind) -> Result<Vec<String>, ObjectError> {
        if let Some(r) = &self.remote {
            return remote_list(r.as_ref(), kind);
        }
        let area = match open_area(&self.dir.area(kind.area())) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(ObjectError::Io {
                    what: kind.what(),
                    id: String::new(),
                    source,
                });
            }
        };
        let entries = area.entries().map_err(|source| ObjectError::Io {
            what: kind.what(),
            id: String::new(),
            source,
        })?;
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|name| kind.id_of(&name).map(str::to_string))
            .collect();
        ids.sort();
        Ok(ids)
    }
}

// Objects in a shared store (etcd): the same checks, the store doing the compare-and-swap.

fn remote_key(kind: Kind, id: &str) -> String {
    format!("{}/{}", kind.area().dir(), kind.file_name(id))
}

fn remote_io_err(kind: Kind, id: &str, source: io::Error) -> ObjectError {
    ObjectError::Io {
        what: kind.what(),
        id: id.to_string(),
        source,
    }
}

fn remote_changed(kind: Kind, id: &str, m: Mismatch) -> ObjectError {
    ObjectError::Changed {
        what: kind.what(),
        id: id.to_string(),
        current: m.0,
    }
}

fn remote_get(r: &dyn Remote, kind: Kind, id: &str) -> Result<(Vec<u8>, String), ObjectError> {
    match r.get(&remote_key(kind, id)) {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(ObjectError::NotFound {
            what: kind.what(),
            id: id.to_string(),
        }),
        Err(e) => Err(remote_io_err(kind, id, e)),
    }
}

fn remote_current_tag(r: &dyn Remote, kind: Kind, id: &str) -> Result<Option<String>, ObjectError> {
    r.get(&remote_key(kind, id))
        .map(|o| o.map(|(_, tag)| tag))
        .map_err(|e| remote_io_err(kind, id, e))
}

fn remote_put(
    r: &dyn Remote,
    kind: Kind,
    id: &str,
    bytes: &[u8],
    expect: &Expect,
) -> Result<(String, bool), ObjectError> {
    r.put(&remote_key(kind, id), bytes, expect)
        .map_err(|e| remote_io_err(kind, id, e))?
        .map_err(|m| remote_changed(kind, id, m))
}

fn remote_delete(
    r: &dyn Remote,
    kind: Kind,
    id: &str,
    expect: &Expect,
) -> Result<bool, ObjectError> {
    r.delete(&remote_key(kind, id), expect)
        .map_err(|e| remote_io_err(kind, id, e))?
        .map_err(|m| remote_changed(kind, id, m))
}

fn remote_list(r: &dyn Remote, kind: Kind) -> Result<Vec<String>, ObjectError> {
    let names = r
        .list(kind.area().dir())
        .map_err(|e| remote_io_err(kind, "", e))?;
    let mut ids: Vec<String> = names
        .iter()
        .filter_map(|n| kind.id_of(n).map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::labels_from_query;
    use crate::store::Loader;
    use crate::store::durable::interrupted_write;

    /// A fresh directory of its own, removed when dropped (even when the test fails), and
    /// the objects of a data directory there.
    fn scratch(name: &str) -> (tempfile::TempDir, Objects) {
        let root = tempfile::Builder::new()
            .prefix(&format!("kindling-objects-{name}-"))
            .tempdir()
            .unwrap();
        let o = Objects::new(DataDir::new(root.path()));
        (root, o)
    }

    const GROUP: &[u8] = br#"{"id":"g1","profile":"p1","selector":{"mac":"52:54:00:00:00:01"}}"#;
    const PROFILE: &[u8] = br#"{"id":"p1","boot":{"kernel":"/k","initrd":["/i"],"args":[]}}"#;

    #[test]
    fn a_forgotten_file_is_read_again_even_when_its_stamp_did_not_change() {
        let (root, o) = scratch("forget");
        o.put(Kind::Group, "g1", GROUP).unwrap();
        let mut loader = Loader::new(o.data_dir().clone());
        let first = loader.load();
        let path = root.path().join("groups/g1.json");
        let when = std::fs::metadata(&path).unwrap().modified().unwrap();
        // Same length, same inode, same mtime: the stamp cannot tell.
        let other = br#"{"id":"g1","profile":"p9","selector":{"mac":"52:54:00:00:00:01"}}"#;
        assert_eq!(other.len(), GROUP.len());
        std::fs::write(&path, other).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
        let profile_of = |s: &crate::store::Snapshot| s.index.groups()[0].profile.to_string();
        assert_eq!(profile_of(&first), "p1");
        assert_eq!(
            profile_of(&loader.load()),
            "p1",
            "the stamp hides the change"
        );
        loader.forget(Area::Groups, "g1");
        let after = loader.load();
        assert_eq!(profile_of(&after), "p9");
        assert_eq!(after.changed_files, 1);
    }

    #[test]
    fn temporaries_of_dead_writers_are_swept_and_others_kept() {
        let (root, o) = scratch("sweep");
        std::fs::create_dir_all(root.path().join("groups")).unwrap();
        // pid 0x7fffffff does not exist; ours does.
        let dead = ".g1.json.2147483647.3.tmp";
        let live = format!(".g2.json.{}.1.tmp", std::process::id());
        for n in [dead, live.as_str(), ".notes.tmp", "g3.json"] {
            std::fs::write(root.path().join("groups").join(n), b"x").unwrap();
        }
        assert_eq!(interrupted_write(dead), Some(2147483647));
        assert_eq!(interrupted_write(".notes.tmp"), None);
        assert_eq!(o.sweep_temporaries(), 1);
        assert!(!root.path().join("groups").join(dead).exists());
        for n in [live.as_str(), ".notes.tmp", "g3.json"] {
            assert!(root.path().join("groups").join(n).exists(), "{n}");
        }
    }

    #[test]
    fn preconditions_decide_before_anything_is_written() {
        let (_root, o) = scratch("expect");
        let a = br#"{"id":"g1","profile":"p1"}"#;
        let b = br#"{"id":"g1","profile":"p2"}"#;
        // Create only.
        let (t1, created) = o
            .put_expecting(Kind::Group, "g1", a, &Expect::Absent)
            .unwrap();
        assert!(created);
        assert_eq!(t1, tag(a));
        let again = o.put_expecting(Kind::Group, "g1", b, &Expect::Absent);
        assert!(
            matches!(&again, Err(ObjectError::Changed { current: Some(t), .. }) if *t == t1),
            "{again:?}"
        );
        // A stale tag is refused and nothing changes; the current one is accepted.
        let (t2, created) = o
            .put_expecting(Kind::Group, "g1", b, &Expect::Tag(t1.clone()))
            .unwrap();
        assert!(!created);
        let stale = o.put_expecting(Kind::Group, "g1", a, &Expect::Tag(t1.clone()));
        assert!(
            matches!(stale, Err(ObjectError::Changed { .. })),
            "{stale:?}"
        );
        assert_eq!(o.get(Kind::Group, "g1").unwrap(), b);
        // Deletes too.
        assert!(
            o.delete_expecting(Kind::Group, "g1", &Expect::Tag(t1))
                .is_err()
        );
        assert!(
            o.delete_expecting(Kind::Group, "g1", &Expect::Tag(t2))
                .unwrap()
        );
        let gone = o.put_expecting(Kind::Group, "g1", a, &Expect::Present);
        assert!(
            matches!(gone, Err(ObjectError::Changed { current: None, .. })),
            "{gone:?}"
        );
        assert_eq!(o.current_tag(Kind::Group, "g1").unwrap(), None);
    }

    #[test]
    fn round_trip_of_every_kind_and_the_loader_reads_what_was_written() {
        let (root, o) = scratch("round");
        o.put(Kind::Group, "g1", GROUP).unwrap();
        o.put(Kind::Profile, "p1", PROFILE).unwrap();
        o.put(Kind::Ignition, "p1.ign", b"{}").unwrap();
        o.put(Kind::Generic, "p1.tmpl", b"x={{.x}}").unwrap();
        assert_eq!(o.get(Kind::Group, "g1").unwrap(), GROUP);
        assert_eq!(o.get(Kind::Ignition, "p1.ign").unwrap(), b"{}");
        assert_eq!(o.list(Kind::Group).unwrap(), vec!["g1"]);
        assert_eq!(o.list(Kind::Generic).unwrap(), vec!["p1.tmpl"]);
        assert!(root.path().join("groups/g1.json").is_file());
        assert!(root.path().join("ignition/p1.ign").is_file());
        let snap = Loader::new(o.data_dir().clone()).load();
        let (labels, _) = labels_from_query("mac=52:54:00:00:00:01");
        let g = snap.select(&labels).expect("the written group is selected");
        assert_eq!(snap.profile_for(g).unwrap().id, "p1");
        // Replaced in place; nothing temporary left behind.
        o.put(Kind::Ignition, "p1.ign", b"{\"a\":1}").unwrap();
        assert_eq!(o.get(Kind::Ignition, "p1.ign").unwrap(), b"{\"a\":1}");
        let names: Vec<_> = std::fs::read_dir(root.path().join("ignition"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["p1.ign"]);
        assert!(o.delete(Kind::Group, "g1").unwrap());
        assert!(!o.delete(Kind::Group, "g1").unwrap(), "missing: Ok(false)");
        assert!(matches!(
            o.get(Kind::Group, "g1"),
            Err(ObjectError::NotFound { .. })
        ));
    }

    #[test]
    fn names_that_leave_their_area_are_refused_and_nothing_is_written() {
        let (root, o) = scratch("names");
        for id in [
            "../profiles/x.json",
            "a/b",
            "..",
            ".hidden",
            "",
            "x\0y",
            "a\nb",
        ] {
            let e = o.put(Kind::Ignition, id, b"{}").unwrap_err();
            assert!(matches!(e, ObjectError::BadId { .. }), "{id:?}: {e}");
            assert!(matches!(
                o.get(Kind::Ignition, id),
                Err(ObjectError::BadId { .. })
            ));
            assert!(o.delete(Kind::Ignition, id).is_err());
        }
        assert!(o.put(Kind::Group, &"x".repeat(201), GROUP).is_err());
        assert!(!root.path().join("profiles").exists());
        // A file with an id no API could give is not listed.
        std::fs::create_dir_all(root.path().join("generic")).unwrap();
        std::fs::write(root.path().join("generic/.x.1.2.tmp"), b"").unwrap();
        std::fs::write(root.path().join("generic/ok"), b"").unwrap();
        assert_eq!(o.list(Kind::Generic).unwrap(), vec!["ok"]);
    }

    #[test]
    fn objects_the_loader_would_refuse_are_not_written_and_errors_name_no_path() {
        let (root, o) = scratch("invalid");
        let bad_mac = br#"{"id":"g","profile":"p","selector":{"mac":"52:54:00:zz:00:01"}}"#;
        let e = o.put(Kind::Group, "g", bad_mac).unwrap_err();
        assert!(matches!(e, ObjectError::Invalid { .. }), "{e}");
        assert!(e.to_string().contains("selector mac"), "{e}");
        let e = o
            .put(Kind::Profile, "p", br#"{"name":"no id"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("no id"), "{e}");
        let e = o.put(Kind::Group, "g", b"{\"id\": ").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(o.list(Kind::Group).unwrap().is_empty());
        let root_text = root.path().display().to_string();
        for e in [
            o.get(Kind::Profile, "nope").unwrap_err(),
            o.put(Kind::Group, "g", bad_mac).unwrap_err(),
        ] {
            assert!(!e.to_string().contains(&root_text), "{e}");
        }
    }

    #[test]
    fn a_replaced_file_keeps_its_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let (root, o) = scratch("mode");
        o.put(Kind::Ignition, "secret.ign", b"{}").unwrap();
        let path = root.path().join("ignition/secret.ign");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        o.put(Kind::Ignition, "secret.ign", b"{\"b\":2}").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
