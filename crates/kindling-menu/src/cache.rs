//! The pull-through cache behind `/cache/<entry>/<arch>/<file>`.
//!
//! Only files named in the catalog can be fetched (it is not an open proxy).
//! The first request for a missing file starts ONE upstream download, which
//! runs on its own task and writes `tmp/*.part` while every request for that
//! file (the first and any that arrive meanwhile) streams what has arrived so
//! far and follows the growing file. The last byte is held back until the
//! download is complete and verified; only then is the file renamed into
//! `files/` and added to the index. A failed or mismatching download is
//! deleted and its clients' connections are cut short of Content-Length.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::catalog::{Arch, Catalog, FileSpec, Sums};
use crate::config::CacheConfig;
use crate::upstream::{Upstream, UpstreamError, find_sum};

/// Cache errors. Every one names the entry (`entry/arch/file`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    #[error("{0}: not in the catalog")]
    Unknown(String),
    #[error("{key}: {why}")]
    Upstream { key: String, why: String },
    #[error("{key}: upstream closed the transfer after {got} of {want} bytes")]
    Truncated { key: String, got: u64, want: u64 },
    #[error("{key}: checksum mismatch: expected sha256 {expected}, got {actual}; not kept")]
    Mismatch {
        key: String,
        expected: String,
        actual: String,
    },
    #[error("{key}: cannot verify: {why}; not kept")]
    Unverifiable { key: String, why: String },
    #[error("{key}: local disk: {why}")]
    Disk { key: String, why: String },
    #[error("cache directory {path}: {why}")]
    Open { path: PathBuf, why: String },
}

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
struct IndexFile {
    version: u32,
    files: Vec<Held>,
}

/// `entry/arch/file`.
pub fn key(entry: &str, arch: Arch, file: &str) -> String {
    format!("{entry}/{}/{file}", arch.as_str())
}

/// Progress of one download, watched by its clients.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Response head received (and the part file exists).
    started: bool,
    /// Content-Length from upstream.
    total: Option<u64>,
    /// Bytes on disk in the part file.
    written: u64,
    /// Finished: Ok (verified and kept, or not kept but complete) or Err.
    outcome: Option<Result<(), CacheError>>,
}

impl Progress {
    /// Bytes clients may send: everything once finished well, otherwise all
    /// but the last byte (so a failed verification still cuts them short).
    fn available(&self) -> u64 {
        match (&self.outcome, self.total) {
            (Some(Ok(())), _) => self.written,
            (_, Some(t)) => self.written.min(t.saturating_sub(1)),
            (_, None) => 0,
        }
    }
}

struct Flight {
    tx: watch::Sender<Progress>,
    part: PathBuf,
    final_path: PathBuf,
}

#[derive(Default)]
struct State {
    index: BTreeMap<String, Held>,
    inflight: HashMap<String, Arc<Flight>>,
    dirty: bool,
}

/// What an in-progress or finished download looks like to one request.
pub enum Lookup {
    /// On disk and verified: serve it.
    Disk(PathBuf),
    /// Being downloaded: follow it.
    Flight(Follower),
}

/// A request attached to a download.
pub struct Follower {
    rx: watch::Receiver<Progress>,
    part: PathBuf,
    final_path: PathBuf,
    key: String,
}

/// The cache.
pub struct Cache {
    dir: PathBuf,
    cfg: CacheConfig,
    catalog: Arc<Catalog>,
    upstream: Upstream,
    state: Mutex<State>,
    last_save: Mutex<Instant>,
    seq: std::sync::atomic::AtomicU64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl Cache {
    /// Opens (creating) the cache in `dir`: loads `index.json`, drops index
    /// entries whose file is gone, deletes leftover partial downloads.
    pub fn open(
        cfg: CacheConfig,
        dir: PathBuf,
        catalog: Arc<Catalog>,
    ) -> Result<Arc<Cache>, CacheError> {
        let open_err = |why: String| CacheError::Open {
            path: dir.clone(),
            why,
        };
        for d in [dir.join("files"), dir.join("tmp")] {
            std::fs::create_dir_all(&d).map_err(|e| open_err(format!("{}: {e}", d.display())))?;
        }
        if let Ok(rd) = std::fs::read_dir(dir.join("tmp")) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let mut state = State::default();
        match std::fs::read(dir.join("index.json")) {
            Ok(b) => {
                let f: IndexFile =
                    serde_json::from_slice(&b).map_err(|e| open_err(format!("index.json: {e}")))?;
                for h in f.files {
                    let p = dir.join("files").join(h.key());
                    match std::fs::metadata(&p) {
                        Ok(m) if m.len() == h.size && crate::catalog::valid_file_name(&h.key()) => {
                            state.index.insert(h.key(), h);
                        }
                        _ => {
                            tracing::warn!(file = %h.key(), "cache index entry without its file; dropped");
                            let _ = std::fs::remove_file(&p);
                            state.dirty = true;
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(open_err(format!("index.json: {e}"))),
        }
        // Files nobody indexed (a crash between rename and index write, or
        // a hand-copied file) are not trusted: remove them.
        let files_root = dir.join("files");
        let mut stack = vec![files_root.clone()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(p);
                    continue;
                }
                let rel = p
                    .strip_prefix(&files_root)
                    .ok()
                    .and_then(|r| r.to_str())
                    .map(str::to_string);
                if !rel.is_some_and(|r| state.index.contains_key(&r)) {
                    tracing::warn!(target: "kindling::cache", path = %p.display(), "file not in the cache index; removed");
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        let upstream = Upstream::new(
            Duration::from_secs(cfg.connect_timeout_secs.max(1)),
            cfg.max_redirects,
        )
        .map_err(|e| open_err(e.to_string()))?;
        let cache = Arc::new(Cache {
            dir,
            cfg,
            catalog,
            upstream,
            state: Mutex::new(state),
            last_save: Mutex::new(Instant::now()),
            seq: Default::default(),
        });
        cache.save_index();
        Ok(cache)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is held, least recently used first.
    pub fn held(&self) -> Vec<Held> {
        let mut v: Vec<Held> = self.lock().index.values().cloned().collect();
        v.sort_by_key(|h| h.last_used);
        v
    }

    /// Downloads in progress: (key, bytes so far, total, clients attached).
    pub fn in_progress(&self) -> Vec<(String, u64, Option<u64>, usize)> {
        self.lock()
            .inflight
            .iter()
            .map(|(k, f)| {
                let p = f.tx.borrow();
                (
                    k.clone(),
                    p.written,
                    p.total,
                    f.tx.receiver_count().saturating_sub(0),
                )
            })
            .collect()
    }

    /// Writes `index.json` atomically.
    pub fn save_index(&self) {
        let files: Vec<Held> = {
            let mut st = self.lock();
            st.dirty = false;
            st.index.values().cloned().collect()
        };
        let body = match serde_json::to_vec_pretty(&IndexFile { version: 1, files }) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "serialising the cache index");
                return;
            }
        };
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!("index.json.{}.{n}.tmp", std::process::id()));
        let res = std::fs::write(&tmp, &body)
            .and_then(|_| std::fs::rename(&tmp, self.dir.join("index.json")));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            tracing::error!(error = %e, dir = %self.dir.display(), "writing the cache index");
        }
        *self.last_save.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn maybe_save(&self) {
        let due = self
            .last_save
            .lock()
            .map(|t| t.elapsed() > Duration::from_secs(5))
            .unwrap_or(true);
        if due && self.lock().dirty {
            self.save_index();
        }
    }

    /// Finds a catalog file, or starts/joins its download.
    pub fn lookup(
        self: &Arc<Self>,
        entry: &str,
        arch: Arch,
        file: &str,
    ) -> Result<Lookup, CacheError> {
        let k = key(entry, arch, file);
        let Some((spec, sums)) = self.catalog.file(entry, arch, file) else {
            return Err(CacheError::Unknown(k));
        };
        let final_path = self.dir.join("files").join(&k);
        let mut st = self.lock();
        if let Some(h) = st.index.get_mut(&k) {
            if h.url == spec.url && final_path.is_file() {
                h.last_used = now();
                st.dirty = true;
                drop(st);
                self.maybe_save();
                return Ok(Lookup::Disk(final_path));
            }
            // The catalog moved on (or the file vanished): fetch again.
            st.index.remove(&k);
            st.dirty = true;
        }
        if let Some(f) = st.inflight.get(&k) {
            return Ok(Lookup::Flight(Follower {
                rx: f.tx.subscribe(),
                part: f.part.clone(),
                final_path,
                key: k,
            }));
        }
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let part = self
            .dir
            .join("tmp")
            .join(format!("{}-{n}.part", k.replace('/', "_")));
        let (tx, rx) = watch::channel(Progress::default());
        let flight = Arc::new(Flight {
            tx,
            part: part.clone(),
            final_path: final_path.clone(),
        });
        st.inflight.insert(k.clone(), flight.clone());
        drop(st);
        let me = self.clone();
        let (spec, sums) = (spec.clone(), sums.cloned());
        let (entry, file, kk) = (entry.to_string(), file.to_string(), k.clone());
        tokio::spawn(async move {
            me.run_download(kk, entry, arch, file, spec, sums, flight)
                .await;
        });
        Ok(Lookup::Flight(Follower {
            rx,
            part,
            final_path,
            key: k,
        }))
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_download(
        self: Arc<Self>,
        k: String,
        entry: String,
        arch: Arch,
        file: String,
        spec: FileSpec,
        sums: Option<Sums>,
        flight: Arc<Flight>,
    ) {
        tracing::info!(target: "kindling::cache", file = %k, url = %spec.url, "fetching from upstream");
        let started = Instant::now();
        let res = self.download(&k, &spec, sums.as_ref(), &flight).await;
        let mut st = self.lock();
        st.inflight.remove(&k);
        let outcome = match res {
            Ok((size, sha256, verified)) => {
                let keep = size <= self.cfg.max_bytes;
                let moved = if keep {
                    flight
                        .final_path
                        .parent()
                        .map(std::fs::create_dir_all)
                        .unwrap_or(Ok(()))
                        .and_then(|_| std::fs::rename(&flight.part, &flight.final_path))
                } else {
                    tracing::warn!(target: "kindling::cache", file = %k, size, max = self.cfg.max_bytes, "larger than the cache; served but not kept");
                    Ok(())
                };
                match moved {
                    Ok(()) if keep => {
                        let t = now();
                        st.index.insert(
                            k.clone(),
                            Held {
                                entry,
                                arch,
                                file,
                                url: spec.url.clone(),
                                size,
                                sha256,
                                verified,
                                fetched: t,
                                last_used: t,
                            },
                        );
                        st.dirty = true;
                        tracing::info!(target: "kindling::cache", file = %k, size, verified, secs = started.elapsed().as_secs_f64(), "cached");
                        Ok(())
                    }
                    Ok(()) => Ok(()),
                    Err(e) => Err(CacheError::Disk {
                        key: k.clone(),
                        why: e.to_string(),
                    }),
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &outcome {
            tracing::warn!(target: "kindling::cache", error = %e, "download failed; nothing kept");
        }
        let evicted = if outcome.is_ok() {
            evict(&mut st, self.cfg.max_bytes, &k)
        } else {
            Vec::new()
        };
        drop(st);
        for h in evicted {
            tracing::info!(target: "kindling::cache", file = %h.key(), size = h.size, "evicted (least recently used)");
            let _ = std::fs::remove_file(self.dir.join("files").join(h.key()));
        }
        // Unlinking is safe: clients following the part file keep their
        // open descriptors.
        if outcome.is_err() || flight.part.exists() {
            let _ = std::fs::remove_file(&flight.part);
        }
        // The index is on disk before anyone hears the file is kept.
        self.save_index();
        flight.tx.send_modify(|p| p.outcome = Some(outcome));
    }

    /// Downloads into the part file; returns (size, sha256, verified).
    async fn download(
        &self,
        k: &str,
        spec: &FileSpec,
        sums: Option<&Sums>,
        flight: &Flight,
    ) -> Result<(u64, String, bool), CacheError> {
        let up_err = |e: UpstreamError| CacheError::Upstream {
            key: k.to_string(),
            why: e.to_string(),
        };
        let idle = Duration::from_secs(self.cfg.idle_timeout_secs.max(1));
        // The expected checksum is looked up while the body streams.
        let expected = {
            let (sha, sums, name, up) = (
                spec.sha256.clone(),
                sums.cloned(),
                spec.sums_name.clone(),
                self.upstream.clone(),
            );
            let k = k.to_string();
            tokio::spawn(async move {
                if let Some(h) = sha {
                    return Ok(Some(h.to_ascii_lowercase()));
                }
                let (Some(s), Some(n)) = (sums, name) else {
                    return Ok(None);
                };
                let text = up.get_text(&s.url, 16 << 20, idle).await.map_err(|e| {
                    CacheError::Unverifiable {
                        key: k.clone(),
                        why: e.to_string(),
                    }
                })?;
                match find_sum(&text, s.format, &n) {
                    Some(h) => Ok(Some(h)),
                    None => Err(CacheError::Unverifiable {
                        key: k,
                        why: format!("{n:?} is not listed in {}", s.url),
                    }),
                }
            })
        };
        let (resp, _from) = self.upstream.get(&spec.url, &[]).await.map_err(up_err)?;
        let total = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let disk = |e: io::Error| CacheError::Disk {
            key: k.to_string(),
            why: e.to_string(),
        };
        let mut out = tokio::fs::File::create(&flight.part).await.map_err(disk)?;
        flight.tx.send_modify(|p| {
            p.started = true;
            p.total = total;
        });
        let mut body = resp.into_body();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut written: u64 = 0;
        loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => {
                    return Err(CacheError::Upstream {
                        key: k.to_string(),
                        why: format!(
                            "upstream sent nothing for {} s after {written} bytes",
                            idle.as_secs()
                        ),
                    });
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(match total {
                        Some(want) => CacheError::Truncated {
                            key: k.to_string(),
                            got: written,
                            want,
                        },
                        None => CacheError::Upstream {
                            key: k.to_string(),
                            why: e.to_string(),
                        },
                    });
                }
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if let Some(t) = total
                && written + data.len() as u64 > t
            {
                return Err(CacheError::Upstream {
                    key: k.to_string(),
                    why: format!("upstream sent more than its Content-Length {t}"),
                });
            }
            ctx.update(&data);
            out.write_all(&data).await.map_err(disk)?;
            // tokio's File finishes the write in the background: flush so
            // that followers reading the part file see these bytes.
            out.flush().await.map_err(disk)?;
            written += data.len() as u64;
            flight.tx.send_modify(|p| p.written = written);
        }
        if let Some(want) = total
            && written != want
        {
            return Err(CacheError::Truncated {
                key: k.to_string(),
                got: written,
                want,
            });
        }
        out.sync_all().await.map_err(disk)?;
        drop(out);
        if total.is_none() {
            flight.tx.send_modify(|p| p.total = Some(written));
        }
        let actual = hex(ctx.finish().as_ref());
        let expected = match expected.await {
            Ok(r) => r?,
            Err(e) => {
                return Err(CacheError::Unverifiable {
                    key: k.to_string(),
                    why: e.to_string(),
                });
            }
        };
        match expected {
            Some(exp) if exp != actual => Err(CacheError::Mismatch {
                key: k.to_string(),
                expected: exp,
                actual,
            }),
            Some(_) => Ok((written, actual, true)),
            None => Ok((written, actual, false)),
        }
    }

    /// Fetches (or confirms) every file of `entry` on `arch` (all
    /// architectures when `None`); returns what is held for it.
    pub async fn prefetch(
        self: &Arc<Self>,
        entry: &str,
        arch: Option<Arch>,
    ) -> Result<Vec<Held>, CacheError> {
        let Some(e) = self.catalog.get(entry) else {
            return Err(CacheError::Unknown(entry.to_string()));
        };
        let mut keys = Vec::new();
        for (a, spec) in &e.arch {
            if arch.is_some_and(|x| x != *a) {
                continue;
            }
            for name in spec.files.keys() {
                keys.push((*a, name.clone()));
            }
        }
        for (a, name) in &keys {
            match self.lookup(entry, *a, name)? {
                Lookup::Disk(_) => {}
                Lookup::Flight(f) => f.wait().await?,
            }
        }
        let st = self.lock();
        Ok(keys
            .iter()
            .filter_map(|(a, n)| st.index.get(&key(entry, *a, n)).cloned())
            .collect())
    }
}

/// Removes least-recently-used files until the total fits (never `keep`).
fn evict(st: &mut State, max: u64, keep: &str) -> Vec<Held> {
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

/// How a follower should answer.
pub enum Start {
    /// Stream `len` bytes from `offset` of a download of `total` bytes.
    Stream {
        body: kindling_http::Body,
        total: u64,
    },
    /// The download is finished: serve this file from disk.
    Done(PathBuf),
}

impl Follower {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Waits for the end of the download.
    pub async fn wait(mut self) -> Result<(), CacheError> {
        loop {
            if let Some(o) = self.rx.borrow_and_update().outcome.clone() {
                return o;
            }
            if self.rx.changed().await.is_err() {
                return self.rx.borrow().outcome.clone().unwrap_or_else(|| {
                    Err(CacheError::Disk {
                        key: self.key.clone(),
                        why: "download task ended without an outcome".into(),
                    })
                });
            }
        }
    }

    /// Waits for the response head; then either a body following the part
    /// file from `range` (start, end inclusive; `None` = all), or the
    /// finished file (also when upstream gave no length).
    pub async fn start(mut self, range: Option<(u64, u64)>) -> Result<Start, CacheError> {
        loop {
            let p = self.rx.borrow_and_update().clone();
            match &p.outcome {
                Some(Err(e)) => return Err(e.clone()),
                Some(Ok(())) => return Ok(Start::Done(self.final_path.clone())),
                None => {}
            }
            if p.started
                && let Some(total) = p.total
            {
                let file = match tokio::fs::File::open(&self.part).await {
                    Ok(f) => f,
                    // Renamed or removed meanwhile: the outcome tells which.
                    Err(_) => {
                        return match self.wait_outcome().await {
                            Ok(()) => Ok(Start::Done(self.final_path.clone())),
                            Err(e) => Err(e),
                        };
                    }
                };
                let (start, end) = match range {
                    Some((s, e)) => (s, e.saturating_add(1).min(total)),
                    None => (0, total),
                };
                let mut file = file;
                if start > 0 && file.seek(io::SeekFrom::Start(start)).await.is_err() {
                    return Err(CacheError::Disk {
                        key: self.key.clone(),
                        why: "seek in the partial file".into(),
                    });
                }
                let follow = Follow {
                    file,
                    pos: start,
                    end,
                    rx: self.rx,
                    key: self.key,
                    done: false,
                };
                return Ok(Start::Stream {
                    body: follow.into_body(),
                    total,
                });
            }
            if self.rx.changed().await.is_err() {
                return self
                    .wait_outcome()
                    .await
                    .map(|_| Start::Done(self.final_path.clone()));
            }
        }
    }

    async fn wait_outcome(&mut self) -> Result<(), CacheError> {
        loop {
            if let Some(o) = self.rx.borrow_and_update().outcome.clone() {
                return o;
            }
            if self.rx.changed().await.is_err() {
                return Err(CacheError::Disk {
                    key: self.key.clone(),
                    why: "download task ended without an outcome".into(),
                });
            }
        }
    }
}

/// A body that reads the part file as it grows.
struct Follow {
    file: tokio::fs::File,
    pos: u64,
    end: u64,
    rx: watch::Receiver<Progress>,
    key: String,
    done: bool,
}

const CHUNK: u64 = 256 * 1024;

impl Follow {
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        if self.done || self.pos >= self.end {
            return None;
        }
        let mut closed = false;
        loop {
            let (avail, outcome) = {
                let p = self.rx.borrow_and_update();
                (p.available(), p.outcome.clone())
            };
            let limit = avail.min(self.end);
            if self.pos < limit {
                let n = (limit - self.pos).min(CHUNK) as usize;
                let mut buf = vec![0u8; n];
                return match self.file.read(&mut buf).await {
                    Ok(0) => {
                        self.done = true;
                        Some(Err(io::Error::other(format!(
                            "{}: partial file shorter than announced",
                            self.key
                        ))))
                    }
                    Ok(got) => {
                        buf.truncate(got);
                        self.pos += got as u64;
                        Some(Ok(Bytes::from(buf)))
                    }
                    Err(e) => {
                        self.done = true;
                        Some(Err(e))
                    }
                };
            }
            if let Some(Err(e)) = outcome {
                self.done = true;
                return Some(Err(io::Error::other(e.to_string())));
            }
            if closed {
                self.done = true;
                return Some(Err(io::Error::other(format!(
                    "{}: download ended early",
                    self.key
                ))));
            }
            if self.rx.changed().await.is_err() {
                closed = true;
            }
        }
    }

    fn into_body(self) -> kindling_http::Body {
        let s = futures_util::stream::unfold(self, |mut f| async move {
            let item = f.next().await?;
            Some((item.map(hyper::body::Frame::data), f))
        });
        BodyExt::boxed(http_body_util::StreamBody::new(s))
    }
}
