//! The cache's errors ([`CacheError`]): every one names the file it is
//! about, as `entry/arch/file`.

use std::path::PathBuf;

/// Cache errors. Every one names the entry (`entry/arch/file`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// The name as the client sent it (quoted and escaped: it is untrusted).
    #[error("{0:?}: not in the catalog")]
    Unknown(String),
    #[error("{key}: {why}")]
    Upstream { key: String, why: String },
    /// `why`: the transport's error, with its causes (empty when the body
    /// just ended early).
    #[error("{key}: upstream closed the transfer after {got} of {want} bytes{}", colon(.why))]
    Truncated {
        key: String,
        got: u64,
        want: u64,
        why: String,
    },
    #[error("{key}: checksum mismatch: expected sha256 {expected}, got {actual}; not kept")]
    Mismatch {
        key: String,
        expected: String,
        actual: String,
    },
    #[error("{key}: cannot verify: {why}; not kept")]
    Unverifiable { key: String, why: String },
    #[error("{key}: local disk: {why}")]
    Disk { key: String, why: String },
    #[error("cache directory {path}: {why}")]
    Open { path: PathBuf, why: String },
    /// The indexed name does not open as a regular file beneath the cache
    /// directory (a symlink leading out, a directory, a device, ...).
    #[error("{key}: refused: {why}")]
    Refused { key: String, why: String },
}

/// `": why"`, or nothing when `why` is empty.
fn colon(why: &str) -> String {
    if why.is_empty() {
        String::new()
    } else {
        format!(": {why}")
    }
}
