//! The in-memory selection index.
//!
//! matchbox re-reads and sorts every group on every request and returns the
//! first group, in its evaluation order, whose selectors all match. The index
//! gives the same answer without scanning: each group is filed under one
//! "anchor" selector pair with a non-empty value (the rarest pair it has); a
//! group can only match a request that carries its anchor pair as a label.
//! Groups whose selectors are all empty-valued (default groups, the
//! empty-value quirk) are always candidates. A lookup therefore costs one hash
//! probe per request label plus the few candidates found.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;

use crate::group::Group;
use crate::labels::Labels;

/// Groups in matchbox's evaluation order, plus the lookup structures.
#[derive(Debug, Default)]
pub struct Index {
    groups: Vec<Arc<Group>>,
    /// Hash of an anchor pair `(key, value)` -> the ranks of the groups anchored
    /// there: one rank inline, or (top bit set) an index into `shared`. Only a
    /// hash is kept: candidates are checked in full, so a collision costs one
    /// extra check, never a wrong answer.
    postings: HashMap<u64, u32>,
    /// Rank lists (ascending) of anchor pairs with more than one group.
    shared: Vec<Vec<u32>>,
    /// Ranks (ascending) of groups with no non-empty selector value.
    always: Vec<u32>,
    hasher: RandomState,
}

const SHARED: u32 = 1 << 31;

/// Why a group was or was not chosen, for `kindling select` and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Considered {
    pub rank: usize,
    pub file_id: String,
    pub selector: String,
    /// `None` if the group matches, else (key, wanted value, label value).
    pub mismatch: Option<(String, String, Option<String>)>,
}

fn pair_hash(hasher: &RandomState, k: &str, v: &str) -> u64 {
    let mut h = hasher.build_hasher();
    k.hash(&mut h);
    v.hash(&mut h);
    h.finish()
}

impl Index {
    /// Builds the index; `groups` may be in any order.
    pub fn build(mut groups: Vec<Arc<Group>>) -> Index {
        groups.sort_by(|a, b| Group::eval_order(a, b));
        let mut counts: HashMap<(&str, &str), usize> = HashMap::new();
        for g in &groups {
            for (k, v) in &g.selector {
                if !v.is_empty() {
                    *counts.entry((k, v)).or_default() += 1;
                }
            }
        }
        let hasher = RandomState::new();
        let mut postings: HashMap<u64, u32> = HashMap::with_capacity(groups.len());
        let mut shared: Vec<Vec<u32>> = Vec::new();
        let mut always = Vec::new();
        for (rank, g) in groups.iter().enumerate() {
            let rank = rank as u32;
            let anchor = g
                .selector
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .min_by_key(|(k, v)| counts.get(&(*k, *v)).copied().unwrap_or(0));
            let Some((k, v)) = anchor else {
                always.push(rank);
                continue;
            };
            // Ranks rise as we go, so every list stays ascending.
            match postings.entry(pair_hash(&hasher, k, v)) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(rank);
                }
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let slot = *e.get();
                    if slot & SHARED != 0 {
                        if let Some(list) = shared.get_mut((slot & !SHARED) as usize) {
                            list.push(rank);
                        }
                    } else {
                        e.insert(shared.len() as u32 | SHARED);
                        shared.push(vec![slot, rank]);
                    }
                }
            }
        }
        drop(counts);
        postings.shrink_to_fit();
        Index {
            groups,
            postings,
            shared,
            always,
            hasher,
        }
    }

    /// All groups in evaluation order.
    pub fn groups(&self) -> &[Arc<Group>] {
        &self.groups
    }

    /// The group matchbox would select for these labels.
    pub fn select(&self, labels: &Labels) -> Option<&Arc<Group>> {
        let mut best = u32::MAX;
        let mut consider = |list: &[u32]| {
            for &rank in list {
                if rank >= best {
                    break;
                }
                if self
                    .groups
                    .get(rank as usize)
                    .is_some_and(|g| g.matches(labels))
                {
                    best = rank;
                    break;
                }
            }
        };
        consider(&self.always);
        for (k, v) in labels {
            match self.postings.get(&pair_hash(&self.hasher, k, v)) {
                None => {}
                Some(&slot) if slot & SHARED != 0 => {
                    if let Some(list) = self.shared.get((slot & !SHARED) as usize) {
                        consider(list);
                    }
                }
                Some(&rank) => consider(&[rank]),
            }
        }
        self.groups.get(best as usize)
    }

    /// Every group in evaluation order up to and including the one selected,
    /// each with the reason it did or did not match (at most `limit` entries).
    pub fn explain(&self, labels: &Labels, limit: usize) -> Vec<Considered> {
        let mut out = Vec::new();
        for (rank, g) in self.groups.iter().enumerate() {
            if out.len() >= limit {
                break;
            }
            let mismatch = g
                .first_mismatch(labels)
                .map(|(k, want, got)| (k.to_string(), want.to_string(), got.map(str::to_string)));
            let matched = mismatch.is_none();
            out.push(Considered {
                rank,
                file_id: g.file_id.to_string(),
                selector: g.selector_string.to_string(),
                mismatch,
            });
            if matched {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn g(file: &str, sel: &[(&str, &str)]) -> Arc<Group> {
        let selector: BTreeMap<String, String> = sel
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Arc::new(Group::new(
            file,
            file.into(),
            String::new(),
            "p".into(),
            selector,
            &Default::default(),
        ))
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The reference: matchbox's linear scan.
    fn linear<'a>(groups: &'a [Arc<Group>], l: &Labels) -> Option<&'a str> {
        let mut sorted: Vec<&Arc<Group>> = groups.iter().collect();
        sorted.sort_by(|a, b| Group::eval_order(a, b));
        sorted
            .into_iter()
            .find(|g| g.matches(l))
            .map(|g| g.file_id.as_str())
    }

    #[test]
    fn tie_break_reverse_lexicographic() {
        let idx = Index::build(vec![
            g("tie-rack", &[("rack", "1")]),
            g("tie-zone", &[("zone", "z")]),
        ]);
        let got = idx
            .select(&labels(&[("rack", "1"), ("zone", "z")]))
            .unwrap();
        assert_eq!(got.file_id, "tie-zone");
    }

    #[test]
    fn more_selectors_first_and_default_last() {
        let idx = Index::build(vec![
            g("default", &[]),
            g("mac", &[("mac", "52:54:00:aa:bb:cc")]),
            g(
                "mac-installed",
                &[("mac", "52:54:00:aa:bb:cc"), ("os", "installed")],
            ),
        ]);
        let m = |l: &[(&str, &str)]| idx.select(&labels(l)).map(|g| g.file_id.clone());
        assert_eq!(m(&[("mac", "52:54:00:aa:bb:cc")]).as_deref(), Some("mac"));
        assert_eq!(
            m(&[("mac", "52:54:00:aa:bb:cc"), ("os", "installed")]).as_deref(),
            Some("mac-installed")
        );
        assert_eq!(
            m(&[("mac", "52:54:00:aa:bb:cd")]).as_deref(),
            Some("default")
        );
        assert_eq!(m(&[]).as_deref(), Some("default"));
    }

    #[test]
    fn agrees_with_linear_scan_on_many_shapes() {
        // A deterministic pseudo-random corpus of selectors and requests.
        let keys = ["mac", "os", "uuid", "rack", "zone", "MAC"];
        let vals = ["", "a", "b", "c", "52:54:00:00:00:01"];
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut groups = Vec::new();
        for i in 0..200 {
            let n = next(4);
            let sel: Vec<(&str, &str)> = (0..n)
                .map(|_| (keys[next(keys.len())], vals[next(vals.len())]))
                .collect();
            groups.push(g(&format!("g{i:03}"), &sel));
        }
        let idx = Index::build(groups.clone());
        for _ in 0..2000 {
            let n = next(5);
            let l: Labels = (0..n)
                .map(|_| {
                    (
                        keys[next(keys.len())].to_string(),
                        vals[next(vals.len())].to_string(),
                    )
                })
                .collect();
            assert_eq!(
                idx.select(&l).map(|g| g.file_id.as_str()),
                linear(&groups, &l),
                "labels {l:?}"
            );
        }
    }
}
