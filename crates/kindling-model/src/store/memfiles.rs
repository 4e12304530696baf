//! A shared store's objects held in memory (etcd's mirror), keyed by the path the object
//! would have in a data directory (`groups/web.json`, `profiles/fcos/stable.json`,
//! `ignition/worker.ign`), so that what the store holds can be exported back to files at
//! any time; and a request's read of one of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::area::{Area, MAX_TEMPLATE_BYTES, ReadError, clean_within};

/// One object: its bytes and the store's revision of its last change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemObject {
    pub bytes: Arc<[u8]>,
    pub revision: i64,
}

/// The objects of a store by relative path (`groups/web.json`).
pub type MemObjects = BTreeMap<String, MemObject>;

/// Whether `key` (a relative path) is one the data directory layout has: one of the
/// object areas, a clean relative path below it, and for groups and profiles a `.json`
/// name. Anything else a store holds under the prefix is ignored.
pub fn area_of(key: &str) -> Option<Area> {
    let (dir, rest) = key.split_once('/')?;
    let area = match dir {
        "groups" => Area::Groups,
        "profiles" => Area::Profiles,
        "ignition" => Area::Ignition,
        "generic" => Area::Generic,
        "cloud" => Area::Cloud,
        _ => return None,
    };
    // Names a file could not have (NUL, control characters) are not objects.
    if rest.chars().any(char::is_control) {
        return None;
    }
    let clean = clean_within(rest, dir)?;
    if clean.is_empty() || clean.join("/") != rest {
        return None;
    }
    match area {
        Area::Groups if clean.len() != 1 || !rest.ends_with(".json") => None,
        Area::Profiles if !rest.ends_with(".json") => None,
        _ => Some(area),
    }
}

/// An Ignition, generic or cloud file from the objects, named as a request names it
/// (cleaned like a path, never leaving its area), at most [`MAX_TEMPLATE_BYTES`].
pub(super) fn read(objects: &MemObjects, area: Area, name: &str) -> Result<Vec<u8>, ReadError> {
    if name.contains('\0') {
        return Err(ReadError::Nul(name.to_string()));
    }
    let parts = clean_within(name, area.dir())
        .ok_or_else(|| ReadError::Escapes(name.to_string(), area.dir()))?;
    let key = format!("{}/{}", area.dir(), parts.join("/"));
    let o = objects
        .get(&key)
        .ok_or_else(|| ReadError::NotFound(key.clone()))?;
    let size = o.bytes.len() as u64;
    if size > MAX_TEMPLATE_BYTES {
        return Err(ReadError::TooLarge {
            path: key,
            size,
            limit: MAX_TEMPLATE_BYTES,
        });
    }
    Ok(o.bytes.to_vec())
}
