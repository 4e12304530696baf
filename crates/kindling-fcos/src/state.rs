//! `assets/fedora-coreos/<track>/state.json`: which releases of a stream and
//! architecture are on disk and which one the profiles boot.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::FcosError;

/// The architecture whose directory and profile carry the bare stream name
/// (`assets/fedora-coreos/stable/`, `fedora-coreos-stable`), as before
/// architectures were tracked separately.
pub const DEFAULT_ARCH: &str = "x86_64";

/// One stream of one architecture: what one pull keeps current, with its own
/// asset directory, state and profile, so that an aarch64 pull never touches
/// what x86_64 machines boot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Track {
    pub stream: String,
    pub arch: String,
}

impl Track {
    pub fn new(stream: &str, arch: &str) -> Result<Track, FcosError> {
        crate::stream::check_name("stream", stream)?;
        crate::stream::check_name("arch", arch)?;
        Ok(Track {
            stream: stream.to_string(),
            arch: arch.to_string(),
        })
    }

    /// `stable` (of `default_arch`) or `stable/aarch64`.
    pub fn parse(s: &str, default_arch: &str) -> Result<Track, FcosError> {
        match s.split_once('/') {
            Some((stream, arch)) => Track::new(stream, arch),
            None => Track::new(s, default_arch),
        }
    }

    /// The directory under `assets/fedora-coreos/` and the profile id's
    /// suffix: the stream for x86_64, `<stream>-<arch>` for the others.
    pub fn dir_name(&self) -> String {
        if self.arch == DEFAULT_ARCH {
            self.stream.clone()
        } else {
            format!("{}-{}", self.stream, self.arch)
        }
    }
}

/// `stable/x86_64`.
impl fmt::Display for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.stream, self.arch)
    }
}

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
    /// The operator's own profiles kept on the current release besides
    /// `fedora-coreos-<track>` (`--profile`, `fcos.profiles`): only their
    /// asset paths and `coreos.live.rootfs_url` change.
    pub profiles: Vec<String>,
}

/// `<data_dir>/assets/fedora-coreos/<stream>[-<arch>]`.
pub fn stream_dir(data_dir: &Path, track: &Track) -> PathBuf {
    data_dir
        .join("assets")
        .join("fedora-coreos")
        .join(track.dir_name())
}

/// `<stream dir>/state.json`.
pub fn state_path(data_dir: &Path, track: &Track) -> PathBuf {
    stream_dir(data_dir, track).join("state.json")
}

impl StreamState {
    /// Reads the state; a missing file is an empty state. A directory that
    /// holds another architecture's releases (an x86_64 directory an older
    /// Kindling filled with `--arch aarch64`) is refused, never mixed.
    pub fn load(data_dir: &Path, track: &Track) -> Result<StreamState, FcosError> {
        let path = state_path(data_dir, track);
        let mut st: StreamState = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| FcosError::State {
                path: path.clone(),
                why: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StreamState::default(),
            Err(e) => return Err(FcosError::io(path, e)),
        };
        if !st.arch.is_empty() && st.arch != track.arch {
            return Err(FcosError::State {
                path,
                why: format!(
                    "it holds {} releases, not {}; move that directory to fedora-coreos/{} (and its profile to fedora-coreos-{}), or delete it, then pull again",
                    st.arch,
                    track.arch,
                    Track::new(&track.stream, &st.arch)?.dir_name(),
                    Track::new(&track.stream, &st.arch)?.dir_name(),
                ),
            });
        }
        st.stream = track.stream.clone();
        st.arch = track.arch.clone();
        Ok(st)
    }

    pub fn track(&self) -> Track {
        Track {
            stream: self.stream.clone(),
            arch: self.arch.clone(),
        }
    }

    /// Writes the state atomically.
    pub fn save(&self, data_dir: &Path) -> Result<(), FcosError> {
        let path = state_path(data_dir, &self.track());
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
