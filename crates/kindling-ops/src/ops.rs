//! The hub: observers in, store + journal + metrics + live stream out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use kindling_model::{MacAddr, Snapshot};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::journal::{FsyncPolicy, JournalConfig, JournalWriter, replay_journal_lenient};
use crate::metrics::Metrics;
use crate::neighbours::{MISS_REREAD_AFTER, Neighbours, read_proc_net_arp};
use kindling_timeline::classify::{ProfileMap, ProfilePaths};
use kindling_timeline::event::Event;
use kindling_timeline::store::{LeaseSummary, Limits, MachineDetail, MachineSummary, Store};

/// The `[ops]` table of `kindling.toml`. Every key has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// Directory of the boot journal; `--state-dir` wins over it. Unset: `$STATE_DIRECTORY/state`
    /// under systemd (`StateDirectory=`), `/var/lib/kindling/state` as root, else
    /// `$XDG_STATE_HOME/kindling` (`~/.local/state/kindling`); never the data directory.
    pub state_dir: Option<PathBuf>,
    /// Keep an on-disk journal (else history is lost on restart).
    pub journal: bool,
    /// Rotate the journal file at this size in bytes (8 MiB by default).
    pub journal_max_bytes: u64,
    /// Journal files kept, the active one included.
    pub journal_files: usize,
    /// When journal writes are flushed to disk.
    pub fsync: FsyncPolicy,
    /// With `fsync = "interval"`: flush at most this often (a power cut loses at most
    /// about this much history).
    pub fsync_interval_ms: u64,
    /// Machines kept (the least recently seen is forgotten first).
    pub max_machines: usize,
    /// Boots kept per machine (the oldest dropped first).
    pub max_boots: usize,
    /// Events kept per boot (the oldest dropped first, and counted).
    pub max_events_per_boot: usize,
    /// Events kept in full across all machines' earlier boots (every boot but a
    /// machine's newest). Beyond, the boots that ended longest ago keep only their
    /// summary (start, furthest stage, error; their events counted as dropped). Bounds
    /// the timeline's memory at any fleet size (about 200 bytes per event).
    pub max_earlier_events: usize,
    /// Silence from a machine longer than this starts a new boot.
    pub boot_gap_secs: u64,
    /// Tie unknown client IPs to MACs through the kernel's neighbour table
    /// (`/proc/net/arp`), e.g. TFTP clients that never sent an IP in DHCP.
    pub neighbour_lookup: bool,
    /// Open `/api/v1/events` streams at most; more get 503.
    pub max_subscribers: usize,
    /// Messages waiting for one event-stream subscriber at most; a subscriber whose queue
    /// overflows (it does not read) is dropped.
    pub subscriber_queue: usize,
    /// A subscriber that has taken nothing from a non-empty queue for this long is dropped.
    pub subscriber_stall_secs: u64,
}

impl Default for OpsConfig {
    fn default() -> Self {
        let l = Limits::default();
        OpsConfig {
            state_dir: None,
            journal: true,
            journal_max_bytes: 8 * 1024 * 1024,
            journal_files: 4,
            fsync: FsyncPolicy::Interval,
            fsync_interval_ms: 1000,
            max_machines: l.max_machines,
            max_boots: l.max_boots,
            max_events_per_boot: l.max_events,
            max_earlier_events: l.max_earlier_events,
            boot_gap_secs: l.boot_gap_ms / 1000,
            neighbour_lookup: true,
            max_subscribers: 64,
            subscriber_queue: 32,
            subscriber_stall_secs: 30,
        }
    }
}

impl OpsConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            max_machines: self.max_machines.max(1),
            max_boots: self.max_boots.max(1),
            max_events: self.max_events_per_boot.max(1),
            max_earlier_events: self.max_earlier_events,
            boot_gap_ms: self.boot_gap_secs.saturating_mul(1000),
            ..Limits::default()
        }
    }

    pub fn journal_config(&self, dir: &Path) -> JournalConfig {
        JournalConfig {
            dir: dir.to_path_buf(),
            max_bytes: self.journal_max_bytes.max(1024),
            files: self.journal_files.max(1),
            fsync: self.fsync,
            fsync_interval: Duration::from_millis(self.fsync_interval_ms),
        }
    }
}

/// The operator view. Create one with [`Ops::open`] (journal) or [`Ops::in_memory`], hand
/// clones of the `Arc` to the DHCP server, TFTP server and HTTP service as their observer,
/// and register [`Ops::boot_extensions`] and [`Ops::admin_extensions`] with the listeners.
pub struct Ops {
    pub(crate) store: Mutex<Store>,
    /// Events recorded but not yet applied to the store (see [`Ops::record`]).
    inbox: Inbox,
    /// Counters, and the status `/readyz`, `/api/v1/status`, `/metrics` and the dashboard
    /// show (readiness, configuration problems, the Fedora CoreOS tracker, the cache and
    /// assets, the journal's health): set by the services through it.
    pub metrics: Metrics,
    journal: Mutex<Option<JournalWriter>>,
    /// Live updates (JSON of [`Update`]) to event-stream subscribers.
    pub(crate) tx: broadcast::Sender<Arc<str>>,
    pub(crate) closed: watch::Sender<bool>,
    /// `OpsConfig::neighbour_lookup`.
    neighbour_lookup: bool,
    /// The kernel's neighbour table, read at most every 100 ms (attribution and the
    /// Ignition binding).
    pub(crate) neighbours: Mutex<Neighbours>,
    /// Event-stream limits (from [`OpsConfig`]).
    pub(crate) subscriber_limits: SubscriberLimits,
    /// One permit per open event stream (`max_subscribers` in all).
    subscribers: Arc<tokio::sync::Semaphore>,
    /// MAC -> addresses its PXE requests came from (the Ignition binding's evidence).
    pub(crate) bindings: Mutex<crate::binding::BindTable>,
    /// Install-once and discovery state, shown with each machine (set once at start).
    lifecycle: std::sync::OnceLock<Arc<kindling_model::Machines>>,
    /// Full DHCP mode's leases, shown with the machines and at `/api/v1/leases`.
    pub(crate) dhcp_leases: std::sync::OnceLock<kindling_dhcp::LeasesHandle>,
}

/// The events queue, on one cache line of its own: the threads that record and the
/// applier touch nothing else as often (measured: 9 % more per event when the lock and the
/// length fell on two lines shared with other fields).
#[repr(align(64))]
struct Inbox {
    events: Mutex<Vec<Event>>,
    /// Length of `events` (read without its lock; exact under it).
    len: std::sync::atomic::AtomicUsize,
    ready: Condvar,
    /// Held by whoever applies the queue (the applier thread or a reader), from taking
    /// it to publishing its last slice: one batch is stored, journaled and streamed
    /// whole before the next one starts, and a reader that applies the queue sees every
    /// earlier batch in the store.
    applying: Mutex<()>,
}

/// Bounds on `/api/v1/events` subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubscriberLimits {
    pub max: usize,
    pub queue: usize,
    pub stall: Duration,
}

/// One open event stream; dropping it frees its place.
pub type SubscriberSlot = tokio::sync::OwnedSemaphorePermit;

/// A live update, as sent on `/api/v1/events`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Update {
    pub event: Event,
    pub machine: MachineSummary,
}

impl Ops {
    /// Opens the operator view with its journal in `state_dir` (created if missing):
    /// reads back the existing journal into the store, then appends to it.
    /// `state_dir = None` (or `journal = false`) keeps everything in memory.
    ///
    /// Never fails: history must not stop machines from booting. A journal that cannot be
    /// read back (a directory where a journal file should be, an I/O error) is read as far
    /// as it can be, with a warning; a journal that cannot be written (a state directory
    /// that cannot be created, a full disk) leaves the timelines in memory only, with a
    /// warning, `kindling_journal_writable 0` and dropped events counted in
    /// `kindling_journal_dropped_total`, and is tried again as events come
    /// (see [`crate::journal`]).
    pub fn open(cfg: &OpsConfig, state_dir: Option<&Path>) -> Arc<Ops> {
        let ops = Self::build(cfg);
        if let Some(dir) = state_dir.filter(|_| cfg.journal) {
            // Replayed as it is read: start-up memory does not grow with the journal.
            let files = cfg.journal_files.max(1);
            // Nothing else holds the new store's lock, so it cannot be poisoned.
            let mut store = ops
                .store
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let rb = replay_journal_lenient(dir, files, |ev| store.replay(ev));
            let machines = store.machine_count();
            drop(store);
            ops.metrics
                .journal
                .set_torn_lines(rb.torn_lines + rb.bad_lines);
            if !rb.errors.is_empty() {
                tracing::warn!(
                    target: "kindling::ops",
                    dir = %dir.display(),
                    error = %rb.errors.join("; "),
                    "part of the boot journal could not be read back; starting with the rest"
                );
            }
            tracing::info!(
                target: "kindling::ops",
                dir = %dir.display(),
                events = rb.read,
                machines,
                torn_lines = rb.torn_lines,
                "boot journal read back"
            );
            let w = JournalWriter::start_with_health(
                cfg.journal_config(dir),
                ops.metrics.journal.clone(),
            );
            if let Ok(mut j) = ops.journal.lock() {
                *j = Some(w);
            }
        }
        ops
    }

    /// No journal: history lasts as long as the process.
    pub fn in_memory(cfg: &OpsConfig) -> Arc<Ops> {
        Self::build(cfg)
    }

    fn build(cfg: &OpsConfig) -> Arc<Ops> {
        let (tx, _) = broadcast::channel(1024);
        let (closed, _) = watch::channel(false);
        let max = cfg.max_subscribers.min(tokio::sync::Semaphore::MAX_PERMITS);
        let ops = Arc::new(Ops {
            store: Mutex::new(Store::new(cfg.limits())),
            inbox: Inbox {
                events: Mutex::new(Vec::new()),
                len: std::sync::atomic::AtomicUsize::new(0),
                ready: Condvar::new(),
                applying: Mutex::new(()),
            },
            metrics: Metrics::default(),
            journal: Mutex::new(None),
            tx,
            closed,
            neighbour_lookup: cfg.neighbour_lookup,
            neighbours: Mutex::default(),
            subscriber_limits: SubscriberLimits {
                max,
                queue: cfg.subscriber_queue.max(1),
                stall: Duration::from_secs(cfg.subscriber_stall_secs.max(1)),
            },
            subscribers: Arc::new(tokio::sync::Semaphore::new(max)),
            bindings: Mutex::default(),
            lifecycle: std::sync::OnceLock::new(),
            dhcp_leases: std::sync::OnceLock::new(),
        });
        spawn_applier(Arc::downgrade(&ops));
        ops
    }

    /// Call with every snapshot that goes into service (start-up and each reload):
    /// learns the profiles' asset paths (stage of `/assets/` downloads), sets the
    /// configuration problems and counts the reload.
    pub fn note_snapshot(&self, snap: &Snapshot) {
        let mut map = ProfileMap::new();
        for p in snap.profiles.values() {
            if let Some(b) = &p.boot {
                map.insert(
                    p.id.clone(),
                    ProfilePaths::from_boot(&b.kernel, &b.initrd, &b.args),
                );
            }
        }
        if let Ok(mut s) = self.store.lock() {
            s.set_profiles(map);
        }
        let mut problems: Vec<String> = snap.problems.iter().map(|p| p.to_string()).collect();
        let mut invalid: Vec<_> = snap.invalid_profiles.iter().collect();
        invalid.sort();
        for (k, v) in invalid {
            let line = format!("profile {k}: {v}");
            if !problems.iter().any(|p| p.contains(v.as_str())) {
                problems.push(line);
            }
        }
        self.metrics.reload(problems.len());
        self.metrics.set_config_problems(problems);
    }

    /// Ends the live streams and flushes the journal. Call on shutdown.
    pub fn shutdown(&self) {
        self.apply_queued();
        let _ = self.closed.send(true);
        if let Ok(mut j) = self.journal.lock()
            && let Some(mut w) = j.take()
        {
            w.close();
        }
    }

    /// Waits until every event recorded so far is on disk.
    pub fn flush(&self) {
        self.apply_queued();
        if let Ok(j) = self.journal.lock()
            && let Some(w) = j.as_ref()
        {
            w.flush();
        }
    }

    /// The Prometheus exposition.
    pub fn metrics_text(&self) -> String {
        self.apply_queued();
        self.metrics.render(|r| {
            if let Ok(s) = self.store.lock() {
                s.register(r);
            }
            if let Some(m) = self.lifecycle.get() {
                m.register(r);
            }
            r.register(
                "kindling_events_subscribers",
                "Open /api/v1/events streams",
                prometheus_client::metrics::gauge::ConstGauge::new(self.open_subscribers() as i64),
            );
        })
    }

    /// Every machine, most recently seen first.
    pub fn machines(&self) -> Vec<MachineSummary> {
        self.apply_queued();
        let mut list = self.store.lock().map(|s| s.summaries()).unwrap_or_default();
        self.complete(&mut list);
        list
    }

    /// The machines named that have events, in that order (the dashboard's live rows).
    pub fn summaries(&self, macs: &[MacAddr]) -> Vec<MachineSummary> {
        if macs.is_empty() {
            return Vec::new();
        }
        self.apply_queued();
        let mut list: Vec<MachineSummary> = match self.store.lock() {
            Ok(s) => macs.iter().filter_map(|m| s.summary(*m)).collect(),
            Err(_) => return Vec::new(),
        };
        self.complete(&mut list);
        list
    }

    /// One machine's summary and timeline (`mac` in any form `MacAddr::parse` accepts).
    pub fn machine(&self, mac: &str) -> Option<MachineDetail> {
        self.apply_queued();
        let mut d = self.store.lock().ok()?.detail(mac)?;
        self.complete(std::slice::from_mut(&mut d.summary));
        d.lifecycle_record = self
            .lifecycle
            .get()
            .and_then(|m| m.get_text(&d.summary.mac));
        Some(d)
    }

    /// What summaries get from outside the timeline: the lifecycle state and, in full DHCP
    /// mode, the lease (and its address, when no boot event named one).
    fn complete(&self, list: &mut [MachineSummary]) {
        if let Some(m) = self.lifecycle.get() {
            for s in list.iter_mut() {
                s.lifecycle = kindling_timeline::text::lifecycle_state(m.get_text(&s.mac).as_ref());
            }
        }
        if self.dhcp_leases.get().is_none() {
            return;
        }
        let mut leases: HashMap<String, LeaseSummary> = self
            .leases()
            .into_iter()
            .map(|l| (l.mac.clone(), l))
            .collect();
        for s in list {
            s.lease = leases.remove(&s.mac);
            if s.ip.is_none() {
                s.ip = s.lease.as_ref().map(|l| l.ip.clone());
            }
        }
    }

    /// The lifecycle store whose state `/api/v1/machines` and the dashboard show.
    pub fn set_machines(&self, machines: Arc<kindling_model::Machines>) {
        let _ = self.lifecycle.set(machines);
    }

    /// A place for one more event-stream subscriber, or `None` when
    /// `max_subscribers` are open (counted in `kindling_events_subscribers_refused_total`).
    pub fn try_subscriber_slot(&self) -> Option<SubscriberSlot> {
        let slot = self.subscribers.clone().try_acquire_owned().ok();
        if slot.is_none() {
            self.metrics.subscriber_refused();
        }
        slot
    }

    /// Open event streams (the `kindling_events_subscribers` gauge).
    pub fn open_subscribers(&self) -> usize {
        self.subscriber_limits.max - self.subscribers.available_permits()
    }

    /// Records one event (already attributed or not).
    ///
    /// Cheap on purpose: this runs on the DHCP, TFTP and HTTP paths. The event is queued;
    /// the applier thread (or the next reader) ties it to a machine, stores it, journals
    /// it and streams it, in batches. Readers of this `Ops` ([`machines`](Self::machines),
    /// [`machine`](Self::machine), [`flush`](Self::flush), the metrics) apply the queue
    /// first, so they always see every event recorded before the call. If the queue is
    /// full (the applier cannot keep up with a storm), the event is dropped and counted in
    /// `kindling_events_dropped_total`: answering machines comes first.
    pub fn record(&self, ev: Event) {
        let Ok(mut q) = self.inbox.events.lock() else {
            return;
        };
        if q.len() >= QUEUE_MAX {
            drop(q);
            self.metrics
                .events_dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        q.push(ev);
        self.inbox
            .len
            .store(q.len(), std::sync::atomic::Ordering::Release);
        let wake = q.len() == QUEUE_WAKE;
        drop(q);
        if wake {
            self.inbox.ready.notify_one();
        }
    }

    /// Applies every queued event: store, metrics, journal, live stream.
    ///
    /// The queue is taken whole and applied in slices of [`APPLY_SLICE`] events, each
    /// stored under the store's lock and then published: what a slice adds (the events
    /// as attributed, their journal lines, the live updates) is freed before the next
    /// one, instead of being held for a whole batch (up to [`QUEUE_MAX`] events after a
    /// storm), and the store's lock is held for one slice at a time.
    pub(crate) fn apply_queued(&self) {
        // Taken even when the queue looks empty: another applier may be between two
        // slices of the batch it took, and this caller must see all of it.
        let Ok(_turn) = self.inbox.applying.lock() else {
            return;
        };
        if self.inbox.len.load(std::sync::atomic::Ordering::Acquire) == 0 {
            return;
        }
        let batch = match self.inbox.events.lock() {
            Ok(mut q) if !q.is_empty() => {
                self.inbox
                    .len
                    .store(0, std::sync::atomic::Ordering::Release);
                std::mem::take(&mut *q)
            }
            _ => return,
        };
        let mut batch = batch.into_iter();
        while batch.len() > 0 {
            let Ok(mut store) = self.store.lock() else {
                return;
            };
            let (attributed, updates) = self.ingest(&mut store, batch.by_ref().take(APPLY_SLICE));
            drop(store);
            self.publish(attributed, updates);
        }
    }

    /// Ties `evs` to machines and ingests them into `store` (held by the caller).
    fn ingest(
        &self,
        store: &mut Store,
        evs: impl ExactSizeIterator<Item = Event>,
    ) -> (Vec<Event>, Vec<Update>) {
        let live = self.tx.receiver_count() > 0;
        let mut updates = Vec::new();
        let mut attributed = Vec::with_capacity(evs.len());
        for mut ev in evs {
            // Tied through the neighbour table, when the lookup is on (a miss may be up to
            // MISS_REREAD_AFTER old).
            if ev.mac.is_none()
                && self.neighbour_lookup
                && let Some(ip) = ev.ip
                && store.mac_for_ip(ip).is_none()
            {
                ev.mac = self.neighbour_now(ip, MISS_REREAD_AFTER);
            }
            let hint = live.then_some((ev.ip, ev.mac));
            let evs = store.ingest(ev);
            if let Some((ip_hint, mac_hint)) = hint {
                live_updates(store, &evs, ip_hint, mac_hint, &mut updates);
            }
            attributed.extend(evs);
        }
        (attributed, updates)
    }

    /// Metrics, journal and live stream for events the store took.
    fn publish(&self, attributed: Vec<Event>, updates: Vec<Update>) {
        for e in &attributed {
            self.metrics.event(e.source());
        }
        if !attributed.is_empty()
            && let Ok(j) = self.journal.lock()
            && let Some(w) = j.as_ref()
        {
            // Dropped events are counted in the journal's health (the metrics' copy).
            w.append_batch(&attributed);
        }
        for u in updates {
            if let Ok(s) = serde_json::to_string(&u) {
                let _ = self.tx.send(Arc::from(s));
            }
        }
    }

    /// The MAC of an IPv4 client in the kernel's neighbour table: from a read younger
    /// than [`crate::neighbours::REREAD_AFTER`] when it has the address, or younger than
    /// `miss_after` when it has not; else from a new read.
    pub(crate) fn neighbour_now(&self, ip: IpAddr, miss_after: Duration) -> Option<MacAddr> {
        let IpAddr::V4(ip) = ip.to_canonical() else {
            return None;
        };
        let mut n = self.neighbours.lock().ok()?;
        n.lookup(ip, Instant::now(), miss_after, read_proc_net_arp)
    }

    /// `ip`'s MAC from a new read of the neighbour table.
    pub(crate) fn neighbour_fresh(&self, ip: IpAddr) -> Option<MacAddr> {
        let IpAddr::V4(ip) = ip.to_canonical() else {
            return None;
        };
        let mut n = self.neighbours.lock().ok()?;
        n.reread(Instant::now(), read_proc_net_arp);
        n.lookup(ip, Instant::now(), Duration::MAX, || None)
    }
}

/// Events queued before new ones are dropped (about 40 MB at worst; the applier drains
/// hundreds of thousands per second).
const QUEUE_MAX: usize = 65_536;
/// Queue length at which the applier is woken at once (else it looks every 50 ms).
const QUEUE_WAKE: usize = 1024;
/// Events stored and published together when the queue is applied (one slice's
/// journal lines are ~256 KiB).
const APPLY_SLICE: usize = QUEUE_WAKE;
/// How often the applier looks at the queue when nobody wakes it.
const APPLY_EVERY: Duration = Duration::from_millis(50);
/// How often the applier hands freed heap back to the kernel (see
/// [`give_back_freed_memory`]).
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Hands back to the kernel the heap pages that hold only freed blocks. glibc keeps
/// them for reuse otherwise: the timeline's churn (boots replaced, repeats dropped,
/// batches of events queued and applied) leaves freed pages scattered between live
/// blocks, which at 10,000 machines doubled the server's resident memory
/// (bench/memory/README.md). A few milliseconds per call; also called after a
/// configuration load.
pub fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Ops {
    /// Counts and reports the kernel's neighbour tables' overflows since the last look
    /// (every [`TRIM_EVERY`]): the one failure of a reply that Kindling's own logs would
    /// otherwise show as sent.
    fn check_neighbour_tables(&self, watches: &mut [crate::neighbours::OverflowWatch; 2]) {
        crate::neighbours::check_tables(watches, |t, new, bound| {
            self.metrics
                .neighbour_table_full
                .fetch_add(new, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                target: "kindling::ops",
                table = t.family,
                times = new,
                bound = %bound,
                "the kernel's neighbour table was full: packets to machines it had no entry \
                 for were dropped, and replies logged as sent (port-4011 ACKs, TFTP, HTTP) \
                 may not have left; raise {} (and gc_thresh2) above the number of machines \
                 that boot at once",
                t.sysctl
            );
        });
    }
}

/// The applier thread: applies queued events in batches. Ends when the `Ops` is dropped.
fn spawn_applier(ops: Weak<Ops>) {
    let spawned = std::thread::Builder::new()
        .name("kindling-ops".into())
        .spawn(move || {
            kindling_journal::background_priority(kindling_journal::BACKGROUND_NICE);
            let mut trimmed = std::time::Instant::now();
            // The baseline now, so that overflows in the first period (a power cut: the
            // server and the machines come back together) are reported at its end.
            let mut neighbour_tables = Default::default();
            if let Some(o) = ops.upgrade() {
                o.check_neighbour_tables(&mut neighbour_tables);
            }
            loop {
                let Some(o) = ops.upgrade() else { return };
                if let Ok(q) = o.inbox.events.lock()
                    && q.len() < QUEUE_WAKE
                {
                    let _ = o.inbox.ready.wait_timeout(q, APPLY_EVERY);
                }
                o.apply_queued();
                if trimmed.elapsed() >= TRIM_EVERY {
                    give_back_freed_memory();
                    o.check_neighbour_tables(&mut neighbour_tables);
                    trimmed = std::time::Instant::now();
                }
            }
        });
    if let Err(e) = spawned {
        // Readers still apply the queue themselves; only the live stream lags.
        tracing::warn!(target: "kindling::ops", error = %e, "could not start the ops thread");
    }
}

/// Dashboard updates for one ingested event (`evs` are the events it attributed).
fn live_updates(
    store: &Store,
    evs: &[Event],
    ip_hint: Option<std::net::IpAddr>,
    mac_hint: Option<MacAddr>,
    out: &mut Vec<Update>,
) {
    for e in evs {
        if let Some(machine) = e.mac.and_then(|m| store.summary(m)) {
            out.push(Update {
                event: e.clone(),
                machine,
            });
        }
    }
    if evs.is_empty() {
        // A repeat, counted on the machine's last event: not journaled, but the
        // dashboard still hears about it.
        let mac = mac_hint.or_else(|| ip_hint.and_then(|ip| store.mac_for_ip(ip)));
        if let Some(mac) = mac
            && let Some(event) = store.last_event(mac)
            && let Some(machine) = store.summary(mac)
        {
            out.push(Update { event, machine });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support as support;
    use std::sync::atomic::Ordering;

    /// A queue of three slices taken in one go (the applier is held off while it fills)
    /// is stored whole and journaled once, in the order recorded.
    #[test]
    fn a_queue_of_several_slices_is_applied_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let cfg = OpsConfig {
            neighbour_lookup: false,
            ..OpsConfig::default()
        };
        let ops = Ops::open(&cfg, Some(dir.path()));
        let machines: u16 = 1100;
        let mac = |i: u16| [0x52, 0x54, 0, 0x7e, (i >> 8) as u8, i as u8];
        {
            let _held = ops.inbox.applying.lock();
            for i in 0..machines {
                let c = support::bios_client(u32::from(i), mac(i));
                support::discover_offer(&*ops, &c, &support::offer("undionly.kpxe"));
            }
            // A DISCOVER and its OFFER: two events each, one batch of three slices.
            assert_eq!(
                ops.inbox.len.load(Ordering::Acquire),
                2 * usize::from(machines)
            );
            assert!(2 * usize::from(machines) > 2 * APPLY_SLICE);
        }
        ops.flush();
        assert_eq!(ops.machines().len(), usize::from(machines));
        let rb = crate::journal::read_journal::<Event>(dir.path(), 4)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(rb.events.len(), 2 * usize::from(machines));
        let wrong = (rb.events.iter().enumerate())
            .find(|(k, e)| e.mac != Some(MacAddr(mac((k / 2) as u16))));
        assert!(wrong.is_none(), "out of order: {wrong:?}");
        ops.shutdown();
    }
}
