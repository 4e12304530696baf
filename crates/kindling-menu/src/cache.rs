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
//!
//! Files are opened relative to handles of `files/` and `tmp/` (cap-std:
//! `openat2` with `RESOLVE_BENEATH` on Linux), so the kernel refuses any
//! name or symlink that leads outside; what is served is checked on the
//! opened descriptor (a regular file of the indexed length), never by path.
//! Who may start an upstream fetch is decided in [`crate::guard`].

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

use crate::catalog::{Arch, Catalog, FileSpec, Sums};
use crate::config::CacheConfig;
use crate::guard::{MissLimiter, Refusal, Routes, Ticket};
use crate::upstream::{Upstream, UpstreamError, find_sum};
use kindling_fetch::{BodyError, Expect, Limits, Mismatch, Part};
use kindling_guard::chain;
use kindling_guard::progress::{Meter, Snapshot};

/// Cache errors. Every one names the entry (`entry/arch/file`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// The name as the client sent it (quoted and escaped: it is untrusted).
    #[error("{0:?}: not in the catalog")]
    Unknown(String),
    #[error("{key}: {why}")]
    Upstream { key: String, why: String },
    /// `why`: the transport's error, with its causes (empty when the body
    /// just ended early).
    #[error("{key}: upstream closed the transfer after {got} of {want} bytes{}", colon(.why))]
    Truncated {
        key: String,
        got: u64,
        want: u64,
        why: String,
    },
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
    /// The indexed name does not open as a regular file beneath the cache
    /// directory (a symlink leading out, a directory, a device, ...).
    #[error("{key}: refused: {why}")]
    Refused { key: String, why: String },
}

/// `": why"`, or nothing when `why` is empty.
fn colon(why: &str) -> String {
    if why.is_empty() {
        String::new()
    } else {
        format!(": {why}")
    }
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
    /// Name inside `tmp/`.
    part: String,
}

#[derive(Default)]
struct State {
    index: BTreeMap<String, Held>,
    inflight: HashMap<String, Arc<Flight>>,
    dirty: bool,
}

/// A cached file, opened (beneath `files/`) and checked on the descriptor.
#[derive(Debug)]
pub struct Opened {
    pub file: std::fs::File,
    /// `fstat` of `file`: a regular file of the indexed length.
    pub meta: std::fs::Metadata,
}

/// What an in-progress or finished download looks like to one request.
pub enum Lookup {
    /// On disk and verified: serve this descriptor.
    Disk(Opened),
    /// Being downloaded: follow it.
    Flight(Follower),
}

/// A request attached to a download.
pub struct Follower {
    rx: watch::Receiver<Progress>,
    tmp: Arc<cap_std::fs::Dir>,
    part: String,
    key: String,
}

/// Counters of upstream fetches and of refusals (kept since start).
#[derive(Debug, Default)]
pub struct Counters {
    fetches: AtomicU64,
    head: AtomicU64,
    not_routed: AtomicU64,
    client_busy: AtomicU64,
    client_rate: AtomicU64,
    client_table_full: AtomicU64,
    refused_file: AtomicU64,
}

/// `O_NONBLOCK`: opening a FIFO planted in the cache must not hang.
#[cfg(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64",
        target_arch = "powerpc64",
        target_arch = "s390x",
        target_arch = "loongarch64"
    )
))]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(not(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64",
        target_arch = "powerpc64",
        target_arch = "s390x",
        target_arch = "loongarch64"
    )
)))]
const O_NONBLOCK: i32 = 0;

/// Opens `rel` for reading beneath `dir` (the kernel refuses escapes).
fn open_beneath(dir: &cap_std::fs::Dir, rel: &str) -> io::Result<std::fs::File> {
    use cap_std::fs::OpenOptionsExt;
    let mut o = cap_std::fs::OpenOptions::new();
    o.read(true).custom_flags(O_NONBLOCK);
    dir.open_with(rel, &o).map(|f| f.into_std())
}

fn open_dir(path: &Path) -> io::Result<cap_std::fs::Dir> {
    cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority())
}

/// The cache.
pub struct Cache {
    dir: PathBuf,
    /// `files/` and `tmp/`: every file name is resolved beneath these.
    files: cap_std::fs::Dir,
    tmp: Arc<cap_std::fs::Dir>,
    routes: Mutex<Routes>,
    limiter: MissLimiter,
    counters: Counters,
    operator_token: String,
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
        let files_dir = open_dir(&dir.join("files"))
            .map_err(|e| open_err(format!("{}: {e}", dir.join("files").display())))?;
        let tmp_dir = open_dir(&dir.join("tmp"))
            .map_err(|e| open_err(format!("{}: {e}", dir.join("tmp").display())))?;
        let mut state = State::default();
        match std::fs::read(dir.join("index.json")) {
            Ok(b) => {
                let f: IndexFile =
                    serde_json::from_slice(&b).map_err(|e| open_err(format!("index.json: {e}")))?;
                for h in f.files {
                    let k = h.key();
                    let ok = crate::catalog::valid_file_name(&k)
                        && files_dir
                            .metadata(&k)
                            .is_ok_and(|m| m.is_file() && m.len() == h.size);
                    if ok {
                        state.index.insert(k, h);
                    } else {
                        tracing::warn!(file = ?k, "cache index entry without its file; dropped");
                        if crate::catalog::valid_file_name(&k) {
                            let _ = files_dir.remove_file(&k);
                        }
                        state.dirty = true;
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
        .map_err(|e| open_err(chain(&e)))?;
        let operator_token = operator_token(&dir)
            .map_err(|e| open_err(format!("{}: {e}", dir.join(OPERATOR_TOKEN_FILE).display())))?;
        let routes = Routes::new(Duration::from_secs(cfg.routed_ttl_secs), cfg.client_table);
        let limiter = MissLimiter::new(cfg.limits());
        let cache = Arc::new(Cache {
            dir,
            files: files_dir,
            tmp: Arc::new(tmp_dir),
            routes: Mutex::new(routes),
            limiter,
            counters: Counters::default(),
            operator_token,
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

    /// Finds a catalog file, or starts/joins its download (no limits: for
    /// operator commands such as `kindling cache prefetch`).
    pub fn lookup(
        self: &Arc<Self>,
        entry: &str,
        arch: Arch,
        file: &str,
    ) -> Result<Lookup, CacheError> {
        match self.lookup_inner(entry, arch, file, Some(None))? {
            Some(l) => Ok(l),
            None => Err(CacheError::Unknown(key(entry, arch, file))),
        }
    }

    /// Finds a catalog file on disk or downloading; `None` when neither
    /// (nothing is started).
    pub fn find(
        self: &Arc<Self>,
        entry: &str,
        arch: Arch,
        file: &str,
    ) -> Result<Option<Lookup>, CacheError> {
        self.lookup_inner(entry, arch, file, None)
    }

    /// Like [`Cache::find`], but starts the download when neither; `ticket`
    /// (the client's running-fetch slot; `None` for operators) is held
    /// until it ends.
    pub fn fetch(
        self: &Arc<Self>,
        entry: &str,
        arch: Arch,
        file: &str,
        ticket: Option<Ticket>,
    ) -> Result<Lookup, CacheError> {
        match self.lookup_inner(entry, arch, file, Some(ticket))? {
            Some(l) => Ok(l),
            None => Err(CacheError::Unknown(key(entry, arch, file))),
        }
    }

    /// `start`: `None` = never start a download; `Some(ticket)` = start one
    /// if needed (holding the ticket until it ends).
    fn lookup_inner(
        self: &Arc<Self>,
        entry: &str,
        arch: Arch,
        file: &str,
        start: Option<Option<Ticket>>,
    ) -> Result<Option<Lookup>, CacheError> {
        let k = key(entry, arch, file);
        let Some((spec, sums)) = self.catalog.file(entry, arch, file) else {
            return Err(CacheError::Unknown(k));
        };
        let held = self
            .lock()
            .index
            .get(&k)
            .filter(|h| h.url == spec.url)
            .map(|h| h.size);
        if let Some(size) = held {
            // Open first, then check what was opened (never the path).
            let opened = open_beneath(&self.files, &k).and_then(|f| {
                let m = f.metadata()?;
                Ok(Opened { file: f, meta: m })
            });
            match opened {
                Ok(o) if o.meta.is_file() && o.meta.len() == size => {
                    let mut st = self.lock();
                    if let Some(h) = st.index.get_mut(&k) {
                        h.last_used = now();
                        st.dirty = true;
                    }
                    drop(st);
                    self.maybe_save();
                    return Ok(Some(Lookup::Disk(o)));
                }
                Ok(o) if o.meta.is_file() => {
                    // Another length than indexed: not ours; fetch again.
                    tracing::warn!(target: "kindling::cache", file = ?k, size = o.meta.len(), indexed = size, "cached file has another length than indexed; dropped");
                    self.drop_from_index(&k, &spec.url);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.drop_from_index(&k, &spec.url);
                }
                Ok(_) => {
                    self.counters.refused_file.fetch_add(1, Ordering::Relaxed);
                    return Err(CacheError::Refused {
                        key: k,
                        why: "not a regular file".into(),
                    });
                }
                Err(e) => {
                    self.counters.refused_file.fetch_add(1, Ordering::Relaxed);
                    return Err(CacheError::Refused {
                        key: k,
                        why: format!("does not open beneath the cache directory: {e}"),
                    });
                }
            }
        }
        let mut st = self.lock();
        if let Some(h) = st.index.get(&k)
            && h.url != spec.url
        {
            // The catalog moved on: fetch again.
            st.index.remove(&k);
            st.dirty = true;
        }
        if let Some(f) = st.inflight.get(&k) {
            return Ok(Some(Lookup::Flight(Follower {
                rx: f.tx.subscribe(),
                tmp: self.tmp.clone(),
                part: f.part.clone(),
                key: k,
            })));
        }
        if st.index.contains_key(&k) {
            // Kept by a download that finished meanwhile.
            drop(st);
            return self.lookup_inner(entry, arch, file, start);
        }
        let Some(ticket) = start else {
            return Ok(None);
        };
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let part = format!("{}-{n}.part", k.replace('/', "_"));
        let (tx, rx) = watch::channel(Progress::default());
        let flight = Arc::new(Flight {
            tx,
            part: part.clone(),
        });
        st.inflight.insert(k.clone(), flight.clone());
        drop(st);
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        let me = self.clone();
        let (spec, sums) = (spec.clone(), sums.cloned());
        let (entry, file, kk) = (entry.to_string(), file.to_string(), k.clone());
        tokio::spawn(async move {
            me.run_download(kk, entry, arch, file, spec, sums, flight, ticket)
                .await;
        });
        Ok(Some(Lookup::Flight(Follower {
            rx,
            tmp: self.tmp.clone(),
            part,
            key: k,
        })))
    }

    fn drop_from_index(&self, k: &str, url: &str) {
        let mut st = self.lock();
        if st.index.get(k).is_some_and(|h| h.url == url) {
            st.index.remove(k);
            st.dirty = true;
        }
    }

    /// A menu offering `entries` on `arch` was handed to `ip`.
    pub fn note_menu(&self, ip: IpAddr, arch: Arch, entries: Arc<[String]>) {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note_menu(ip, arch, entries, Instant::now());
    }

    /// Is `ip` routed to `entry` on `arch` by a menu it was handed?
    pub fn is_routed(&self, ip: IpAddr, entry: &str, arch: Arch) -> bool {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_routed(ip, entry, arch, Instant::now())
    }

    /// Takes a cache miss for `ip` from its allowance (running fetches,
    /// token bucket).
    pub fn try_start(&self, ip: IpAddr) -> Result<Ticket, Refusal> {
        self.limiter.try_start(ip, Instant::now())
    }

    /// Counts a refused miss.
    pub fn count_refusal(&self, r: &Refusal) {
        let c = &self.counters;
        match r {
            Refusal::Head => &c.head,
            Refusal::NotRouted => &c.not_routed,
            Refusal::Busy { .. } => &c.client_busy,
            Refusal::RateLimited { .. } => &c.client_rate,
            Refusal::TableFull => &c.client_table_full,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Upstream fetches started and refusals since start, by name:
    /// `fetches`, `refused_head`, `refused_not_routed`, `refused_client_busy`,
    /// `refused_client_rate`, `refused_client_table_full`, `refused_file`.
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BTreeMap::from([
            ("fetches", g(&c.fetches)),
            ("refused_head", g(&c.head)),
            ("refused_not_routed", g(&c.not_routed)),
            ("refused_client_busy", g(&c.client_busy)),
            ("refused_client_rate", g(&c.client_rate)),
            ("refused_client_table_full", g(&c.client_table_full)),
            ("refused_file", g(&c.refused_file)),
        ])
    }

    /// Does `token` (from `kindling cache prefetch --server`) match this
    /// cache's operator token?
    pub fn is_operator_token(&self, token: &str) -> bool {
        kindling_http::server::constant_time_eq(self.operator_token.as_bytes(), token.as_bytes())
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
        ticket: Option<Ticket>,
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
                    let parent = Path::new(&k).parent().unwrap_or(Path::new(""));
                    self.files
                        .create_dir_all(parent)
                        .and_then(|_| self.tmp.rename(&flight.part, &self.files, &k))
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
                        why: chain(&e),
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
            let _ = self.files.remove_file(h.key());
        }
        // Unlinking is safe: clients following the part file keep their
        // open descriptors.
        if outcome.is_err() || self.tmp.exists(&flight.part) {
            let _ = self.tmp.remove_file(&flight.part);
        }
        // The index is on disk before anyone hears the file is kept.
        self.save_index();
        // The client's slot is free before its last byte is released.
        drop(ticket);
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
            why: chain(&e),
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
                        why: chain(&e),
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
        let mut resp = self.upstream.send(&spec.url, &[]).await.map_err(up_err)?;
        let total = resp.content_length();
        let disk = |e: io::Error| CacheError::Disk {
            key: k.to_string(),
            why: chain(&e),
        };
        let created = self
            .tmp
            .open_with(
                &flight.part,
                cap_std::fs::OpenOptions::new().write(true).create_new(true),
            )
            .map_err(disk)?;
        let mut part = Part::from_std(created.into_std());
        flight.tx.send_modify(|p| {
            p.started = true;
            p.total = total;
        });
        let limits = Limits {
            max_len: None,
            idle: Some(idle),
        };
        let mut meter = Meter::new(0, total, Instant::now());
        part.write_body(&mut resp, &limits, |written| {
            // Followers reading the part file may send these bytes now.
            flight.tx.send_modify(|p| p.written = written);
            if let Some(s) = meter.log_due(written, Instant::now()) {
                log_progress(k, &s);
            }
        })
        .await
        .map_err(|e| match e {
            BodyError::Idle { got, idle } => CacheError::Upstream {
                key: k.to_string(),
                why: format!(
                    "upstream sent nothing for {} s after {got} bytes",
                    idle.as_secs()
                ),
            },
            BodyError::Transport { got, source } => match total {
                Some(want) => CacheError::Truncated {
                    key: k.to_string(),
                    got,
                    want,
                    why: chain(&source.without_url()),
                },
                None => CacheError::Upstream {
                    key: k.to_string(),
                    why: format!("after {got} bytes: {}", chain(&source.without_url())),
                },
            },
            BodyError::Truncated { got, want } => CacheError::Truncated {
                key: k.to_string(),
                got,
                want,
                why: String::new(),
            },
            BodyError::Overlong { limit } | BodyError::TooLarge { limit } => CacheError::Upstream {
                key: k.to_string(),
                why: format!("upstream sent more than its Content-Length {limit}"),
            },
            BodyError::Io(e) => disk(e),
        })?;
        let done = part.finish().await.map_err(disk)?;
        let written = done.len;
        log_complete(k, &meter.snapshot(written, Instant::now()));
        if total.is_none() {
            flight.tx.send_modify(|p| p.total = Some(written));
        }
        let expected = match expected.await {
            Ok(r) => r?,
            Err(e) => {
                return Err(CacheError::Unverifiable {
                    key: k.to_string(),
                    why: chain(&e),
                });
            }
        };
        let want = Expect {
            sha256: expected,
            len: None,
        };
        match done.check(&want) {
            Err(Mismatch::Sha256 { expected, actual }) => Err(CacheError::Mismatch {
                key: k.to_string(),
                expected,
                actual,
            }),
            Err(m @ Mismatch::Len { .. }) => Err(CacheError::Unverifiable {
                key: k.to_string(),
                why: m.to_string(),
            }),
            Ok(()) => Ok((written, done.sha256, want.sha256.is_some())),
        }
    }

    /// Fetches (or confirms) every file of `entry` on `arch` (all
    /// architectures when `None`); returns what is held for it.
    pub async fn prefetch(
        self: &Arc<Self>,
        entry: &str,
        arch: Option<Arch>,
    ) -> Result<Vec<Held>, CacheError> {
        self.prefetch_with(entry, arch, |_| {}).await
    }

    /// [`Cache::prefetch`], telling `watch` how each download goes (files
    /// already on disk are not downloaded and not reported). It stops at the
    /// first file that fails.
    pub async fn prefetch_with(
        self: &Arc<Self>,
        entry: &str,
        arch: Option<Arch>,
        mut watch: impl FnMut(Fill<'_>),
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
                Lookup::Flight(f) => {
                    let k = f.key.clone();
                    let bytes = f
                        .wait_with(|bytes, total| {
                            watch(Fill::Progress {
                                key: &k,
                                bytes,
                                total,
                            })
                        })
                        .await?;
                    watch(Fill::Done { key: &k, bytes });
                }
            }
        }
        let st = self.lock();
        Ok(keys
            .iter()
            .filter_map(|(a, n)| st.index.get(&key(entry, *a, n)).cloned())
            .collect())
    }
}

/// Where `kindling cache prefetch --server` finds the token that lets it
/// start fetches through the server (readable by the cache's owner only).
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";

/// Reads the operator token in `dir`, creating it (random, mode 0600) when
/// missing or malformed.
fn operator_token(dir: &Path) -> io::Result<String> {
    let path = dir.join(OPERATOR_TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim();
        if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(t.to_string());
        }
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| io::Error::other(format!("no random numbers: {e}")))?;
    let token = hex(&raw);
    let tmp = dir.join(format!("{OPERATOR_TOKEN_FILE}.{}.tmp", std::process::id()));
    let write = || -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(format!("{token}\n").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(token)
}

/// Reads the operator token of the cache in `dir` (for the CLI).
pub fn read_operator_token(dir: &Path) -> Option<String> {
    let t = std::fs::read_to_string(dir.join(OPERATOR_TOKEN_FILE)).ok()?;
    Some(t.trim().to_string()).filter(|t| !t.is_empty())
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

/// How one download of [`Cache::prefetch_with`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill<'a> {
    /// `bytes` of `total` (when upstream said) are on disk.
    Progress {
        key: &'a str,
        bytes: u64,
        total: Option<u64>,
    },
    /// Complete and verified (or unverifiable), `bytes` long.
    Done { key: &'a str, bytes: u64 },
}

/// A progress line of a download (`kindling::cache`, at the rate
/// [`Meter::log_due`] allows): file, bytes, total, percent, rate, ETA.
pub(crate) fn log_progress(file: &str, s: &Snapshot) {
    tracing::info!(
        target: "kindling::cache",
        file = %kindling_guard::Esc::str(file),
        bytes = s.bytes,
        total = s.total,
        percent = s.percent(),
        rate_bps = s.rate,
        eta_secs = s.eta().map(|d| d.as_secs()),
        "download progress"
    );
}

/// The last progress line of a download: every byte is there.
pub(crate) fn log_complete(file: &str, s: &Snapshot) {
    tracing::info!(
        target: "kindling::cache",
        file = %kindling_guard::Esc::str(file),
        bytes = s.bytes,
        total = s.total.unwrap_or(s.bytes),
        secs = s.elapsed.as_secs_f64(),
        rate_bps = s.rate,
        "download complete"
    );
}

/// How a follower should answer.
pub enum Start {
    /// Stream `len` bytes from `offset` of a download of `total` bytes.
    Stream {
        body: kindling_http::Body,
        total: u64,
    },
    /// The download is finished: look the file up again (on disk).
    Done,
}

impl Follower {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Waits for the end of the download, telling `progress` the bytes on
    /// disk and the total (when upstream said) as they change; returns the
    /// length.
    pub async fn wait_with(
        mut self,
        mut progress: impl FnMut(u64, Option<u64>),
    ) -> Result<u64, CacheError> {
        let mut shown = None;
        loop {
            let (outcome, written, total) = {
                let p = self.rx.borrow_and_update();
                (p.outcome.clone(), p.written, p.total)
            };
            if shown != Some((written, total)) {
                shown = Some((written, total));
                progress(written, total);
            }
            if let Some(o) = outcome {
                return o.map(|()| written);
            }
            if self.rx.changed().await.is_err() {
                return self.wait().await.map(|()| written);
            }
        }
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
                Some(Ok(())) => return Ok(Start::Done),
                None => {}
            }
            if p.started
                && let Some(total) = p.total
            {
                let file = match open_beneath(&self.tmp, &self.part) {
                    Ok(f) => tokio::fs::File::from_std(f),
                    // Renamed or removed meanwhile: the outcome tells which.
                    Err(_) => {
                        return match self.wait_outcome().await {
                            Ok(()) => Ok(Start::Done),
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
                return self.wait_outcome().await.map(|_| Start::Done);
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
        http_body_util::BodyExt::boxed(http_body_util::StreamBody::new(s))
    }
}
