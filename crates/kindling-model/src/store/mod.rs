//! The data directory (matchbox's layout) and its loader.
//!
//! `groups/*.json` and `profiles/**/*.json` are loaded into a [`Snapshot`]
//! (an immutable, indexed view). The [`Loader`] remembers the last good
//! version of every file: when a file becomes invalid, the problem is reported
//! and the previous version stays in force until the file is fixed or removed.
//! The same holds for the `groups/` and `profiles/` directories themselves: one
//! that vanishes (deleted, renamed, replaced by a file, unreadable) keeps what
//! was loaded from it in force, reported as a problem naming its path, until it
//! is back or an explicit reload (`Loader::reload(true)`, SIGHUP) accepts that it is
//! gone. The loader never creates or changes anything in the data directory.
//! Ignition, generic and cloud files are read per request, confined to their
//! directories (symlinks that leave them are refused).

mod area;
mod confined;
mod durable;
mod loader;
mod memfiles;
mod memory;
mod objects;
mod remote;
mod snapshot;
#[cfg(test)]
mod tests;
mod versions;

pub use area::{
    Area, LAYOUT, MAX_DATA_FILE_BYTES, MAX_TEMPLATE_BYTES, ReadError, clean_within, human_bytes,
};
pub use confined::{DataDir, Opened, open_confined, open_in, resolve_confined};
pub use durable::{sweep_interrupted, write_atomic};
pub use loader::Loader;
pub use memfiles::{MemObject, MemObjects, area_of};
pub use memory::MemLoader;
pub use objects::{Kind, MAX_ID_BYTES, ObjectError, Objects, check_id, tag};
pub use remote::{Expect, Mismatch, Remote};
pub use snapshot::{Problem, ProfileLookupError, Snapshot, profile_key};
