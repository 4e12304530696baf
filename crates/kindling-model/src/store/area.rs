//! The areas of a data directory, the size limits of what is read from them, and names
//! cleaned so that they stay inside their area.

use std::io;

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

/// Largest group or profile file the [`Loader`](super::Loader) parses: 1 MiB. A group with
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
