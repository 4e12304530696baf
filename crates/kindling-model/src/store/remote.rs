//! Objects in a shared store (etcd) instead of a data directory: the same checks, ids and
//! errors as [`Objects`](super::Objects) on files, the store doing the
//! compare-and-swap. A key is the object's path in a data directory
//! (`groups/<id>.json`), its tag is the store's version of it (etcd: the modification
//! revision), so a write made through any server of a fleet is checked against what
//! every other server wrote.

use std::io;

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

/// What a write or delete expects to find (HTTP's `If-Match` and `If-None-Match`), so
/// that two operators editing one object cannot silently overwrite each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there (matchbox's API, and requests without a precondition).
    Anything,
    /// The object as it was when it had this tag ([`tag`](super::objects::tag)).
    Tag(String),
    /// Some version of the object (`If-Match: *`).
    Present,
    /// No object yet (`If-None-Match: *`): create only.
    Absent,
}

impl Expect {
    pub(super) fn holds(&self, current: Option<&str>) -> bool {
        match self {
            Expect::Anything => true,
            Expect::Tag(t) => current == Some(t.as_str()),
            Expect::Present => current.is_some(),
            Expect::Absent => current.is_none(),
        }
    }
}
