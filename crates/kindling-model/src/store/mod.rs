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

mod confined;
mod loader;
mod snapshot;
#[cfg(test)]
mod tests;

use std::io;

pub use confined::{DataDir, Opened, open_confined, open_in, resolve_confined};
pub use loader::Loader;
pub use snapshot::{Snapshot, profile_key};

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
