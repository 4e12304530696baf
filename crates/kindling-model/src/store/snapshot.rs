//! The immutable, indexed view of the data directory that a load produces, and the problems
//! found on the way.

use std::collections::HashMap;
use std::sync::Arc;

use super::area::{Area, ReadError, clean_within};
use super::confined::DataDir;
use super::memfiles::MemObjects;
use crate::group::Group;
use crate::index::Index;
use crate::labels::Labels;
use crate::profile::Profile;

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

/// An immutable, indexed view of the data directory.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub index: Index,
    pub profiles: HashMap<String, Arc<Profile>>,
    /// Profiles that failed to load and have no good version: key -> message.
    pub invalid_profiles: HashMap<String, String>,
    pub problems: Vec<Problem>,
    pub generation: u64,
    /// Files parsed anew or removed since the previous load.
    pub changed_files: usize,
    /// Where Ignition, generic and cloud files are read per request: `None`, the data
    /// directory (read at each request, as matchbox does); a shared store's objects,
    /// held in memory with the snapshot (the request path never waits on the store).
    pub files: Option<Arc<MemObjects>>,
}

impl Snapshot {
    pub fn select(&self, labels: &Labels) -> Option<&Arc<Group>> {
        self.index.select(labels)
    }

    /// An Ignition, generic or cloud file, as a request reads it: from the store the
    /// snapshot was loaded from (the data directory `dir`, or the shared store's objects).
    pub fn read(&self, dir: &DataDir, area: Area, name: &str) -> Result<Vec<u8>, ReadError> {
        match &self.files {
            None => dir.read(area, name),
            Some(objects) => super::memfiles::read(objects, area, name),
        }
    }

    /// The profile a group names, looked up like matchbox's file store
    /// (`profiles/<id>.json`), but never outside `profiles/`.
    pub fn profile_for(&self, group: &Group) -> Result<&Arc<Profile>, ProfileLookupError> {
        let key = profile_key_of(&group.profile).ok_or_else(|| ProfileLookupError::Escapes {
            group: group.file_id.to_string(),
            profile: group.profile.to_string(),
        })?;
        if let Some(p) = self.profiles.get(key.as_ref()) {
            return Ok(p);
        }
        if let Some(m) = self.invalid_profiles.get(key.as_ref()) {
            return Err(ProfileLookupError::Invalid {
                group: group.file_id.to_string(),
                profile: group.profile.to_string(),
                message: m.clone(),
            });
        }
        Err(ProfileLookupError::Missing {
            group: group.file_id.to_string(),
            profile: group.profile.to_string(),
            file: format!("profiles/{key}.json"),
        })
    }
}

/// The key of profile id `id` (its path below `profiles/` without `.json`).
pub fn profile_key(id: &str) -> Option<String> {
    profile_key_of(id).map(std::borrow::Cow::into_owned)
}

/// [`profile_key`], borrowed from `id` when `id` is a plain name (no `/`: its only path
/// component is `{id}.json`, which is never `.` or `..`), as nearly every profile id is.
fn profile_key_of(id: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !id.is_empty() && !id.contains('/') {
        return Some(std::borrow::Cow::Borrowed(id));
    }
    let parts = clean_within(&format!("{id}.json"), "profiles")?;
    let joined = parts.join("/");
    joined
        .strip_suffix(".json")
        .filter(|k| !k.is_empty())
        .map(|k| std::borrow::Cow::Owned(k.to_string()))
}
