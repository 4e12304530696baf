//! [`Versions`]: what a loader knows of one area's files between loads (each file's
//! version, parsed content and last good content), and which files a load found.
//!
//! A load walks the area once ([`Versions::begin`], then [`Versions::update`] for each file
//! it finds), then drops what it did not find ([`Versions::sweep`]). Each entry remembers
//! the last load that found it, so a load holds no list or set of the names it saw (at
//! 10,000 groups, re-checked every 30 s, such a list was ≈ 0.6 MB allocated and freed each
//! time; bench/memory found no change to the peak without it, but one mechanism now serves
//! both loaders).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::snapshot::Problem;
use crate::group::Str;

/// What tells a version of a file from the next: its stat for a data directory, its
/// modification revision for a shared store's object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stamp {
    File {
        modified: Option<SystemTime>,
        len: u64,
        ino: u64,
    },
    Revision(i64),
}

pub(super) struct Entry<T> {
    /// `None` when the file could not be opened (e.g. a symlink leaving the
    /// area): it is tried again on every load.
    stamp: Option<Stamp>,
    current: Result<Arc<T>, String>,
    last_good: Option<Arc<T>>,
    /// The last load that found the file ([`Versions::begin`]'s number).
    found: u64,
}

impl<T> Entry<T> {
    /// What is served from the file: its current version, or its last good one while it
    /// is broken; when there is none, why (the current version's error).
    pub(super) fn in_force(&self) -> Result<&Arc<T>, &String> {
        match (&self.current, &self.last_good) {
            (Ok(v), _) | (Err(_), Some(v)) => Ok(v),
            (Err(m), None) => Err(m),
        }
    }
}

/// One area's files, by key (a group or profile name: the file's path without `.json`).
pub(super) struct Versions<T> {
    entries: HashMap<Str, Entry<T>>,
    /// The load under way (or the last one).
    load: u64,
}

impl<T> Default for Versions<T> {
    fn default() -> Self {
        Versions {
            entries: HashMap::new(),
            load: 0,
        }
    }
}

impl<T> Versions<T> {
    /// Starts a load: from now on, [`Versions::sweep`] drops every file that
    /// [`Versions::update`] is not called for.
    pub(super) fn begin(&mut self) {
        self.load += 1;
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&Str, &Entry<T>)> {
        self.entries.iter()
    }

    /// Forgets every file (a directory accepted as gone).
    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Makes the next load re-read `key` whatever its stamp says.
    pub(super) fn forget_stamp(&mut self, key: &str) {
        if let Some(e) = self.entries.get_mut(key) {
            e.stamp = None;
        }
    }

    /// Whether the load under way has not found some file known before.
    pub(super) fn missed_some(&self) -> bool {
        self.entries.values().any(|e| e.found != self.load)
    }

    /// Drops the files the load under way did not find. Returns how many.
    pub(super) fn sweep(&mut self) -> usize {
        let before = self.entries.len();
        let load = self.load;
        self.entries.retain(|_, e| e.found == load);
        before - self.entries.len()
    }

    /// One file's turn in a load: `stamp` is its version (or why it cannot be opened),
    /// `read` gives its bytes and is called only when the version is new; `file` names it
    /// in problems. Returns whether the file changed. A version that does not parse keeps
    /// the last good one in force.
    pub(super) fn update<E: std::fmt::Display>(
        &mut self,
        key: &str,
        file: impl FnOnce() -> String,
        stamp: Result<Stamp, String>,
        read: impl FnOnce() -> Result<Vec<u8>, String>,
        parse: fn(&str, &[u8]) -> Result<T, E>,
        problems: &mut Vec<Problem>,
    ) -> bool {
        let load = self.load;
        if let Some(e) = self.entries.get_mut(key) {
            let unchanged = match &stamp {
                Ok(st) => e.stamp == Some(*st),
                Err(m) => e.stamp.is_none() && e.current.as_ref().err() == Some(m),
            };
            if unchanged {
                e.found = load;
                if let Err(m) = &e.current {
                    problems.push(Problem {
                        file: file(),
                        message: m.clone(),
                        kept_previous: e.last_good.is_some(),
                        directory: false,
                    });
                }
                return false;
            }
        }
        let st = stamp.as_ref().ok().copied();
        let current = stamp.and_then(|_| {
            let bytes = read()?;
            parse(key, &bytes).map(Arc::new).map_err(|e| e.to_string())
        });
        let previous_good = self
            .entries
            .get(key)
            .and_then(|e| e.in_force().ok().cloned());
        let last_good = match &current {
            Ok(v) => Some(v.clone()),
            Err(_) => previous_good,
        };
        if let Err(m) = &current {
            problems.push(Problem {
                file: file(),
                message: m.clone(),
                kept_previous: last_good.is_some(),
                directory: false,
            });
        }
        self.entries.insert(
            key.into(),
            Entry {
                stamp: st,
                current,
                last_good,
                found: load,
            },
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(_: &str, b: &[u8]) -> Result<String, String> {
        let s = std::str::from_utf8(b).map_err(|e| e.to_string())?;
        if s.starts_with('{') {
            Ok(s.to_string())
        } else {
            Err(format!("not an object: {s:?}"))
        }
    }

    fn turn(v: &mut Versions<String>, key: &str, rev: i64, bytes: &str) -> (bool, Vec<Problem>) {
        let mut problems = Vec::new();
        let changed = v.update(
            key,
            || format!("groups/{key}.json"),
            Ok(Stamp::Revision(rev)),
            || Ok(bytes.as_bytes().to_vec()),
            parse,
            &mut problems,
        );
        (changed, problems)
    }

    #[test]
    fn a_load_drops_exactly_the_files_it_did_not_find() {
        let mut v = Versions::default();
        v.begin();
        for k in ["a", "b", "c"] {
            assert!(turn(&mut v, k, 1, "{}").0);
        }
        assert!(!v.missed_some());
        assert_eq!(v.sweep(), 0);

        // Found unchanged (a) or changed (c), not found (b): only b goes.
        v.begin();
        assert!(!turn(&mut v, "a", 1, "{}").0);
        assert!(turn(&mut v, "c", 2, "{\"c\":2}").0);
        assert!(v.missed_some());
        assert_eq!(v.sweep(), 1);
        let mut keys: Vec<_> = v.iter().map(|(k, _)| k.to_string()).collect();
        keys.sort();
        assert_eq!(keys, ["a", "c"]);

        // A load that finds nothing drops everything; one that was not swept keeps it.
        v.begin();
        assert!(v.missed_some());
        v.begin();
        assert!(!turn(&mut v, "a", 1, "{}").0);
        assert_eq!(v.sweep(), 1);
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn a_broken_version_keeps_the_last_good_one_and_is_reported_each_load() {
        let mut v = Versions::default();
        v.begin();
        turn(&mut v, "a", 1, "{1}");
        v.begin();
        let (changed, problems) = turn(&mut v, "a", 2, "broken");
        assert!(changed);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].kept_previous);
        assert_eq!(problems[0].file, "groups/a.json");
        let (_, e) = v.iter().next().unwrap();
        assert_eq!(e.in_force().ok().map(|s| s.as_str()), Some("{1}"));

        // Unchanged and still broken: reported again, not re-read, still found.
        v.begin();
        let mut problems = Vec::new();
        let changed = v.update(
            "a",
            || "groups/a.json".to_string(),
            Ok(Stamp::Revision(2)),
            || panic!("an unchanged file is not read again"),
            parse,
            &mut problems,
        );
        assert!(!changed);
        assert_eq!(problems.len(), 1);
        assert_eq!(v.sweep(), 0);

        // A forgotten stamp is read again, even at the same version.
        v.forget_stamp("a");
        v.begin();
        assert!(turn(&mut v, "a", 2, "{2}").0);
        let (_, e) = v.iter().next().unwrap();
        assert_eq!(e.in_force().ok().map(|s| s.as_str()), Some("{2}"));
    }
}
