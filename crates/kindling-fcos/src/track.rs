//! Stream tracking for `kindling serve`: the `[fcos]` config table and a loop
//! that pulls each tracked stream on an interval.

use kindling_model::FcosTrack;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::state::Track;
use crate::sync::{PullOptions, PullOutcome, RetryPolicy, pull};

/// The `[fcos]` table of `kindling.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FcosConfig {
    /// Streams `kindling serve` keeps current (empty: no tracking), each `STREAM` (of
    /// `arch`) or `STREAM/ARCH`, e.g. `["stable", "stable/aarch64"]`; it writes their
    /// assets and profiles into the data directory, each architecture apart
    /// (`fedora-coreos-stable`, `fedora-coreos-stable-aarch64`).
    pub streams: Vec<String>,
    /// Architecture of the `streams` entries that name none (`x86_64`, `aarch64`, ...).
    pub arch: String,
    /// The operator's own profiles kept on the current release too, each `PROFILE` (kept
    /// on the first entry of `streams`) or `PROFILE=STREAM[/ARCH]`, e.g.
    /// `["fedora-core-1"]`: only their kernel and initramfs paths and
    /// `coreos.live.rootfs_url` change, every other byte stays.
    pub profiles: Vec<String>,
    /// Where the stream metadata is (`<base_url>/streams/<stream>.json`).
    pub base_url: String,
    /// Keyring file or directory of Fedora's OpenPGP keys. Unset: the first that exists of
    /// `/usr/share/distribution-gpg-keys/fedora` and `/etc/pki/rpm-gpg`.
    pub keyring: Option<PathBuf>,
    /// Skip OpenPGP signatures (never the sha256). Loud in the logs.
    pub insecure: bool,
    /// Releases kept on disk per stream, the current one included (at least 1; 0 is refused).
    pub keep: usize,
    /// Seconds between checks (6 hours by default; the first is at start-up).
    pub interval_secs: u64,
    /// `http://host:port` the machines reach this server on, for the profile's
    /// `coreos.live.rootfs_url` and `ignition.config.url`. Unset: the one in the existing
    /// profile.
    pub server_url: Option<String>,
}

impl Default for FcosConfig {
    fn default() -> Self {
        FcosConfig {
            streams: Vec::new(),
            arch: "x86_64".into(),
            base_url: crate::DEFAULT_BASE_URL.into(),
            keyring: None,
            insecure: false,
            keep: 2,
            interval_secs: 6 * 3600,
            server_url: None,
            profiles: Vec::new(),
        }
    }
}

impl FcosConfig {
    /// The tracks of `streams`, in order, without repeats.
    pub fn tracks(&self) -> Result<Vec<Track>, crate::FcosError> {
        let mut out: Vec<Track> = Vec::new();
        for s in &self.streams {
            let t = Track::parse(s, &self.arch)?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// The operator's profiles (`profiles`) kept on `track`.
    pub fn profiles_for(&self, track: &Track) -> Result<Vec<String>, crate::FcosError> {
        let tracks = self.tracks()?;
        let mut out = Vec::new();
        for p in &self.profiles {
            let (id, on) = match p.split_once('=') {
                Some((id, t)) => (id, Some(Track::parse(t, &self.arch)?)),
                None => (p.as_str(), tracks.first().cloned()),
            };
            crate::stream::check_name("profile", id)?;
            if on.as_ref() == Some(track) {
                out.push(id.to_string());
            }
        }
        Ok(out)
    }

    /// Pull options for one track of this config, with its operator profiles.
    pub fn pull_options(&self, data_dir: impl Into<PathBuf>, track: &Track) -> PullOptions {
        PullOptions {
            arch: track.arch.clone(),
            base_url: self.base_url.clone(),
            keyring: self.keyring.clone(),
            insecure: self.insecure,
            keep: self.keep,
            server_url: self.server_url.clone(),
            profiles: self.profiles_for(track).unwrap_or_default(),
            ..PullOptions::new(data_dir, &track.stream)
        }
    }

    /// Checks values a typo would break (stream names, URL, interval, a
    /// profile kept on a stream that is not tracked).
    pub fn validate(&self) -> Result<(), crate::FcosError> {
        crate::stream::check_name("arch", &self.arch)?;
        let tracks = self.tracks()?;
        for p in &self.profiles {
            if let Some((_, t)) = p.split_once('=') {
                let t = Track::parse(t, &self.arch)?;
                if !tracks.contains(&t) {
                    return Err(crate::FcosError::Invalid {
                        what: "fcos.profiles entry",
                        value: p.clone(),
                        why: "its STREAM[/ARCH] is not in fcos.streams",
                    });
                }
            } else if tracks.is_empty() {
                return Err(crate::FcosError::Invalid {
                    what: "fcos.profiles entry",
                    value: p.clone(),
                    why: "fcos.streams is empty: no stream to keep it on",
                });
            }
        }
        for t in &tracks {
            self.profiles_for(t)?;
        }
        crate::stream::stream_url(&self.base_url, "stable")?;
        if let Some(u) = &self.server_url {
            crate::profile::normalize_server_url(u)?;
        }
        crate::sync::check_keep("fcos.keep", self.keep)?;
        if self.interval_secs == 0 {
            return Err(crate::FcosError::Invalid {
                what: "fcos.interval_secs",
                value: "0".into(),
                why: "must be at least 1",
            });
        }
        Ok(())
    }
}

/// Shared status of the tracker.
#[derive(Debug, Default)]
pub struct FcosStatus {
    inner: Mutex<BTreeMap<String, FcosTrack>>,
}

impl FcosStatus {
    pub fn new() -> FcosStatus {
        FcosStatus::default()
    }

    /// One entry per tracked stream, sorted by name.
    pub fn snapshot(&self) -> Vec<FcosTrack> {
        match self.inner.lock() {
            Ok(g) => g.values().cloned().collect(),
            Err(p) => p.into_inner().values().cloned().collect(),
        }
    }

    fn update(&self, stream: &str, f: impl FnOnce(&mut FcosTrack)) {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let e = g.entry(stream.to_string()).or_insert_with(|| FcosTrack {
            stream: stream.split('/').next().unwrap_or(stream).to_string(),
            ..FcosTrack::default()
        });
        f(e);
    }
}

fn now() -> Option<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Checks every stream of `config` now and then every `interval_secs`: pulls,
/// verifies and switches the profile (atomically; the server's watcher
/// reloads it). A failed check leaves the profile as it was and is recorded
/// in `status`. Returns when `cancel` fires (an interrupted download resumes
/// from its `.part` file next time).
pub async fn track(
    config: FcosConfig,
    data_dir: PathBuf,
    status: Arc<FcosStatus>,
    cancel: CancellationToken,
) {
    if config.streams.is_empty() {
        return;
    }
    let tracks = match config.validate().and_then(|()| config.tracks()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "fcos tracking disabled: invalid [fcos] config");
            for s in &config.streams {
                status.update(s, |st| st.last_error = Some(e.to_string()));
            }
            return;
        }
    };
    for t in &tracks {
        let cur = crate::state::StreamState::load(&data_dir, t)
            .ok()
            .and_then(|st| st.current);
        status.update(&t.to_string(), |st| {
            st.stream = t.stream.clone();
            st.arch = t.arch.clone();
            st.current = cur;
        });
    }
    let interval = Duration::from_secs(config.interval_secs);
    loop {
        for track in &tracks {
            let stream = &track.to_string();
            let mut opts = config.pull_options(&data_dir, track);
            opts.retry = RetryPolicy::default();
            let span =
                tracing::info_span!("fcos_track", stream = %track.stream, arch = %track.arch);
            let result = tokio::select! {
                r = pull(&opts).instrument(span) => r,
                () = cancel.cancelled() => return,
            };
            let t = now();
            match result {
                Ok(outcome) => {
                    let (current, upstream, switched) = match &outcome {
                        PullOutcome::Switched { to, .. } => {
                            (Some(to.clone()), Some(to.clone()), true)
                        }
                        PullOutcome::UpToDate { release } => {
                            (Some(release.clone()), Some(release.clone()), false)
                        }
                        PullOutcome::Skipped { release, current } => {
                            (current.clone(), Some(release.clone()), false)
                        }
                    };
                    if switched {
                        match &current {
                            Some(r) => {
                                tracing::info!(track = %stream, release = %r, "fcos tracker switched the profile")
                            }
                            None => {
                                tracing::info!(track = %stream, "fcos tracker switched the profile")
                            }
                        }
                    }
                    status.update(stream, |st| {
                        st.current = current;
                        st.upstream = upstream;
                        st.last_error = None;
                        st.last_check = t;
                        st.last_success = t;
                        st.consecutive_failures = 0;
                        st.switches += u64::from(switched);
                    });
                }
                Err(e) => {
                    tracing::warn!(track = %stream, error = %e, "fcos check failed; profile unchanged");
                    status.update(stream, |st| {
                        st.last_error = Some(e.to_string());
                        st.last_check = t;
                        st.failures += 1;
                        st.consecutive_failures += 1;
                    });
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = cancel.cancelled() => return,
        }
    }
}
