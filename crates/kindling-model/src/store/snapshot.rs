//! The immutable, indexed view of the data directory that a load produces.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Problem, ProfileLookupError, clean_within};
use crate::group::Group;
use crate::index::Index;
use crate::labels::Labels;
use crate::profile::Profile;

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
}

impl Snapshot {
    pub fn select(&self, labels: &Labels) -> Option<&Arc<Group>> {
        self.index.select(labels)
    }

    /// The profile a group names, looked up like matchbox's file store
    /// (`profiles/<id>.json`), but never outside `profiles/`.
    pub fn profile_for(&self, group: &Group) -> Result<&Arc<Profile>, ProfileLookupError> {
        let key = profile_key(&group.profile).ok_or_else(|| ProfileLookupError::Escapes {
            group: group.file_id.to_string(),
            profile: group.profile.to_string(),
        })?;
        if let Some(p) = self.profiles.get(&key) {
            return Ok(p);
        }
        if let Some(m) = self.invalid_profiles.get(&key) {
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
    let parts = clean_within(&format!("{id}.json"), "profiles")?;
    let joined = parts.join("/");
    joined
        .strip_suffix(".json")
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}
