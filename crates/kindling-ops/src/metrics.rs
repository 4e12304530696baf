//! Counters and gauges, kept by `prometheus-client` and rendered in the Prometheus text
//! exposition format (0.0.4).
//!
//! Two kinds of series. What this crate counts as events happen (asset bytes by boot
//! artifact, timeline events, reloads, event-stream subscribers refused and dropped) lives in families
//! registered once (`Counters`); an increment is an atomic add on a series found by its
//! typed labels. What others own is read when `/metrics` is scraped, into a registry
//! built for that scrape ([`Metrics::render`]), so no copy of it is kept here to go stale:
//! the proxy DHCP and TFTP servers' and the HTTP listeners' counters, each registered by
//! its own crate (`kindling_dhcp::StatsHandle::register`,
//! `kindling_tftp::TftpStats::register`, `kindling_http::server::register_listeners`),
//! the asset cache's (`kindling_menu::Cache::register`) and the Fedora CoreOS tracker's
//! (`kindling_fcos::FcosStatus::register`), the journal's health
//! (`JournalHealth::register`), the timeline store's sizes (`Store::register`) and the
//! lifecycle's counts (`kindling_model::Machines::register`).

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
use serde::{Deserialize, Serialize};

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
    /// Timeline events by source (DHCP, TFTP, HTTP), looked up once: an event costs an
    /// atomic add, not a family lookup.
    events_by_source: [Counter; 3],
}

impl Counters {
    /// The families, registered in `r`; the labels known in advance start at zero (so
    /// that rates work from the first scrape).
    fn register(r: &mut Registry) -> Counters {
        use kindling_timeline::event::Source;
        let events = Family::<BySource, Counter>::default();
        let by = |s: Source| {
            events
                .get_or_create(&BySource { source: s.label() })
                .clone()
        };
        let c = Counters {
            asset_bytes: Family::default(),
            events_by_source: [by(Source::Dhcp), by(Source::Tftp), by(Source::Http)],
            events,
            reloads: Counter::default(),
            reload_errors: Counter::default(),
            subscribers_refused: Counter::default(),
            subscribers_dropped: Family::default(),
            binding_refused: Counter::default(),
        };
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

/// One line of the dashboard's "assets and cache" box, fed by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetStatus {
    pub name: String,
    pub detail: String,
    /// false shows the line as a problem.
    pub ok: bool,
}

/// All metrics, and the status they and the status pages are read from. Cheap to update
/// from any thread.
pub struct Metrics {
    registry: Registry,
    c: Counters,
    /// The journal's dropped events, writability and torn lines, shared with its writer.
    pub(crate) journal: Arc<crate::journal::JournalHealth>,
    pub(crate) events_dropped: AtomicU64,
    /// Times the kernel's neighbour tables were full since start (`neighbours::check_tables`).
    pub(crate) neighbour_table_full: AtomicU64,
    /// `None` while no cache is in use.
    cache_bytes: Mutex<Option<u64>>,
    config_problems: Mutex<Vec<String>>,
    asset_status: Mutex<Vec<AssetStatus>>,
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
    fn default() -> Metrics {
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
            neighbour_table_full: AtomicU64::new(0),
            cache_bytes: Mutex::default(),
            config_problems: Mutex::default(),
            asset_status: Mutex::default(),
            fcos: std::sync::OnceLock::new(),
            ready: AtomicBool::new(false),
            listeners: Mutex::default(),
            others: Mutex::default(),
        }
    }
}

impl Metrics {
    /// A component's own metric families, registered at each scrape (the DHCP and TFTP
    /// servers' counters, the shared store's health, ...).
    pub fn add_families(&self, f: Families) {
        if let Ok(mut o) = self.others.lock() {
            o.push(f);
        }
    }

    /// Reports a listener's connection counters (`name` = `http`, `admin`, `rpc`).
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
        use kindling_timeline::event::Source;
        let i = match source {
            Source::Dhcp => 0,
            Source::Tftp => 1,
            Source::Http => 2,
        };
        self.c.events_by_source[i].inc();
    }

    pub fn reload(&self, problems: usize) {
        self.c.reloads.inc();
        if problems > 0 {
            self.c.reload_errors.inc();
        }
    }

    /// `kindling_cache_bytes`.
    pub fn set_cache_bytes(&self, b: u64) {
        if let Ok(mut c) = self.cache_bytes.lock() {
            *c = Some(b);
        }
    }

    pub fn cache_bytes(&self) -> Option<u64> {
        self.cache_bytes.lock().ok().and_then(|c| *c)
    }

    /// Replaces the list of configuration problems shown on `/ui/` and counted in
    /// `kindling_config_problems`.
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

    /// Lines for the dashboard's "assets and cache" box.
    pub fn set_asset_status(&self, lines: Vec<AssetStatus>) {
        if let Ok(mut g) = self.asset_status.lock() {
            *g = lines;
        }
    }

    pub fn asset_status(&self) -> Vec<AssetStatus> {
        self.asset_status
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    /// Whether the journal is configured and can be written, and the events it dropped.
    pub fn journal_status(&self) -> crate::journal::JournalStatus {
        self.journal.status()
    }

    /// Where `/api/v1/status` (`fcos`) and the dashboard's "Fedora CoreOS" box read the
    /// tracker's status, live at each request (its `kindling_fcos_*` series are the
    /// tracker's own); the first source set is kept.
    pub fn set_fcos_source(&self, source: FcosSource) {
        let _ = self.fcos.set(source);
    }

    /// The tracker's status now, sorted by stream and architecture (none without a source).
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

    /// `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Relaxed)
    }

    /// The whole exposition: the counters kept here, then what the owners of the rest
    /// report now (`hub`: the timeline store's, the lifecycle's, the event stream's).
    pub fn render(&self, hub: impl FnOnce(&mut Registry)) -> String {
        let mut o = String::with_capacity(16 * 1024);
        let _ = encode(&mut o, &self.registry);
        let _ = encode(&mut o, &self.scrape_time(hub));
        o
    }

    /// A registry of the values owned elsewhere, as they are now.
    fn scrape_time(&self, hub: impl FnOnce(&mut Registry)) -> Registry {
        let mut r = Registry::default();
        let ready = i64::from(self.is_ready());
        r.register(
            "kindling_ready",
            "1 once every listener is up",
            ConstGauge::new(ready),
        );
        if let Some(b) = self.cache_bytes() {
            let help = "Bytes held in the asset cache";
            r.register("kindling_cache_bytes", help, ConstGauge::new(b as i64));
        }
        let problems = ConstGauge::new(self.config_problems().len() as i64);
        let help = "Problems in the configuration now in force";
        r.register("kindling_config_problems", help, problems);
        r.register(
            "kindling_events_dropped",
            "Events not recorded because the ops queue was full (a storm faster than the store)",
            ConstCounter::new(self.events_dropped.load(Relaxed)),
        );
        r.register(
            "kindling_neighbour_table_full",
            "Times the kernel's neighbour table (ARP, NDP) was full since start: packets to \
             machines it had no entry for were dropped, Kindling's replies among them",
            ConstCounter::new(self.neighbour_table_full.load(Relaxed)),
        );
        self.journal.register(&mut r);
        // Listener connections, by listener (`http`: the boot listener; `admin`, `rpc`), and
        // the requests they answered (kindling-http's counts, summed over listeners).
        let listeners = self.listeners.lock().map(|l| l.clone()).unwrap_or_default();
        kindling_http::server::register_listeners(&mut r, &listeners);
        // File bodies being sent and the send-queue share each has.
        kindling_http::server::register_send_queue(&mut r);
        for f in self.others.lock().map(|o| o.clone()).unwrap_or_default() {
            f(&mut r);
        }
        hub(&mut r);
        r
    }
}
