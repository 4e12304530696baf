//! The journal's settings: [`JournalConfig`] (directory, size cap, number of files,
//! [`FsyncPolicy`]) and where its files are ([`JOURNAL_FILE`], [`journal_path`]). Read
//! by the writer and the readers alike; imports nothing else of the journal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Name of the active journal file.
pub const JOURNAL_FILE: &str = "events.jsonl";

/// When the journal is flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// After each round of writes (what reached the writer together, at most 1 MiB).
    Always,
    /// At most every `fsync_interval_ms`.
    #[default]
    Interval,
    /// Never: the kernel writes back when it chooses.
    Never,
}

/// Journal settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    pub dir: PathBuf,
    /// Size at which the active file is rotated.
    pub max_bytes: u64,
    /// Files kept, the active one included (>= 1).
    pub files: usize,
    pub fsync: FsyncPolicy,
    pub fsync_interval: Duration,
}

impl JournalConfig {
    pub fn new(dir: impl Into<PathBuf>) -> JournalConfig {
        JournalConfig {
            dir: dir.into(),
            max_bytes: 8 * 1024 * 1024,
            files: 4,
            fsync: FsyncPolicy::Interval,
            fsync_interval: Duration::from_secs(1),
        }
    }
}

/// Path of journal file number `n` (0 = active).
pub fn journal_path(dir: &Path, n: usize) -> PathBuf {
    if n == 0 {
        dir.join(JOURNAL_FILE)
    } else {
        dir.join(format!("{JOURNAL_FILE}.{n}"))
    }
}
