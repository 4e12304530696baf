//! The pull-through cache behind `/cache/<entry>/<arch>/<file>`.
//!
//! Only files named in the catalog can be fetched (it is not an open proxy).
//! The first request for a missing file starts ONE upstream download, which
//! runs on its own task and writes `tmp/*.part` while every request for that
//! file (the first and any that arrive meanwhile) streams what has arrived so
//! far and follows the growing file. The last byte is held back until the
//! download is complete and verified; only then is the file renamed into
//! `files/` and added to the index. A failed or mismatching download is
//! deleted and its clients' connections are cut short of Content-Length.
//!
//! Files are opened relative to handles of `files/` and `tmp/` (cap-std:
//! `openat2` with `RESOLVE_BENEATH` on Linux), so the kernel refuses any
//! name or symlink that leads outside; what is served is checked on the
//! opened descriptor (a regular file of the indexed length), never by path.
//! Who may start an upstream fetch is decided in [`crate::guard`].
//!
//! The parts, each depending only on those listed before it:
//!
//! * `error`: [`CacheError`].
//! * `files`: opening beneath `files/` and `tmp/` ([`Opened`]).
//! * `token`: the operator token ([`read_operator_token`]).
//! * `follow`: a download's progress and the [`Follower`]s that stream the
//!   growing part file.
//! * `index`: [`Held`] records, `index.json`, LRU eviction.
//! * `api`: [`Cache`]: open, look up, start downloads, prefetch, admission
//!   counters.
//! * `fill`: running one download and verifying it; progress log lines.

mod api;
mod error;
mod files;
mod fill;
mod follow;
mod index;
mod token;

pub use api::{Cache, Counters, Fill, Lookup};
pub use error::CacheError;
pub use files::Opened;
pub(crate) use fill::{log_complete, log_progress};
pub use follow::{Follower, Start};
pub use index::{Held, key};
pub use token::{OPERATOR_TOKEN_FILE, read_operator_token};
