//! [`MemLoader`] turns a shared store's objects (`memfiles`) into a [`Snapshot`] with the
//! data directory's rules:
//! only objects that changed (by revision) are parsed again, and one that no longer
//! parses keeps its last good version in force, reported as a problem.

use std::sync::Arc;

use super::area::{Area, MAX_DATA_FILE_BYTES};
use super::loader::build;
use super::memfiles::{MemObjects, area_of};
use super::snapshot::{Problem, Snapshot};
use super::versions::{Stamp, Versions};
use crate::group::Group;
use crate::profile::Profile;

/// Builds snapshots from a store's objects, parsing only those whose revision changed,
/// keeping the last good version of those that no longer parse.
#[derive(Default)]
pub struct MemLoader {
    groups: Versions<Group>,
    profiles: Versions<Profile>,
    generation: u64,
}

impl MemLoader {
    pub fn new() -> MemLoader {
        MemLoader::default()
    }

    /// The snapshot of `objects`: groups and profiles parsed and indexed, the other
    /// objects served from memory with it.
    pub fn load(&mut self, objects: Arc<MemObjects>) -> Snapshot {
        self.generation += 1;
        let mut problems = Vec::new();
        let changed = refresh(
            &mut self.groups,
            &objects,
            Area::Groups,
            Group::parse,
            &mut problems,
        ) + refresh(
            &mut self.profiles,
            &objects,
            Area::Profiles,
            Profile::parse,
            &mut problems,
        );
        let mut snap = build(
            &self.groups,
            &self.profiles,
            problems,
            self.generation,
            changed,
        );
        snap.files = Some(objects);
        snap
    }
}

fn refresh<T, E: std::fmt::Display>(
    cache: &mut Versions<T>,
    objects: &MemObjects,
    area: Area,
    parse: fn(&str, &[u8]) -> Result<T, E>,
    problems: &mut Vec<Problem>,
) -> usize {
    let dir = format!("{}/", area.dir());
    let mut changed = 0;
    cache.begin();
    for (path, o) in objects.range(dir.clone()..) {
        let Some(rel) = path.strip_prefix(&dir) else {
            break;
        };
        if area_of(path) != Some(area) {
            continue;
        }
        let Some(key) = rel.strip_suffix(".json") else {
            continue;
        };
        let size = o.bytes.len() as u64;
        let stamp = if size > MAX_DATA_FILE_BYTES {
            Err(format!(
                "too large: {size} bytes, over the 1 MiB limit for group and profile files"
            ))
        } else {
            Ok(Stamp::Revision(o.revision))
        };
        let read = || Ok(o.bytes.to_vec());
        changed += usize::from(cache.update(key, || path.clone(), stamp, read, parse, problems));
    }
    changed + cache.sweep()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::area::ReadError;
    use crate::store::memfiles::MemObject;

    fn obj(bytes: &str, revision: i64) -> MemObject {
        MemObject {
            bytes: Arc::from(bytes.as_bytes()),
            revision,
        }
    }

    #[test]
    fn keys_follow_the_data_directory_layout() {
        assert_eq!(area_of("groups/web.json"), Some(Area::Groups));
        assert_eq!(area_of("groups/sub/web.json"), None);
        assert_eq!(area_of("groups/web.txt"), None);
        assert_eq!(area_of("profiles/fcos/stable.json"), Some(Area::Profiles));
        assert_eq!(area_of("ignition/a.ign"), Some(Area::Ignition));
        assert_eq!(area_of("ignition/../profiles/x.json"), None);
        assert_eq!(area_of("ignition//a"), None);
        assert_eq!(area_of("assets/kernel"), None);
        assert_eq!(area_of("machines/52:54:00:00:00:01.json"), None);
    }

    #[test]
    fn broken_objects_keep_their_last_good_version_and_files_are_served_from_memory() {
        let mut objects = MemObjects::new();
        objects.insert(
            "groups/web.json".into(),
            obj(
                r#"{"id":"web","profile":"p","selector":{"mac":"52:54:00:00:00:01"}}"#,
                5,
            ),
        );
        objects.insert("profiles/p.json".into(), obj(r#"{"id":"p"}"#, 6));
        objects.insert("ignition/a.ign".into(), obj("{}", 7));
        let mut loader = MemLoader::new();
        let s = loader.load(Arc::new(objects.clone()));
        assert_eq!(s.index.groups().len(), 1);
        assert_eq!(s.profiles.len(), 1);
        assert!(s.problems.is_empty());
        assert_eq!(s.changed_files, 2);
        let dir = super::super::DataDir::new("/nonexistent");
        assert_eq!(s.read(&dir, Area::Ignition, "a.ign").unwrap(), b"{}");
        assert!(matches!(
            s.read(&dir, Area::Ignition, "../profiles/p.json"),
            Err(ReadError::Escapes(..))
        ));
        assert!(matches!(
            s.read(&dir, Area::Generic, "a.ign"),
            Err(ReadError::NotFound(_))
        ));

        // Same revisions: nothing parsed again.
        let s = loader.load(Arc::new(objects.clone()));
        assert_eq!(s.changed_files, 0);

        // A broken group: the last good one stays, reported.
        objects.insert("groups/web.json".into(), obj("{", 8));
        let s = loader.load(Arc::new(objects.clone()));
        assert_eq!(s.index.groups().len(), 1);
        assert_eq!(s.problems.len(), 1);
        assert!(s.problems[0].kept_previous, "{:?}", s.problems);
        assert_eq!(s.problems[0].file, "groups/web.json");

        // Removed: gone.
        objects.remove("groups/web.json");
        let s = loader.load(Arc::new(objects));
        assert_eq!(s.index.groups().len(), 0);
        assert!(s.problems.is_empty());
    }
}
