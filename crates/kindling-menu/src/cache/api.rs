//! The public face of the cache: [`Cache`] itself (opening the directory
//! and loading its index, saving the index), looking files up and
//! starting downloads, prefetching, and the per-client admission and
//! counters the HTTP extension asks about.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::error::CacheError;
use super::files::{Opened, open_beneath, open_dir};
use super::follow::{Flight, Follower, Progress};
use super::index::{Held, IndexFile, State, key, now};
use super::token::{OPERATOR_TOKEN_FILE, operator_token};
use crate::catalog::{Arch, Catalog};
use crate::config::CacheConfig;
use crate::guard::{MissLimiter, Refusal, Routes, Ticket};
use crate::upstream::Upstream;
use kindling_guard::chain;

/// What an in-progress or finished download looks like to one request.
pub enum Lookup {
    /// On disk and verified: serve this descriptor.
    Disk(Opened),
    /// Being downloaded: follow it.
    Flight(Follower),
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

/// The cache.
pub struct Cache {
    pub(super) dir: PathBuf,
    /// `files/` and `tmp/`: every file name is resolved beneath these.
    pub(super) files: cap_std::fs::Dir,
    pub(super) tmp: Arc<cap_std::fs::Dir>,
    pub(super) routes: Mutex<Routes>,
    pub(super) limiter: MissLimiter,
    pub(super) counters: Counters,
    pub(super) operator_token: String,
    pub(super) cfg: CacheConfig,
    pub(super) catalog: Arc<Catalog>,
    pub(super) upstream: Upstream,
    pub(super) state: Mutex<State>,
    pub(super) last_save: Mutex<Instant>,
    pub(super) seq: std::sync::atomic::AtomicU64,
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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
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

    /// Refusals since start, by reason (the `reason` label of `kindling_cache_refused_total`).
    fn refusals(&self) -> [(&'static str, u64); 6] {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("head", g(&c.head)),
            ("not_routed", g(&c.not_routed)),
            ("client_busy", g(&c.client_busy)),
            ("client_rate", g(&c.client_rate)),
            ("client_table_full", g(&c.client_table_full)),
            ("file", g(&c.refused_file)),
        ]
    }

    /// Upstream fetches started and refusals since start, by name:
    /// `fetches`, `refused_head`, `refused_not_routed`, `refused_client_busy`,
    /// `refused_client_rate`, `refused_client_table_full`, `refused_file`.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let fetches = self.counters.fetches.load(Ordering::Relaxed);
        std::iter::once(("fetches".to_string(), fetches))
            .chain(
                self.refusals()
                    .into_iter()
                    .map(|(why, v)| (format!("refused_{why}"), v)),
            )
            .collect()
    }

    /// Registers the cache's series in `r` (`/metrics`, at each scrape):
    /// `kindling_cache_fetches_total` and `kindling_cache_refused_total{reason}`.
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::counter::{ConstCounter, Counter};
        use prometheus_client::metrics::family::Family;
        #[derive(
            Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet,
        )]
        struct Why {
            reason: &'static str,
        }
        let refused = Family::<Why, Counter>::default();
        for (reason, v) in self.refusals() {
            refused.get_or_create(&Why { reason }).inc_by(v);
        }
        let fetches = self.counters.fetches.load(Ordering::Relaxed);
        r.register(
            "kindling_cache_fetches",
            "Upstream downloads the cache started",
            ConstCounter::new(fetches),
        );
        r.register(
            "kindling_cache_refused",
            "Cache misses refused instead of fetched, by reason (head, not_routed, client_busy, client_rate, client_table_full, file)",
            refused,
        );
    }

    /// Does `token` (from `kindling cache prefetch --server`) match this
    /// cache's operator token?
    pub fn is_operator_token(&self, token: &str) -> bool {
        kindling_http::server::constant_time_eq(self.operator_token.as_bytes(), token.as_bytes())
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
