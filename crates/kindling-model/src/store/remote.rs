//! Objects in a shared store (etcd) instead of a data directory: the same checks, ids and
//! errors as [`Objects`](super::Objects) on files, the store doing the
//! compare-and-swap. A key is the object's path in a data directory
//! (`groups/<id>.json`), its tag is the store's version of it (etcd: the modification
//! revision), so a write made through any server of a fleet is checked against what
//! every other server wrote.

use std::io;

use super::objects::{Expect, Kind, ObjectError};

/// A write or delete the store refused because the precondition did not hold: the
/// object's tag now (`None`: there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch(pub Option<String>);

/// A shared store of objects. Implementations check `expect` and write in one atomic
/// step on the store's side (a transaction), so two servers cannot both win.
pub trait Remote: Send + Sync + std::fmt::Debug {
    /// The object's bytes and tag, `None` when there is none.
    fn get(&self, key: &str) -> io::Result<Option<(Vec<u8>, String)>>;
    /// Writes when `expect` holds: the new tag and whether the object is new.
    fn put(
        &self,
        key: &str,
        bytes: &[u8],
        expect: &Expect,
    ) -> io::Result<Result<(String, bool), Mismatch>>;
    /// Deletes when `expect` holds: whether there was an object.
    fn delete(&self, key: &str, expect: &Expect) -> io::Result<Result<bool, Mismatch>>;
    /// The names directly below `dir/` (e.g. `web.json` for `groups`), sorted.
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;
}

pub(super) fn key(kind: Kind, id: &str) -> String {
    format!("{}/{}", kind.area().dir(), kind.file_name(id))
}

fn io_err(kind: Kind, id: &str, source: io::Error) -> ObjectError {
    ObjectError::Io {
        what: kind.what(),
        id: id.to_string(),
        source,
    }
}

fn changed(kind: Kind, id: &str, m: Mismatch) -> ObjectError {
    ObjectError::Changed {
        what: kind.what(),
        id: id.to_string(),
        current: m.0,
    }
}

pub(super) fn get(r: &dyn Remote, kind: Kind, id: &str) -> Result<Vec<u8>, ObjectError> {
    match r.get(&key(kind, id)) {
        Ok(Some((bytes, _))) => Ok(bytes),
        Ok(None) => Err(ObjectError::NotFound {
            what: kind.what(),
            id: id.to_string(),
        }),
        Err(e) => Err(io_err(kind, id, e)),
    }
}

pub(super) fn current_tag(
    r: &dyn Remote,
    kind: Kind,
    id: &str,
) -> Result<Option<String>, ObjectError> {
    r.get(&key(kind, id))
        .map(|o| o.map(|(_, tag)| tag))
        .map_err(|e| io_err(kind, id, e))
}

pub(super) fn put(
    r: &dyn Remote,
    kind: Kind,
    id: &str,
    bytes: &[u8],
    expect: &Expect,
) -> Result<(String, bool), ObjectError> {
    r.put(&key(kind, id), bytes, expect)
        .map_err(|e| io_err(kind, id, e))?
        .map_err(|m| changed(kind, id, m))
}

pub(super) fn delete(
    r: &dyn Remote,
    kind: Kind,
    id: &str,
    expect: &Expect,
) -> Result<bool, ObjectError> {
    r.delete(&key(kind, id), expect)
        .map_err(|e| io_err(kind, id, e))?
        .map_err(|m| changed(kind, id, m))
}

pub(super) fn list(r: &dyn Remote, kind: Kind) -> Result<Vec<String>, ObjectError> {
    let names = r.list(kind.area().dir()).map_err(|e| io_err(kind, "", e))?;
    let mut ids: Vec<String> = names
        .iter()
        .filter_map(|n| kind.id_of(n).map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}
