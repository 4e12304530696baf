//! What the cache holds and how much: the records of `index.json`
//! ([`Held`], keyed by `entry/arch/file`), the shared state (index and
//! downloads in flight), and least-recently-used eviction that keeps the
//! total within `max_bytes`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::follow::Flight;
use crate::catalog::Arch;

/// One file held, as recorded in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub entry: String,
    pub arch: Arch,
    pub file: String,
    /// The upstream URL it was fetched from (a changed URL is refetched).
    pub url: String,
    pub size: u64,
    pub sha256: String,
    /// Checked against a published checksum (false: upstream publishes none).
    pub verified: bool,
    /// Unix seconds.
    pub fetched: u64,
    pub last_used: u64,
}

impl Held {
    pub fn key(&self) -> String {
        key(&self.entry, self.arch, &self.file)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct IndexFile {
    pub(super) version: u32,
    pub(super) files: Vec<Held>,
}

/// `entry/arch/file`.
pub fn key(entry: &str, arch: Arch, file: &str) -> String {
    format!("{entry}/{}/{file}", arch.as_str())
}

#[derive(Default)]
pub(super) struct State {
    pub(super) index: BTreeMap<String, Held>,
    pub(super) inflight: HashMap<String, Arc<Flight>>,
    pub(super) dirty: bool,
}

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Removes least-recently-used files until the total fits (never `keep`).
pub(super) fn evict(st: &mut State, max: u64, keep: &str) -> Vec<Held> {
    let mut total: u64 = st.index.values().map(|h| h.size).sum();
    let mut out = Vec::new();
    while total > max {
        let victim = st
            .index
            .values()
            .filter(|h| h.key() != keep)
            .min_by_key(|h| h.last_used)
            .map(|h| h.key());
        let Some(v) = victim else { break };
        if let Some(h) = st.index.remove(&v) {
            total = total.saturating_sub(h.size);
            out.push(h);
            st.dirty = true;
        }
    }
    out
}
