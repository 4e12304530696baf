//! Every server's in-memory copy of the objects in etcd.
//!
//! The first load is a range read at one revision (in pages, all at that revision); then a
//! watch from the next revision applies each change and publishes a new set of objects
//! (the caller builds a snapshot from it). A watch that is canceled (a compaction passed
//! its revision), ends, errors, or stays silent while progress is asked for, is dropped:
//! the objects are read again at the current revision and a new watch resumes from
//! there, so nothing is missed. While etcd cannot be reached the last good copy keeps
//! serving; [`Health`] says since when it may be stale, and it catches up once etcd is
//! back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_client::{EventType, GetOptions, WatchOptions};
use kindling_model::store::{MemObject, MemObjects, area_of};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{Error, Store};

/// Receives each change (on a runtime thread allowed to block).
pub type Publish = Box<dyn FnMut(Update) + Send>;

/// Machine records by name below `machines/` (`52-54-00-12-34-56.json`).
pub type Records = BTreeMap<String, Arc<[u8]>>;

/// What the store holds: the data directory's objects, and the fleet's machine records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub objects: Arc<MemObjects>,
    pub machines: Records,
}

/// One change of the copy.
#[derive(Debug, Clone)]
pub struct Update {
    /// Every object now.
    pub objects: Arc<MemObjects>,
    /// Whether any object changed (else only machine records did).
    pub objects_changed: bool,
    /// Machine records written (`Some`) or deleted (`None`), by name.
    pub machines: Vec<(String, Option<Arc<[u8]>>)>,
}

/// Where a key below the prefix goes.
enum Place<'a> {
    Object(&'a str),
    Machine(&'a str),
}

fn place<'a>(prefix: &str, key: &'a [u8]) -> Option<Place<'a>> {
    let rel = std::str::from_utf8(key).ok()?.strip_prefix(prefix)?;
    if let Some(name) = rel.strip_prefix("machines/") {
        return (!name.is_empty() && !name.contains('/')).then_some(Place::Machine(name));
    }
    area_of(rel)?;
    Some(Place::Object(rel))
}

/// The changes from `old` to `new` records.
fn record_changes(old: &Records, new: &Records) -> Vec<(String, Option<Arc<[u8]>>)> {
    let mut out: Vec<_> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    out.extend(
        old.keys()
            .filter(|k| !new.contains_key(*k))
            .map(|k| (k.clone(), None)),
    );
    out
}

/// Keys read per page of a load.
const PAGE: i64 = 1000;
/// Largest message accepted from etcd (a page of objects, a watch batch).
const MAX_MESSAGE: usize = 64 << 20;
/// Progress is asked for this often while the watch is quiet...
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// ...and a watch with no answer for this long is taken as lost.
const SILENT_LIMIT: Duration = Duration::from_secs(15);
/// Watch responses arriving this soon after the first of a batch are published with it.
const BATCH: Duration = Duration::from_millis(10);
/// An outage is logged again this often while it lasts.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(30);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How current the copy is.
#[derive(Debug, Default)]
pub struct Health {
    /// 0 while the watch is live; else when (ms since the epoch) the copy was last known
    /// to be current.
    stale_since_ms: AtomicU64,
    /// The revision the copy holds.
    revision: AtomicI64,
    /// Loads made because a watch was lost (compaction, member down, silence).
    reloads: AtomicU64,
}

impl Health {
    /// Seconds since the copy was last known current (0 while the watch is live).
    pub fn stale_seconds(&self) -> f64 {
        match self.stale_since_ms.load(Ordering::Relaxed) {
            0 => 0.0,
            t => now_ms().saturating_sub(t) as f64 / 1000.0,
        }
    }

    pub fn revision(&self) -> i64 {
        self.revision.load(Ordering::Relaxed)
    }

    /// Loads made again after a lost watch.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// `kindling_store_stale_seconds`, `kindling_store_revision`,
    /// `kindling_store_reloads_total`.
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        r.register(
            "kindling_store_stale_seconds",
            "Seconds since the in-memory copy of the etcd store was last known current (0 while its watch is live)",
            ConstGauge::new(self.stale_seconds()),
        );
        r.register(
            "kindling_store_revision",
            "The etcd revision the in-memory copy holds",
            ConstGauge::new(self.revision()),
        );
        r.register(
            "kindling_store_reloads",
            "Full reads of the etcd store after a lost watch (compaction, member down, silence)",
            ConstCounter::new(self.reloads()),
        );
    }

    fn current(&self) {
        self.stale_since_ms.store(0, Ordering::Relaxed);
    }

    fn stale(&self, since: u64) {
        let _ = self.stale_since_ms.compare_exchange(
            0,
            since.max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

/// The running mirror: its health, and a way to wait until it holds a write.
pub struct Mirror {
    store: Store,
    health: Arc<Health>,
    applied: watch::Receiver<i64>,
    /// What [`Mirror::follow`] starts from.
    start: std::sync::Mutex<Option<Start>>,
}

type Start = (watch::Sender<i64>, State, i64);

impl Mirror {
    /// Loads the objects (trying until `first_load` has passed): the mirror, and the
    /// objects for the first snapshot. [`Mirror::follow`] then keeps them current.
    pub async fn load(store: Store, first_load: Duration) -> Result<(Mirror, State), Error> {
        let deadline = Instant::now() + first_load;
        let (state, rev) = loop {
            match load(&store).await {
                Ok(v) => break v,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "etcd: cannot load the objects yet; trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        let health = Arc::new(Health::default());
        health.revision.store(rev, Ordering::Relaxed);
        let (tx, applied) = watch::channel(rev);
        let mirror = Mirror {
            store,
            health,
            applied,
            start: std::sync::Mutex::new(Some((tx, state.clone(), rev))),
        };
        Ok((mirror, state))
    }

    /// Keeps the objects current in a task until `cancel`, publishing every change.
    /// Called once (later calls do nothing).
    pub fn follow(&self, publish: Publish, cancel: CancellationToken) {
        let Some((applied, state, rev)) = self.start.lock().ok().and_then(|mut s| s.take()) else {
            return;
        };
        let keeper = Keeper {
            store: self.store.clone(),
            state,
            rev,
            publish,
            health: self.health.clone(),
            applied,
        };
        tokio::spawn(keeper.run(cancel));
    }

    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Waits (at most `within`) until the copy holds every write this process has made
    /// (their events applied, or a full read at a later revision); false when it did not
    /// (etcd unreachable, or slow). A watch response's header revision is never trusted
    /// for this: etcd 3.4 before 3.4.25 answers a progress request, and a new watch's
    /// "created" answer, with the current revision while older events are still to come.
    pub async fn settle(&self, within: Duration) -> bool {
        let target = self.store.last_write();
        let mut applied = self.applied.clone();
        tokio::time::timeout(within, applied.wait_for(|r| *r >= target))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Reads every object below the prefix at one revision: (objects, revision).
pub async fn read_all(store: &Store) -> Result<(MemObjects, i64), Error> {
    let (state, rev) = load(store).await?;
    Ok((Arc::unwrap_or_clone(state.objects), rev))
}

/// Reads everything below the prefix at one revision: (state, revision).
async fn load(store: &Store) -> Result<(State, i64), Error> {
    let prefix = store.prefix().to_string();
    let end = range_end(&prefix);
    let mut objects = BTreeMap::new();
    let mut machines = Records::new();
    let mut from = prefix.clone().into_bytes();
    let mut rev = 0;
    // Pages of PAGE keys, fewer when a page's message would be over MAX_MESSAGE (large
    // Ignition files): halved until it fits.
    let mut page = PAGE;
    loop {
        let opts = GetOptions::new().with_range(end.clone()).with_limit(page);
        let opts = if rev > 0 {
            opts.with_revision(rev)
        } else {
            opts
        };
        let got = store
            .call(|c| {
                let (from, opts) = (from.clone(), opts.clone());
                async move {
                    c.kv_client()
                        .max_decoding_message_size(MAX_MESSAGE)
                        .get(from, Some(opts))
                        .await
                }
            })
            .await;
        let resp = match got {
            Err(Error::Etcd(etcd_client::Error::GRpcStatus(st)))
                if st.code() == tonic::Code::OutOfRange
                    && st.message().contains("too large")
                    && page > 1 =>
            {
                page = (page / 2).max(1);
                continue;
            }
            other => other?,
        };
        if rev == 0 {
            rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        }
        for kv in resp.kvs() {
            match place(&prefix, kv.key()) {
                Some(Place::Object(rel)) => {
                    objects.insert(rel.to_string(), object(kv.value(), kv.mod_revision()));
                }
                Some(Place::Machine(name)) => {
                    machines.insert(name.to_string(), Arc::from(kv.value()));
                }
                None => {}
            }
        }
        match (resp.more(), resp.kvs().last()) {
            (true, Some(last)) => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => {
                let objects = Arc::new(objects);
                return Ok((State { objects, machines }, rev));
            }
        }
    }
}

/// The key just past every key starting with `prefix`.
fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn object(value: &[u8], revision: i64) -> MemObject {
    MemObject {
        bytes: Arc::from(value),
        revision,
    }
}

/// The task that keeps the copy current.
struct Keeper {
    store: Store,
    state: State,
    rev: i64,
    publish: Publish,
    health: Arc<Health>,
    applied: watch::Sender<i64>,
}

impl Keeper {
    async fn run(mut self, cancel: CancellationToken) {
        let mut outage: Option<(Instant, Instant)> = None;
        let mut pause = Duration::ZERO;
        loop {
            let started = Instant::now();
            let lost = tokio::select! {
                _ = cancel.cancelled() => return,
                lost = self.follow() => lost,
            };
            // A watch that fails at once again and again (a proxy that refuses streams)
            // must not become a loop of full reads: back off, up to 30 s.
            pause = if started.elapsed() < Duration::from_secs(5) {
                (pause * 2).clamp(Duration::from_millis(500), Duration::from_secs(30))
            } else {
                Duration::ZERO
            };
            self.health.stale(now_ms());
            tracing::warn!(
                revision = self.rev,
                "etcd: watch lost ({lost}); reading the objects again \
                 (the last good copy keeps serving)"
            );
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            // Read again until etcd answers; the copy in service stays meanwhile.
            loop {
                let loaded = tokio::select! {
                    _ = cancel.cancelled() => return,
                    l = load(&self.store) => l,
                };
                match loaded {
                    Ok((state, rev)) => {
                        self.health.reloads.fetch_add(1, Ordering::Relaxed);
                        if let Some((since, _)) = outage.take() {
                            tracing::info!(
                                revision = rev,
                                unreachable_secs = since.elapsed().as_secs(),
                                "etcd: reachable again; caught up"
                            );
                        }
                        let update = Update {
                            objects_changed: state.objects != self.state.objects,
                            machines: record_changes(&self.state.machines, &state.machines),
                            objects: state.objects.clone(),
                        };
                        self.state = state;
                        if update.objects_changed || !update.machines.is_empty() {
                            tokio::task::block_in_place(|| (self.publish)(update));
                        }
                        if rev < self.rev {
                            // A store rebuilt or restored from a backup: its revisions start
                            // over. Follow it from where it is (waiting for the old revision
                            // would ignore every write).
                            tracing::warn!(
                                was = self.rev,
                                now = rev,
                                "etcd: the store's revision went back (rebuilt or restored?); following it from its current revision"
                            );
                            self.rev = rev;
                            self.store.restart_writes(rev);
                        }
                        self.set_rev(rev);
                        break;
                    }
                    Err(e) => {
                        let now = Instant::now();
                        let (since, logged) = outage.get_or_insert((now, now - OUTAGE_LOG_EVERY));
                        if now.duration_since(*logged) >= OUTAGE_LOG_EVERY {
                            *logged = now;
                            tracing::warn!(
                                error = %e, revision = self.rev,
                                unreachable_secs = since.elapsed().as_secs(),
                                "etcd: unreachable; serving the last good copy"
                            );
                        }
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        }
                    }
                }
            }
        }
    }

    fn set_rev(&mut self, rev: i64) {
        self.rev = self.rev.max(rev);
        self.health.revision.store(self.rev, Ordering::Relaxed);
        let _ = self.applied.send(self.rev);
    }

    /// Follows the watch from the copy's revision; returns why it was lost.
    async fn follow(&mut self) -> String {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(self.rev + 1)
            .with_progress_notify();
        let mut wc = self
            .store
            .client()
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE);
        let key = self.store.prefix().to_string();
        let mut stream =
            match tokio::time::timeout(self.store.timeout, wc.watch(key, Some(opts))).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return format!("cannot watch: {e}"),
                Err(_) => return "cannot watch: no answer".into(),
            };
        let mut heard = Instant::now();
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        loop {
            let msg = tokio::select! {
                m = stream.message() => m,
                _ = tick.tick() => {
                    if heard.elapsed() > SILENT_LIMIT {
                        return format!("no answer for {} s", heard.elapsed().as_secs());
                    }
                    if let Err(e) = stream.request_progress().await {
                        return format!("asking for progress: {e}");
                    }
                    continue;
                }
            };
            let mut resp = match msg {
                Ok(Some(r)) => r,
                Ok(None) => return "the watch ended".into(),
                Err(e) => return e.to_string(),
            };
            heard = Instant::now();
            self.health.current();
            // Changes are applied as they come but published once per batch (what arrives
            // within BATCH of the first): a snapshot is rebuilt per batch, not per event.
            let until = tokio::time::Instant::now() + BATCH;
            let mut batch = Batch::default();
            loop {
                if let Err(lost) = self.apply(&resp, &mut batch) {
                    self.publish_batch(batch);
                    return lost;
                }
                match tokio::time::timeout_at(until, stream.message()).await {
                    Ok(Ok(Some(r))) => resp = r,
                    Ok(Ok(None)) => {
                        self.publish_batch(batch);
                        return "the watch ended".into();
                    }
                    Ok(Err(e)) => {
                        self.publish_batch(batch);
                        return e.to_string();
                    }
                    Err(_) => break,
                }
            }
            self.publish_batch(batch);
        }
    }

    /// Applies one watch response to the copy; `Err` when it says the watch is over.
    fn apply(
        &mut self,
        resp: &etcd_client::WatchResponse,
        batch: &mut Batch,
    ) -> Result<(), String> {
        if resp.canceled() || resp.compact_revision() > 0 {
            return Err(format!(
                "canceled by etcd: compacted up to revision {} {}",
                resp.compact_revision(),
                resp.cancel_reason()
            ));
        }
        let prefix = self.store.prefix().to_string();
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let put = ev.event_type() == EventType::Put;
            // The events' own revisions: how far the copy really is (see `settle`).
            batch.revision = batch.revision.max(kv.mod_revision());
            match place(&prefix, kv.key()) {
                Some(Place::Object(rel)) => {
                    let objects = Arc::make_mut(&mut self.state.objects);
                    if put {
                        objects.insert(rel.to_string(), object(kv.value(), kv.mod_revision()));
                    } else {
                        objects.remove(rel);
                    }
                    batch.objects_changed = true;
                }
                Some(Place::Machine(name)) => {
                    let value: Option<Arc<[u8]>> = put.then(|| Arc::from(kv.value()));
                    match &value {
                        Some(v) => self.state.machines.insert(name.to_string(), v.clone()),
                        None => self.state.machines.remove(name),
                    };
                    batch.machines.push((name.to_string(), value));
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Publishes what a batch changed, then says how far the copy is.
    fn publish_batch(&mut self, batch: Batch) {
        if batch.objects_changed || !batch.machines.is_empty() {
            let update = Update {
                objects: self.state.objects.clone(),
                objects_changed: batch.objects_changed,
                machines: batch.machines,
            };
            tokio::task::block_in_place(|| (self.publish)(update));
        }
        if batch.revision > 0 {
            self.set_rev(batch.revision);
        }
    }
}

/// What a batch of watch responses changed.
#[derive(Default)]
struct Batch {
    objects_changed: bool,
    machines: Vec<(String, Option<Arc<[u8]>>)>,
    revision: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_end_covers_the_prefix() {
        assert_eq!(range_end("/kindling/"), b"/kindling0".to_vec());
        assert_eq!(range_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
