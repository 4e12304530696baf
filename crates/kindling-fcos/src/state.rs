//! `assets/fedora-coreos/<stream>/state.json`: which releases of a stream are
//! on disk and which one the profile boots.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::FcosError;

/// The per-stream state (written atomically).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamState {
    pub stream: String,
    pub arch: String,
    /// The release the profile boots.
    pub current: Option<String>,
    /// Verified releases on disk, newest pull first (`current` among them).
    pub releases: Vec<String>,
    /// Releases rolled back from: pulls and the tracker do not switch to them
    /// again (`kindling fcos pull --force` does).
    pub skipped: Vec<String>,
    /// Unix time of the last switch.
    pub switched_at: Option<u64>,
}

/// `<data_dir>/assets/fedora-coreos/<stream>`.
pub fn stream_dir(data_dir: &Path, stream: &str) -> PathBuf {
    data_dir.join("assets").join("fedora-coreos").join(stream)
}

/// `<stream dir>/state.json`.
pub fn state_path(data_dir: &Path, stream: &str) -> PathBuf {
    stream_dir(data_dir, stream).join("state.json")
}

impl StreamState {
    /// Reads the state; a missing file is an empty state.
    pub fn load(data_dir: &Path, stream: &str) -> Result<StreamState, FcosError> {
        let path = state_path(data_dir, stream);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| FcosError::State {
                path,
                why: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StreamState {
                stream: stream.to_string(),
                ..StreamState::default()
            }),
            Err(e) => Err(FcosError::io(path, e)),
        }
    }

    /// Writes the state atomically.
    pub fn save(&self, data_dir: &Path) -> Result<(), FcosError> {
        let path = state_path(data_dir, &self.stream);
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| FcosError::State {
            path: path.clone(),
            why: e.to_string(),
        })?;
        bytes.push(b'\n');
        crate::fsutil::write_atomic(&path, &bytes)
    }

    /// The kept release just older than `current` (what `rollback` goes to).
    pub fn previous(&self) -> Option<&String> {
        let cur = self.current.as_ref()?;
        let i = self.releases.iter().position(|r| r == cur)?;
        self.releases.get(i + 1)
    }

    /// Records `release` as the newest and current one; returns the releases
    /// that no longer fit in `keep` (never the current one).
    pub fn switch_to(&mut self, release: &str, keep: usize) -> Vec<String> {
        self.releases.retain(|r| r != release);
        self.releases.insert(0, release.to_string());
        self.current = Some(release.to_string());
        self.switched_at = now();
        self.trim(keep)
    }

    /// Drops releases beyond `keep` (at least 1): never the current one, and
    /// releases rolled back from go before the others. Returns the dropped ones.
    pub fn trim(&mut self, keep: usize) -> Vec<String> {
        let keep = keep.max(1);
        let cur = self.current.clone();
        let mut priority: Vec<&String> = Vec::new();
        priority.extend(self.releases.iter().filter(|r| Some(*r) == cur.as_ref()));
        priority.extend(
            self.releases
                .iter()
                .filter(|r| Some(*r) != cur.as_ref() && !self.skipped.contains(r)),
        );
        priority.extend(
            self.releases
                .iter()
                .filter(|r| Some(*r) != cur.as_ref() && self.skipped.contains(r)),
        );
        let kept: Vec<String> = priority.into_iter().take(keep).cloned().collect();
        let (keep_list, dropped): (Vec<String>, Vec<String>) = std::mem::take(&mut self.releases)
            .into_iter()
            .partition(|r| kept.contains(r));
        self.releases = keep_list;
        dropped
    }

    /// Marks `release` as rolled back from (remembered for the last 16).
    pub fn skip(&mut self, release: &str) {
        self.skipped.retain(|r| r != release);
        self.skipped.push(release.to_string());
        let excess = self.skipped.len().saturating_sub(16);
        self.skipped.drain(..excess);
    }
}

fn now() -> Option<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_and_previous() {
        let mut s = StreamState::default();
        assert!(s.switch_to("1", 2).is_empty());
        assert!(s.switch_to("2", 2).is_empty());
        assert_eq!(s.previous().map(String::as_str), Some("1"));
        assert_eq!(s.switch_to("3", 2), vec!["1".to_string()]);
        assert_eq!(s.releases, vec!["3", "2"]);
        // Rolled back to 2, then keep 1: 2 stays (current), 3 goes.
        s.current = Some("2".into());
        assert_eq!(s.trim(1), vec!["3".to_string()]);
        assert_eq!(s.releases, vec!["2"]);
        assert_eq!(s.previous(), None);
    }

    #[test]
    fn skipped_releases_go_first() {
        let mut s = StreamState::default();
        s.switch_to("1", 2);
        s.switch_to("2", 2);
        s.current = Some("1".into());
        s.skip("2");
        assert_eq!(s.switch_to("3", 2), vec!["2".to_string()]);
        assert_eq!(s.releases, vec!["3", "1"]);
    }
}
