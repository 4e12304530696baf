//! Opening files beneath the cache's directories: names are resolved by
//! the kernel beneath a directory handle (cap-std: `openat2` with
//! `RESOLVE_BENEATH` on Linux), non-blocking so a planted FIFO cannot hang
//! a request; what is served ([`Opened`]) is checked on the descriptor.

use std::io;
use std::path::Path;

/// A cached file, opened (beneath `files/`) and checked on the descriptor.
#[derive(Debug)]
pub struct Opened {
    pub file: std::fs::File,
    /// `fstat` of `file`: a regular file of the indexed length.
    pub meta: std::fs::Metadata,
}

/// Opens `rel` for reading beneath `dir` (the kernel refuses escapes).
pub(super) fn open_beneath(dir: &cap_std::fs::Dir, rel: &str) -> io::Result<std::fs::File> {
    use cap_std::fs::OpenOptionsExt;
    let mut o = cap_std::fs::OpenOptions::new();
    // O_NONBLOCK: opening a FIFO planted in the cache must not hang.
    o.read(true).custom_flags(libc::O_NONBLOCK);
    dir.open_with(rel, &o).map(|f| f.into_std())
}

pub(super) fn open_dir(path: &Path) -> io::Result<cap_std::fs::Dir> {
    cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority())
}
