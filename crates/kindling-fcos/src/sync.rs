//! Pull, rollback and status: the verified switch of a stream's profile.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::FcosError;
use crate::download::Fetcher;
pub use crate::download::RetryPolicy;
use crate::fsutil::{StreamLock, sync_dir, write_atomic};
use crate::keyring::{Keyring, MAX_SIGNATURE};
use crate::profile::{self, ProfileSpec};
use crate::state::{StreamState, Track, stream_dir};
use crate::stream::{self, PxeRelease, StreamMetadata};

/// Largest stream metadata document accepted.
const MAX_METADATA: u64 = 32 << 20;

/// What `pull` does.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The matchbox-layout data directory (`assets/`, `profiles/` under it).
    pub data_dir: PathBuf,
    pub stream: String,
    pub arch: String,
    /// Metadata host; `<base_url>/streams/<stream>.json` is read.
    pub base_url: String,
    /// Keyring file or directory; `None`: the first of [`crate::DEFAULT_KEYRINGS`] that exists.
    pub keyring: Option<PathBuf>,
    /// Skip the OpenPGP signature check (never the sha256).
    pub insecure: bool,
    /// Releases kept on disk, the current one included (at least 1; 0 is
    /// refused).
    pub keep: usize,
    /// `http://host:port` machines reach this server on; `None`: taken from
    /// the existing profile's `coreos.live.rootfs_url`.
    pub server_url: Option<String>,
    /// Switch even to a release that was rolled back from.
    pub force: bool,
    /// Progress bar on a terminal.
    pub progress: bool,
    pub retry: RetryPolicy,
    /// The operator's own profiles to keep on the release too (`--profile`,
    /// `fcos.profiles`); remembered in the state, so later pulls and the
    /// tracker keep them current as well.
    pub profiles: Vec<String>,
}

impl PullOptions {
    pub fn new(data_dir: impl Into<PathBuf>, stream: &str) -> PullOptions {
        PullOptions {
            data_dir: data_dir.into(),
            stream: stream.to_string(),
            arch: "x86_64".into(),
            base_url: crate::DEFAULT_BASE_URL.into(),
            keyring: None,
            insecure: false,
            keep: 2,
            server_url: None,
            force: false,
            progress: false,
            retry: RetryPolicy::default(),
            profiles: Vec::new(),
        }
    }

    /// The stream and architecture this pull keeps current.
    pub fn track(&self) -> Result<Track, FcosError> {
        Track::new(&self.stream, &self.arch)
    }
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullOutcome {
    /// The profile now boots `to` (verified); `dropped` releases were deleted.
    Switched {
        from: Option<String>,
        to: String,
        dropped: Vec<String>,
    },
    /// Upstream's release is already current.
    UpToDate { release: String },
    /// Upstream's release was rolled back from; nothing changed.
    Skipped {
        release: String,
        current: Option<String>,
    },
}

/// `<release dir>/release.json`: what was verified, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub stream: String,
    pub arch: String,
    pub release: String,
    pub kernel: String,
    pub initramfs: String,
    pub rootfs: String,
    pub sha256: Vec<String>,
    /// Fingerprints of the keys that signed kernel, initramfs and rootfs;
    /// empty when pulled with `--insecure`.
    pub signed_by: Vec<String>,
    pub insecure: bool,
    pub sources: Vec<String>,
}

impl ReleaseRecord {
    pub fn load(dir: &Path) -> Result<ReleaseRecord, FcosError> {
        let path = dir.join("release.json");
        let b = fs::read(&path).map_err(|e| FcosError::io(&path, e))?;
        serde_json::from_slice(&b).map_err(|e| FcosError::State {
            path,
            why: e.to_string(),
        })
    }
}

/// The server URL of the automatic profile: the one given, else the one it
/// has, else the one the operator's profiles fetch from.
fn resolve_server_url(
    data_dir: &Path,
    track: &Track,
    explicit: Option<&str>,
    operator: &[OperatorProfile],
) -> Result<String, FcosError> {
    if let Some(s) = explicit {
        return profile::normalize_server_url(s);
    }
    let existing = fs::read(profile::profile_path(data_dir, track)).ok();
    let found = existing
        .as_deref()
        .and_then(profile::server_url_of)
        .or_else(|| {
            operator
                .iter()
                .find_map(|p| profile::operator_server_url(&p.bytes))
        });
    match found {
        Some(s) => profile::normalize_server_url(&s),
        None => Err(FcosError::NoServerUrl),
    }
}

/// An operator's profile kept on a track's release, as read before the pull.
struct OperatorProfile {
    id: String,
    bytes: Vec<u8>,
}

/// The operator's profiles a pull of `track` keeps current: those named now
/// (which must exist and boot this architecture's Fedora CoreOS live PXE)
/// and those remembered from earlier pulls (dropped, with a warning, once
/// deleted or re-pointed at something that is not Fedora CoreOS live).
/// Checked before anything is downloaded.
fn operator_profiles(
    data_dir: &Path,
    track: &Track,
    named: &[String],
    remembered: &[String],
) -> Result<Vec<OperatorProfile>, FcosError> {
    let own = profile::profile_id(track);
    let mut out: Vec<OperatorProfile> = Vec::new();
    for (id, is_named) in named
        .iter()
        .map(|i| (i, true))
        .chain(remembered.iter().map(|i| (i, false)))
    {
        if *id == own || out.iter().any(|p| p.id == *id) {
            continue;
        }
        if let Err(e) = stream::check_name("profile", id) {
            if is_named {
                return Err(e);
            }
            continue;
        }
        let path = profile::path_of(data_dir, id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !is_named => {
                tracing::warn!(track = %track, profile = %id, "profile no longer exists; not kept current any more");
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(FcosError::Profile {
                    path,
                    why: format!(
                        "not found: --profile names an existing profile to keep current ({own} is written by the pull itself)"
                    ),
                });
            }
            Err(e) => return Err(FcosError::io(&path, e)),
        };
        if !is_named && !profile::boots_fcos_live(&bytes) {
            tracing::warn!(track = %track, profile = %id, "profile no longer boots Fedora CoreOS live PXE; not kept current any more");
            continue;
        }
        profile::check_operator(&bytes, track).map_err(|why| FcosError::Profile { path, why })?;
        out.push(OperatorProfile {
            id: id.clone(),
            bytes,
        });
    }
    Ok(out)
}

/// Points the operator's profiles at `spec`'s release, each with the server
/// URL it already fetches from (or the one given, or the automatic profile's).
fn write_operator_profiles(
    data_dir: &Path,
    spec: &ProfileSpec,
    explicit_url: Option<&str>,
    operator: &[OperatorProfile],
) -> Result<(), FcosError> {
    for p in operator {
        let url = match explicit_url {
            Some(u) => profile::normalize_server_url(u)?,
            None => profile::operator_server_url(&p.bytes)
                .and_then(|u| profile::normalize_server_url(&u).ok())
                .unwrap_or_else(|| spec.server_url.clone()),
        };
        let mine = ProfileSpec {
            server_url: url,
            ..spec.clone()
        };
        if profile::write_operator(data_dir, &p.id, &mine)? {
            tracing::info!(track = %spec.track, profile = %p.id, release = %spec.release, "operator profile kept current");
        }
    }
    Ok(())
}

/// `keep` counts the current release too, which always stays: 0 is refused
/// rather than quietly read as 1.
pub fn check_keep(what: &'static str, keep: usize) -> Result<(), FcosError> {
    if keep == 0 {
        return Err(FcosError::Invalid {
            what,
            value: keep.to_string(),
            why: "it counts the current release, which always stays; use 1 to keep no older release",
        });
    }
    Ok(())
}

/// Reads the stream metadata and picks the live-PXE release of `arch`.
pub async fn upstream(
    fetcher: &Fetcher,
    base_url: &str,
    stream: &str,
    arch: &str,
) -> Result<PxeRelease, FcosError> {
    stream::check_name("stream", stream)?;
    stream::check_name("arch", arch)?;
    let url = stream::stream_url(base_url, stream)?;
    let bytes = fetcher.get_small(&url, MAX_METADATA).await?;
    let meta = StreamMetadata::parse(url.as_str(), &bytes)?;
    meta.pxe(arch, &url)
}

/// Pulls the stream's current release: downloads kernel, initramfs and
/// rootfs (resuming `.part` files), checks each sha256 and detached
/// signature, moves the release directory into place only when all three
/// are verified, then rewrites the profile and the state, and deletes
/// releases beyond `keep`. On any error nothing is switched.
pub async fn pull(opts: &PullOptions) -> Result<PullOutcome, FcosError> {
    let track = opts.track()?;
    check_keep("keep", opts.keep)?;
    let data_dir = &opts.data_dir;
    // A profile this pull would update but cannot (a truncated file, an
    // operator's profile of another architecture) fails it now, not after
    // the downloads; so does a directory holding another architecture.
    profile::check_existing(data_dir, &track)?;
    let remembered = StreamState::load(data_dir, &track)?.profiles;
    let operator = operator_profiles(data_dir, &track, &opts.profiles, &remembered)?;
    let server_url = resolve_server_url(data_dir, &track, opts.server_url.as_deref(), &operator)?;
    let keyring = if opts.insecure {
        tracing::warn!(
            stream = %opts.stream,
            "INSECURE: OpenPGP signatures are NOT checked (--insecure); only the sha256 from the metadata protects these files"
        );
        None
    } else {
        Some(Keyring::resolve(opts.keyring.as_deref())?)
    };
    let fetcher = Fetcher::new(opts.retry, opts.progress)?;
    let rel = upstream(&fetcher, &opts.base_url, &opts.stream, &opts.arch).await?;
    tracing::info!(stream = %opts.stream, arch = %opts.arch, release = %rel.release, "upstream release");

    let sdir = stream_dir(data_dir, &track);
    let _lock = StreamLock::acquire(&sdir, &track.to_string())?;
    let mut state = StreamState::load(data_dir, &track)?;
    let managed: Vec<String> = operator.iter().map(|p| p.id.clone()).collect();
    if state.skipped.contains(&rel.release) && !opts.force {
        if state.profiles != managed {
            state.profiles = managed;
            state.save(data_dir)?;
        }
        tracing::info!(stream = %opts.stream, release = %rel.release, "upstream release was rolled back from; not switching (use --force)");
        return Ok(PullOutcome::Skipped {
            release: rel.release,
            current: state.current,
        });
    }
    let release_dir = sdir.join(&rel.release);
    if !complete(&release_dir, &rel, keyring.is_some()) {
        if release_dir.exists() {
            // Incomplete, not recorded, or pulled with --insecure: fetched and
            // verified again; the files in it stay served until then.
            tracing::warn!(dir = %release_dir.display(), "release directory not verified (incomplete or --insecure); verifying it again");
        }
        fetch_release(&fetcher, opts, &rel, &sdir, keyring.as_ref()).await?;
    }

    let spec = ProfileSpec {
        track: track.clone(),
        release: rel.release.clone(),
        kernel: rel.kernel.file_name.clone(),
        initramfs: rel.initramfs.file_name.clone(),
        rootfs: rel.rootfs.file_name.clone(),
        server_url,
    };
    let mut known = state.releases.clone();
    known.extend(state.current.iter().cloned());
    write_operator_profiles(data_dir, &spec, opts.server_url.as_deref(), &operator)?;
    let path = profile::write(data_dir, &spec, &known)?;
    if state.current.as_deref() == Some(rel.release.as_str()) {
        if state.profiles != managed {
            state.profiles = managed;
            state.save(data_dir)?;
        }
        return Ok(PullOutcome::UpToDate {
            release: rel.release,
        });
    }
    state.profiles = managed;
    let from = state.current.clone();
    if opts.force {
        state.skipped.retain(|r| *r != rel.release);
    }
    let dropped = state.switch_to(&rel.release, opts.keep);
    state.save(data_dir)?;
    match &from {
        Some(f) => {
            tracing::info!(stream = %opts.stream, arch = %opts.arch, from = %f, to = %rel.release, profile = %path.display(), "switched profile")
        }
        None => {
            tracing::info!(stream = %opts.stream, arch = %opts.arch, to = %rel.release, profile = %path.display(), "switched profile")
        }
    }
    remove_releases(&sdir, &dropped);
    Ok(PullOutcome::Switched {
        from,
        to: rel.release,
        dropped,
    })
}

/// The release directory holds the files of `rel`, recorded as verified
/// (and, when signatures are checked now, not pulled with `--insecure`).
fn complete(dir: &Path, rel: &PxeRelease, signatures: bool) -> bool {
    rel.artifacts()
        .iter()
        .all(|a| dir.join(&a.file_name).is_file())
        && ReleaseRecord::load(dir).is_ok_and(|r| {
            r.sha256.len() == 3
                && r.sha256
                    .iter()
                    .zip(rel.artifacts())
                    .all(|(h, a)| *h == a.sha256)
                && !(signatures && r.insecure)
        })
}

async fn fetch_release(
    fetcher: &Fetcher,
    opts: &PullOptions,
    rel: &PxeRelease,
    sdir: &Path,
    keyring: Option<&Keyring>,
) -> Result<(), FcosError> {
    let partial = sdir.join(".partial");
    let staging = partial.join(&rel.release);
    fs::create_dir_all(&staging).map_err(|e| FcosError::io(&staging, e))?;
    // Older partial releases will never complete: drop them.
    if let Ok(rd) = fs::read_dir(&partial) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy() != rel.release.as_str() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    let mut signed_by = Vec::new();
    for art in rel.artifacts() {
        let done = staging.join(&art.file_name);
        let sig_path = staging.join(format!("{}.sig", art.file_name));
        if done.is_file() {
            // Left verified by an earlier run, but nothing on disk is
            // trusted across runs (a truncation, a bit flip, someone's
            // copy): hashed and its signature checked again, or fetched again.
            // Hashing (a rootfs is about 1 GiB) and verifying run off the async workers.
            let job = (
                done.clone(),
                sig_path.clone(),
                art.sha256.clone(),
                art.file_name.clone(),
                keyring.cloned(),
            );
            let checked = tokio::task::spawn_blocking(move || {
                let (file, sig, sha, name, ring) = job;
                verify_staged(&file, &sig, &sha, &name, ring.as_ref())
            })
            .await
            .unwrap_or_else(|e| Err(FcosError::io(&done, std::io::Error::other(e))));
            match checked {
                Ok(fp) => {
                    tracing::info!(file = %art.file_name, "staged file from an earlier run verified again");
                    signed_by.extend(fp);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(file = %art.file_name, error = %e, "staged file from an earlier run does not verify; deleting it and downloading it again");
                    fs::remove_file(&done).map_err(|e| FcosError::io(&done, e))?;
                    let _ = fs::remove_file(&sig_path);
                }
            }
        }
        let part = staging.join(format!("{}.part", art.file_name));
        fetcher
            .download(&art.url, &part, &art.sha256, &art.file_name)
            .await?;
        if let Some(ring) = keyring {
            let sig = match fetcher.get_small(&art.signature_url, MAX_SIGNATURE).await {
                Ok(s) => s,
                Err(FcosError::Status { status, url }) if (400..500).contains(&status) => {
                    return Err(FcosError::SignatureMissing {
                        file: art.file_name.clone(),
                        url,
                        status,
                    });
                }
                Err(e) => return Err(e),
            };
            let job = (
                ring.clone(),
                sig.clone(),
                part.clone(),
                art.file_name.clone(),
            );
            let verified = tokio::task::spawn_blocking(move || {
                let (ring, sig, part, name) = job;
                ring.verify_file(&sig, &part, &name)
            })
            .await
            .unwrap_or_else(|e| Err(FcosError::io(&part, std::io::Error::other(e))));
            match verified {
                Ok(fp) => {
                    tracing::info!(file = %art.file_name, key = %fp, "OpenPGP signature verified");
                    signed_by.push(fp);
                    write_atomic(&sig_path, &sig)?;
                }
                Err(e) => {
                    let _ = fs::remove_file(&part);
                    return Err(e);
                }
            }
        } else {
            tracing::warn!(file = %art.file_name, "INSECURE: signature not checked");
        }
        fs::rename(&part, &done).map_err(|e| FcosError::io(&done, e))?;
    }
    // Every file in the record was verified by this run: downloaded and
    // checked, or found staged and checked again.
    let record = ReleaseRecord {
        stream: opts.stream.clone(),
        arch: opts.arch.clone(),
        release: rel.release.clone(),
        kernel: rel.kernel.file_name.clone(),
        initramfs: rel.initramfs.file_name.clone(),
        rootfs: rel.rootfs.file_name.clone(),
        sha256: rel.artifacts().iter().map(|a| a.sha256.clone()).collect(),
        signed_by,
        insecure: keyring.is_none(),
        sources: rel.artifacts().iter().map(|a| a.url.to_string()).collect(),
    };
    let json = serde_json::to_vec_pretty(&record).map_err(|e| FcosError::State {
        path: staging.join("release.json"),
        why: e.to_string(),
    })?;
    write_atomic(&staging.join("release.json"), &json)?;
    let dest = sdir.join(&rel.release);
    if dest.is_dir() {
        // Re-verified over an existing directory (which a profile may be
        // serving): each file is replaced atomically, the record last.
        for name in rel
            .artifacts()
            .iter()
            .flat_map(|a| [a.file_name.clone(), format!("{}.sig", a.file_name)])
            .chain(["release.json".to_string()])
        {
            let from = staging.join(&name);
            if from.is_file() {
                let to = dest.join(&name);
                fs::rename(&from, &to).map_err(|e| FcosError::io(&to, e))?;
            }
        }
        sync_dir(&dest);
        let _ = fs::remove_dir_all(&staging);
    } else {
        fs::rename(&staging, &dest).map_err(|e| FcosError::io(&dest, e))?;
    }
    sync_dir(sdir);
    let _ = fs::remove_dir(&partial);
    tracing::info!(release = %rel.release, dir = %dest.display(), "release verified and in place");
    Ok(())
}

/// Checks a file found staged by an earlier run as a fresh download is
/// checked: the sha256 from the metadata, then (unless `--insecure`) the
/// detached signature kept beside it. Returns the signing key's fingerprint.
fn verify_staged(
    file: &Path,
    sig_path: &Path,
    sha256: &str,
    name: &str,
    keyring: Option<&Keyring>,
) -> Result<Option<String>, FcosError> {
    let actual = crate::download::sha256_file(file).map_err(|e| FcosError::io(file, e))?;
    if actual != sha256 {
        return Err(FcosError::Checksum {
            file: name.to_string(),
            expected: sha256.to_string(),
            actual,
        });
    }
    let Some(ring) = keyring else {
        tracing::warn!(file = %name, "INSECURE: signature not checked");
        return Ok(None);
    };
    let sig = fs::read(sig_path).map_err(|e| FcosError::io(sig_path, e))?;
    ring.verify_file(&sig, file, name).map(Some)
}

fn remove_releases(sdir: &Path, releases: &[String]) {
    for r in releases {
        if stream::check_release(r).is_err() {
            continue;
        }
        let dir = sdir.join(r);
        match fs::remove_dir_all(&dir) {
            Ok(()) => tracing::info!(dir = %dir.display(), "deleted old release"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot delete old release"),
        }
    }
}

/// Switches the profile back to the kept release before the current one and
/// marks the current one as rolled back from (pulls and the tracker will not
/// switch to it again; a newer release will). Returns `(from, to)`.
pub fn rollback(
    data_dir: &Path,
    track: &Track,
    server_url: Option<&str>,
) -> Result<(String, String), FcosError> {
    let sdir = stream_dir(data_dir, track);
    let _lock = StreamLock::acquire(&sdir, &track.to_string())?;
    let mut state = StreamState::load(data_dir, track)?;
    let err = |why: &str| FcosError::Rollback {
        stream: track.to_string(),
        why: why.to_string(),
    };
    let from = state
        .current
        .clone()
        .ok_or_else(|| err("no current release"))?;
    let to = state
        .previous()
        .cloned()
        .ok_or_else(|| err("no previous release is kept (see --keep)"))?;
    let record = ReleaseRecord::load(&sdir.join(&to))?;
    let operator = operator_profiles(data_dir, track, &[], &state.profiles)?;
    let explicit_url = server_url;
    let server_url = resolve_server_url(data_dir, track, server_url, &operator)?;
    let spec = ProfileSpec {
        track: track.clone(),
        release: to.clone(),
        kernel: record.kernel,
        initramfs: record.initramfs,
        rootfs: record.rootfs,
        server_url,
    };
    for f in [&spec.kernel, &spec.initramfs, &spec.rootfs] {
        if !sdir.join(&to).join(f).is_file() {
            return Err(err("the previous release's files are missing"));
        }
    }
    write_operator_profiles(data_dir, &spec, explicit_url, &operator)?;
    profile::write(data_dir, &spec, &state.releases)?;
    state.current = Some(to.clone());
    state.skip(&from);
    state.profiles = operator.into_iter().map(|p| p.id).collect();
    state.save(data_dir)?;
    tracing::info!(%track, %from, %to, "rolled back");
    Ok((from, to))
}

/// What `status` reports for one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamReport {
    pub stream: String,
    pub arch: String,
    pub current: Option<String>,
    pub kept: Vec<String>,
    pub skipped: Vec<String>,
    /// The profiles that boot the current release: `fedora-coreos-<track>`
    /// and the operator's own.
    pub profiles: Vec<String>,
    /// Upstream's release (`None` when not asked or on error).
    pub upstream: Option<String>,
    pub upstream_error: Option<String>,
    /// Upstream has a release that is not current and not rolled back from.
    pub update_available: bool,
}

/// Local state of a track, plus upstream's release unless `offline`.
pub async fn status(
    data_dir: &Path,
    track: &Track,
    base_url: &str,
    offline: bool,
) -> Result<StreamReport, FcosError> {
    let state = StreamState::load(data_dir, track)?;
    let (stream, arch) = (track.stream.as_str(), track.arch.as_str());
    let (upstream_rel, upstream_error) = if offline {
        (None, None)
    } else {
        let fetcher = Fetcher::new(
            RetryPolicy {
                attempts: 2,
                ..RetryPolicy::default()
            },
            false,
        )?;
        match upstream(&fetcher, base_url, stream, arch).await {
            Ok(r) => (Some(r.release), None),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    let update_available = upstream_rel
        .as_ref()
        .is_some_and(|u| state.current.as_ref() != Some(u) && !state.skipped.contains(u));
    let mut profiles = Vec::new();
    if state.current.is_some() {
        profiles.push(profile::profile_id(track));
        profiles.extend(state.profiles.iter().cloned());
    }
    Ok(StreamReport {
        stream: stream.to_string(),
        arch: arch.to_string(),
        current: state.current,
        kept: state.releases,
        skipped: state.skipped,
        profiles,
        upstream: upstream_rel,
        upstream_error,
        update_available,
    })
}
