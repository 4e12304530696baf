//! Counters and gauges, kept by `prometheus-client` and rendered in the Prometheus text
//! exposition format (0.0.4).
//!
//! Two kinds of series. What this crate counts as events happen (asset bytes by boot
//! artifact, timeline events, reloads, event-stream subscribers) lives in families
//! registered once (`Counters`); an increment is an atomic add on a series found by its
//! typed labels. What others own is read when `/metrics` is scraped, into a registry
//! built for that scrape ([`Metrics::render`]), so no copy of it is kept here to go stale:
//! the proxy DHCP and TFTP servers' and the HTTP listeners' counters, each registered by
//! its own crate (`kindling_dhcp::StatsHandle::register`,
//! `kindling_tftp::TftpStats::register`, `kindling_http::server::register_listeners`),
//! the asset cache's (`kindling_menu::Cache::register`) and the Fedora CoreOS tracker's
//! (`kindling_fcos::FcosStatus::register`); the journal's health and the store's sizes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use kindling_model::FcosTrack;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// A family with one label, `$field`.
macro_rules! one_label {
    ($name:ident, $field:ident) => {
        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        struct $name {
            $field: &'static str,
        }
    };
}
one_label!(ByKind, kind);
one_label!(ByReason, reason);
one_label!(BySource, source);

/// The series this crate counts, registered once.
struct Counters {
    asset_bytes: Family<ByKind, Counter>,
    events: Family<BySource, Counter>,
    reloads: Counter,
    reload_errors: Counter,
    subscribers_refused: Counter,
    subscribers_dropped: Family<ByReason, Counter>,
    binding_refused: Counter,
    /// Timeline events by source, looked up once (an event costs an atomic add, not a
    /// family lookup), in [`SOURCES`] order.
    events_by_source: Vec<Counter>,
}

/// Timeline event sources, in `events_by_source` order.
const SOURCES: [kindling_timeline::event::Source; 3] = [
    kindling_timeline::event::Source::Dhcp,
    kindling_timeline::event::Source::Tftp,
    kindling_timeline::event::Source::Http,
];

impl Counters {
    /// The families, registered in `r`; the labels known in advance start at zero (so
    /// that rates work from the first scrape).
    fn register(r: &mut Registry) -> Counters {
        let mut c = Counters {
            asset_bytes: Family::default(),
            events: Family::default(),
            reloads: Counter::default(),
            reload_errors: Counter::default(),
            subscribers_refused: Counter::default(),
            subscribers_dropped: Family::default(),
            binding_refused: Counter::default(),
            events_by_source: Vec::new(),
        };
        c.events_by_source = SOURCES
            .iter()
            .map(|s| {
                let source = s.label();
                c.events.get_or_create(&BySource { source }).clone()
            })
            .collect();
        for reason in ["overflow", "stalled"] {
            let _ = c.subscribers_dropped.get_or_create(&ByReason { reason });
        }
        r.register(
            "kindling_asset_bytes_served",
            "Bytes served under /assets/ with 2xx, by boot artifact",
            c.asset_bytes.clone(),
        );
        r.register(
            "kindling_events",
            "Events recorded in machine timelines, by source",
            c.events.clone(),
        );
        r.register(
            "kindling_reloads",
            "Data directory loads",
            c.reloads.clone(),
        );
        r.register(
            "kindling_reload_errors",
            "Loads that reported problems",
            c.reload_errors.clone(),
        );
        r.register(
            "kindling_events_subscribers_refused",
            "Event-stream requests answered 503: max_subscribers were open",
            c.subscribers_refused.clone(),
        );
        r.register(
            "kindling_events_subscribers_dropped",
            "Event-stream subscribers dropped, by reason (overflow: their queue filled; stalled: they took nothing for subscriber_stall_secs)",
            c.subscribers_dropped.clone(),
        );
        r.register(
            "kindling_http_binding_refused",
            "Requests by MAC (/ignition, /generic, /cloud, /metadata) refused: the MAC is not bound to the caller's address (http.ignition_binding)",
            c.binding_refused.clone(),
        );
        c
    }
}

/// What the store knows at a scrape ([`Metrics::render`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreGauges {
    pub machines: usize,
    pub pending: usize,
    pub unattributed: u64,
    pub dhcp_repeats: u64,
    pub subscribers: usize,
    /// Installed and discovered machines, and discoveries not recorded (the table was
    /// full), when the lifecycle is tracked.
    pub lifecycle: Option<(usize, usize, u64)>,
}

/// All metrics. Cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    c: Counters,
    /// The journal's dropped events and writability, shared with its writer.
    pub(crate) journal: Arc<crate::journal::JournalHealth>,
    pub(crate) events_dropped: AtomicU64,
    pub(crate) journal_torn: AtomicU64,
    pub(crate) journal_bad: AtomicU64,
    cache_bytes: AtomicU64,
    cache_bytes_set: AtomicBool,
    config_problems: Mutex<Vec<String>>,
    /// Where the Fedora CoreOS tracker's status is read (set once, when tracking starts).
    fcos: std::sync::OnceLock<FcosSource>,
    ready: AtomicBool,
    /// The HTTP listeners' connection counters, by listener name.
    listeners: Mutex<Vec<(&'static str, Arc<kindling_http::server::Stats>)>>,
    /// Families other crates register at each scrape (the DHCP and TFTP servers' counters,
    /// the shared store's health).
    others: Mutex<Vec<Families>>,
}

/// Where the Fedora CoreOS tracker's status is read, when asked (one entry per stream and
/// architecture).
pub type FcosSource = Arc<dyn Fn() -> Vec<FcosTrack> + Send + Sync>;

/// Adds a component's metric families to a scrape's registry.
pub type Families = Arc<dyn Fn(&mut Registry) + Send + Sync>;

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        registry.register(
            "kindling_build",
            "Kindling version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        let c = Counters::register(&mut registry);
        Metrics {
            registry,
            c,
            journal: Arc::default(),
            events_dropped: AtomicU64::new(0),
            journal_torn: AtomicU64::new(0),
            journal_bad: AtomicU64::new(0),
            cache_bytes: AtomicU64::new(0),
            cache_bytes_set: AtomicBool::new(false),
            config_problems: Mutex::default(),
            fcos: std::sync::OnceLock::new(),
            ready: AtomicBool::new(false),
            listeners: Mutex::default(),
            others: Mutex::default(),
        }
    }

    /// A component's own families, added to every scrape.
    pub fn add_families(&self, f: Families) {
        if let Ok(mut o) = self.others.lock() {
            o.push(f);
        }
    }

    pub fn add_listener(&self, name: &'static str, stats: Arc<kindling_http::server::Stats>) {
        if let Ok(mut l) = self.listeners.lock() {
            l.retain(|(n, _)| *n != name);
            l.push((name, stats));
        }
    }

    pub fn subscriber_refused(&self) {
        self.c.subscribers_refused.inc();
    }

    /// A subscriber dropped: `overflow` (its queue filled) or `stalled` (it took nothing
    /// for the stall timeout).
    pub fn subscriber_dropped(&self, overflow: bool) {
        let reason = if overflow { "overflow" } else { "stalled" };
        self.c
            .subscribers_dropped
            .get_or_create(&ByReason { reason })
            .inc();
    }

    pub fn binding_refused(&self) {
        self.c.binding_refused.inc();
    }

    pub fn asset_bytes(&self, kind: &'static str, bytes: u64) {
        self.c
            .asset_bytes
            .get_or_create(&ByKind { kind })
            .inc_by(bytes);
    }

    pub fn event(&self, source: kindling_timeline::event::Source) {
        let i = SOURCES.iter().position(|s| *s == source);
        if let Some(c) = i.and_then(|i| self.c.events_by_source.get(i)) {
            c.inc();
        }
    }

    pub fn reload(&self, problems: usize) {
        self.c.reloads.inc();
        if problems > 0 {
            self.c.reload_errors.inc();
        }
    }

    pub fn set_cache_bytes(&self, b: u64) {
        self.cache_bytes.store(b, Relaxed);
        self.cache_bytes_set.store(true, Relaxed);
    }

    pub fn cache_bytes(&self) -> Option<u64> {
        self.cache_bytes_set
            .load(Relaxed)
            .then(|| self.cache_bytes.load(Relaxed))
    }

    pub fn set_config_problems(&self, p: Vec<String>) {
        if let Ok(mut g) = self.config_problems.lock() {
            *g = p;
        }
    }

    pub fn config_problems(&self) -> Vec<String> {
        self.config_problems
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    pub fn set_fcos_source(&self, source: FcosSource) {
        let _ = self.fcos.set(source);
    }

    pub fn fcos_streams(&self) -> Vec<FcosTrack> {
        let mut streams = self.fcos.get().map(|read| read()).unwrap_or_default();
        streams.sort_by(|a, b| (&a.stream, &a.arch).cmp(&(&b.stream, &b.arch)));
        streams
    }

    /// Bytes served under `/assets/`, by boot artifact (`kernel`, `initrd`, ...).
    pub fn asset_bytes_by_kind(&self) -> std::collections::BTreeMap<String, u64> {
        ["kernel", "initrd", "rootfs", "other"]
            .into_iter()
            .filter_map(|kind| {
                let v = self.c.asset_bytes.get(&ByKind { kind })?.get();
                Some((kind.to_string(), v))
            })
            .collect()
    }

    pub fn set_ready(&self, r: bool) {
        self.ready.store(r, Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Relaxed)
    }

    /// The whole exposition: the counters kept here, then what the owners of the rest
    /// report now.
    pub fn render(&self, store: StoreGauges) -> String {
        let mut o = String::with_capacity(16 * 1024);
        let _ = encode(&mut o, &self.registry);
        let _ = encode(&mut o, &self.scrape_time(store));
        o
    }

    /// A registry of the values owned elsewhere, as they are now.
    fn scrape_time(&self, s: StoreGauges) -> Registry {
        let mut r = Registry::default();
        let gauge = |r: &mut Registry, name: &str, help: &str, v: u64| {
            r.register(name, help, ConstGauge::new(v as i64));
        };
        let counter = |r: &mut Registry, name: &str, help: &str, v: u64| {
            r.register(name, help, ConstCounter::new(v));
        };
        gauge(
            &mut r,
            "kindling_ready",
            "1 once every listener is up",
            u64::from(self.is_ready()),
        );
        if let Some(b) = self.cache_bytes() {
            gauge(
                &mut r,
                "kindling_cache_bytes",
                "Bytes held in the asset cache",
                b,
            );
        }
        gauge(
            &mut r,
            "kindling_config_problems",
            "Problems in the configuration now in force",
            self.config_problems().len() as u64,
        );
        gauge(
            &mut r,
            "kindling_machines",
            "Machines in the in-memory store",
            s.machines as u64,
        );
        if let Some((installed, discovered, dropped)) = s.lifecycle {
            gauge(
                &mut r,
                "kindling_machines_installed",
                "Machines marked installed (answered with a local boot until re-armed)",
                installed as u64,
            );
            gauge(
                &mut r,
                "kindling_machines_discovered",
                "Machines that asked for a boot script and matched no group",
                discovered as u64,
            );
            counter(
                &mut r,
                "kindling_machines_discovered_dropped",
                "Discovered machines not recorded because the table was full ([machines] max_discovered)",
                dropped,
            );
        }
        gauge(
            &mut r,
            "kindling_events_pending",
            "Events waiting for their IP to be tied to a MAC",
            s.pending as u64,
        );
        counter(
            &mut r,
            "kindling_events_unattributed",
            "Events dropped because no MAC could be found for their IP",
            s.unattributed,
        );
        counter(
            &mut r,
            "kindling_dhcp_repeats",
            "DHCP retries counted on the timeline event they repeat instead of stored again",
            s.dhcp_repeats,
        );
        counter(
            &mut r,
            "kindling_events_dropped",
            "Events not recorded because the ops queue was full (a storm faster than the store)",
            self.events_dropped.load(Relaxed),
        );
        counter(
            &mut r,
            "kindling_journal_dropped",
            "Events not journaled (kept in memory only): the writer's queue was full, or the journal could not be written (full disk, unwritable state directory)",
            self.journal.dropped(),
        );
        if self.journal.enabled() {
            gauge(
                &mut r,
                "kindling_journal_writable",
                "1 while the journal can be written; 0 while boot timelines are kept in memory only (writing is retried)",
                u64::from(self.journal.writable()),
            );
        }
        gauge(
            &mut r,
            "kindling_journal_torn_lines",
            "Damaged journal lines skipped at start-up",
            self.journal_torn.load(Relaxed) + self.journal_bad.load(Relaxed),
        );
        self.listener_families(&mut r);
        for f in self.others.lock().map(|o| o.clone()).unwrap_or_default() {
            f(&mut r);
        }
        gauge(
            &mut r,
            "kindling_events_subscribers",
            "Open /api/v1/events streams",
            s.subscribers as u64,
        );
        r
    }

    /// Listener connections, by listener (`http`: the boot listener; `admin`), and the
    /// requests they answered (kindling-http's counts, summed over listeners).
    fn listener_families(&self, r: &mut Registry) {
        let listeners = self.listeners.lock().map(|l| l.clone()).unwrap_or_default();
        kindling_http::server::register_listeners(r, &listeners);
    }
}
