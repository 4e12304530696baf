//! Counters and gauges, kept by `prometheus-client` and rendered in the Prometheus text
//! exposition format (0.0.4).
//!
//! Two kinds of series. What this crate counts as events happen (asset bytes by boot
//! artifact, timeline events, reloads, event-stream subscribers) lives in families
//! registered once ([`Counters`]); an increment is an atomic add on a series found by its
//! typed labels. What others own (the proxy DHCP and TFTP servers' counters, the HTTP
//! listeners' connection and request counts, the journal's health, the store's sizes, the cache's counters, the Fedora
//! CoreOS tracker's status) is read when `/metrics` is scraped and written out from a
//! registry built for that scrape ([`Metrics::render`]): no copy of it is kept here to
//! go stale.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use kindling_model::FcosTrack;
use kindling_tftp::TftpStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointStatus {
    endpoint: &'static str,
    status: u16,
}

/// A family with one label, `$field`.
macro_rules! one_label {
    ($name:ident, $field:ident) => {
        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        struct $name {
            $field: &'static str,
        }
    };
}
one_label!(ByEndpoint, endpoint);
one_label!(ByKind, kind);
one_label!(ByReason, reason);
one_label!(ByOutcome, outcome);
one_label!(BySource, source);
one_label!(ByListener, listener);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerReason {
    listener: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Track {
    stream: String,
    arch: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrackRelease {
    stream: String,
    arch: String,
    release: String,
}

/// Reads a cache's counters by name (`fetches`, `refused_<reason>`), at each scrape.
pub type CacheCounters = Arc<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

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
const SOURCES: [crate::event::Source; 3] = [
    crate::event::Source::Dhcp,
    crate::event::Source::Tftp,
    crate::event::Source::Http,
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
    /// Reads the cache's own counters (`kindling_menu::Cache::counters`) at each scrape.
    cache_counters: Mutex<Option<CacheCounters>>,
    config_problems: Mutex<Vec<String>>,
    /// The Fedora CoreOS tracker's status, sorted by stream and architecture.
    fcos: Mutex<Vec<FcosTrack>>,
    ready: AtomicBool,
    /// The HTTP listeners' connection counters, by listener name.
    listeners: Mutex<Vec<(&'static str, Arc<kindling_http::server::Stats>)>>,
    /// The TFTP server's own counters.
    tftp: Mutex<Option<Arc<TftpStats>>>,
    /// The proxy DHCP server's own counters.
    dhcp: Mutex<Option<kindling_dhcp::StatsHandle>>,
}

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
            cache_counters: Mutex::default(),
            config_problems: Mutex::default(),
            fcos: Mutex::default(),
            ready: AtomicBool::new(false),
            listeners: Mutex::default(),
            tftp: Mutex::default(),
            dhcp: Mutex::default(),
        }
    }

    pub fn add_listener(&self, name: &'static str, stats: Arc<kindling_http::server::Stats>) {
        if let Ok(mut l) = self.listeners.lock() {
            l.retain(|(n, _)| *n != name);
            l.push((name, stats));
        }
    }

    /// The TFTP server whose counters `/metrics` shows (`kindling_tftp_*`).
    pub fn add_tftp(&self, stats: Arc<TftpStats>) {
        if let Ok(mut t) = self.tftp.lock() {
            *t = Some(stats);
        }
    }

    /// The proxy DHCP server whose counters `/metrics` shows (`kindling_dhcp_*`).
    pub fn add_dhcp(&self, stats: kindling_dhcp::StatsHandle) {
        if let Ok(mut d) = self.dhcp.lock() {
            *d = Some(stats);
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

    pub fn subscribers_dropped(&self) -> u64 {
        ["overflow", "stalled"]
            .into_iter()
            .map(|reason| {
                self.c
                    .subscribers_dropped
                    .get_or_create(&ByReason { reason })
                    .get()
            })
            .sum()
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

    pub fn event(&self, source: crate::event::Source) {
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

    /// Where the cache's counters (`fetches` and `refused_<reason>`) are read.
    pub fn set_cache_counters(&self, c: CacheCounters) {
        if let Ok(mut g) = self.cache_counters.lock() {
            *g = Some(c);
        }
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

    pub fn set_fcos_streams(&self, mut streams: Vec<FcosTrack>) {
        streams.sort_by(|a, b| (&a.stream, &a.arch).cmp(&(&b.stream, &b.arch)));
        if let Ok(mut g) = self.fcos.lock() {
            *g = streams;
        }
    }

    pub fn fcos_streams(&self) -> Vec<FcosTrack> {
        self.fcos.lock().map(|g| g.clone()).unwrap_or_default()
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
        self.cache_families(&mut r);
        gauge(
            &mut r,
            "kindling_config_problems",
            "Problems in the configuration now in force",
            self.config_problems().len() as u64,
        );
        self.fcos_families(&mut r);
        gauge(
            &mut r,
            "kindling_machines",
            "Machines in the in-memory store",
            s.machines as u64,
        );
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
        self.tftp_families(&mut r);
        self.dhcp_families(&mut r);
        gauge(
            &mut r,
            "kindling_events_subscribers",
            "Open /api/v1/events streams",
            s.subscribers as u64,
        );
        r
    }

    /// `kindling_cache_fetches_total` and `kindling_cache_refused_total{reason}`, when a
    /// cache reports counters.
    fn cache_families(&self, r: &mut Registry) {
        let source = self.cache_counters.lock().ok().and_then(|g| g.clone());
        let cache = source.map(|read| read()).unwrap_or_default();
        if cache.is_empty() {
            return;
        }
        let refused = Family::<ByReason, Counter>::default();
        for (name, v) in &cache {
            if *name == "fetches" {
                r.register(
                    "kindling_cache_fetches",
                    "Upstream downloads the cache started",
                    ConstCounter::new(*v),
                );
            } else if let Some(reason) = name.strip_prefix("refused_") {
                refused.get_or_create(&ByReason { reason }).inc_by(*v);
            }
        }
        r.register(
            "kindling_cache_refused",
            "Cache misses refused instead of fetched, by reason (head, not_routed, client_busy, client_rate, client_table_full, file)",
            refused,
        );
    }

    /// The `kindling_fcos_*` families: one series per tracked stream and architecture.
    /// Timestamps are 0 until the first check (success), so that
    /// `time() - kindling_fcos_last_success_timestamp_seconds` alerts on a tracker that
    /// never succeeded too.
    fn fcos_families(&self, r: &mut Registry) {
        let streams = self.fcos_streams();
        let release = Family::<TrackRelease, Gauge>::default();
        let upstream = Family::<TrackRelease, Gauge>::default();
        let failures = Family::<Track, Counter>::default();
        let gauges: [Family<Track, Gauge<u64, AtomicU64>>; 3] = Default::default();
        for st in &streams {
            let track = Track {
                stream: st.stream.clone(),
                arch: st.arch.clone(),
            };
            let with = |r: &str| TrackRelease {
                stream: st.stream.clone(),
                arch: st.arch.clone(),
                release: r.to_string(),
            };
            if let Some(c) = &st.current {
                release.get_or_create(&with(c)).set(1);
            }
            if let Some(u) = &st.upstream {
                upstream.get_or_create(&with(u)).set(1);
            }
            failures.get_or_create(&track).inc_by(st.failures);
            let values = [
                st.consecutive_failures,
                st.last_check.unwrap_or(0),
                st.last_success.unwrap_or(0),
            ];
            for (g, v) in gauges.iter().zip(values) {
                g.get_or_create(&track).set(v);
            }
        }
        r.register(
            "kindling_fcos_release_info",
            "Fedora CoreOS release the profile boots, per tracked stream and architecture",
            release,
        );
        r.register("kindling_fcos_upstream_release_info", "Fedora CoreOS release seen upstream at the last successful check, per tracked stream and architecture", upstream);
        r.register(
            "kindling_fcos_check_failures",
            "Fedora CoreOS tracker checks that failed since start, per stream and architecture",
            failures,
        );
        let [consecutive, last_check, last_success] = gauges;
        r.register("kindling_fcos_consecutive_failures", "Fedora CoreOS tracker checks that failed since the last successful one (0 after a success)", consecutive);
        r.register(
            "kindling_fcos_last_check_timestamp_seconds",
            "Unix time of the last Fedora CoreOS tracker check, failed or not (0: none yet)",
            last_check,
        );
        r.register(
            "kindling_fcos_last_success_timestamp_seconds",
            "Unix time of the last successful Fedora CoreOS tracker check (0: none since start)",
            last_success,
        );
    }

    /// The proxy DHCP server's counters, when one runs.
    fn dhcp_families(&self, r: &mut Registry) {
        let Some(st) = self.dhcp.lock().ok().and_then(|d| d.clone()) else {
            return;
        };
        let st = st.snapshot();
        let labelled = |map: &std::collections::BTreeMap<String, u64>, label: &'static str| {
            let f = Family::<Vec<(&'static str, String)>, Counter>::default();
            for (k, v) in map {
                f.get_or_create(&vec![(label, k.clone())]).inc_by(*v);
            }
            f
        };
        let replies = std::collections::BTreeMap::from([
            ("offer".to_string(), st.offers),
            ("ack".to_string(), st.acks),
        ]);
        r.register(
            "kindling_dhcp_seen",
            "PXE/iPXE DHCP packets received, by firmware",
            labelled(&st.seen, "firmware"),
        );
        r.register(
            "kindling_dhcp_replies",
            "Proxy DHCP replies sent, by message type",
            labelled(&replies, "message"),
        );
        r.register(
            "kindling_dhcp_ignored",
            "DHCP packets not answered, by reason",
            labelled(&st.ignored, "reason"),
        );
        r.register(
            "kindling_dhcp_received",
            "Datagrams received on the proxy DHCP sockets (ports 67 and 4011)",
            ConstCounter::new(st.received),
        );
        r.register(
            "kindling_dhcp_send_errors",
            "Proxy DHCP replies the kernel refused to send",
            ConstCounter::new(st.send_errors),
        );
    }

    /// The TFTP server's counters, when one runs.
    fn tftp_families(&self, r: &mut Registry) {
        let Some(st) = self.tftp.lock().ok().and_then(|t| t.clone()) else {
            return;
        };
        let ended = Family::<ByOutcome, Counter>::default();
        for (outcome, v) in st.ended_by_outcome() {
            ended.get_or_create(&ByOutcome { outcome }).inc_by(v);
        }
        let refused = Family::<ByReason, Counter>::default();
        for (reason, v) in st.refused_by_reason() {
            refused.get_or_create(&ByReason { reason }).inc_by(v);
        }
        r.register(
            "kindling_tftp_transfers",
            "TFTP transfers ended, by outcome",
            ended,
        );
        r.register(
            "kindling_tftp_refused",
            "TFTP requests answered with an ERROR instead of a transfer, by reason",
            refused,
        );
        r.register(
            "kindling_tftp_bytes",
            "File bytes acknowledged by TFTP clients",
            ConstCounter::new(st.file_bytes.load(Relaxed)),
        );
    }

    /// Listener connections, by listener (`http`: the boot listener; `admin`), and the
    /// requests they answered (kindling-http's counts, summed over listeners).
    fn listener_families(&self, r: &mut Registry) {
        let listeners = self.listeners.lock().map(|l| l.clone()).unwrap_or_default();
        let requests = Family::<EndpointStatus, Counter>::default();
        let [bytes, cut]: [Family<ByEndpoint, Counter>; 2] = Default::default();
        for (_, st) in &listeners {
            let c = &st.requests;
            for (e, status, n) in c.requests() {
                let endpoint = e.label();
                requests
                    .get_or_create(&EndpointStatus { endpoint, status })
                    .inc_by(n);
            }
            for (family, counts) in [(&bytes, c.bytes()), (&cut, c.cut())] {
                for (e, n) in counts {
                    family
                        .get_or_create(&ByEndpoint {
                            endpoint: e.label(),
                        })
                        .inc_by(n);
                }
            }
        }
        r.register(
            "kindling_http_requests",
            "HTTP requests by endpoint and status",
            requests,
        );
        r.register(
            "kindling_http_response_bytes",
            "HTTP response body bytes by endpoint (bytes handed to the connection)",
            bytes,
        );
        r.register(
            "kindling_http_downloads_cut",
            "Replies of 64 KiB or more whose body stopped before its end (client gone or body failed)",
            cut,
        );
        let open = Family::<ByListener, Gauge<u64, AtomicU64>>::default();
        let each: [Family<ByListener, Counter>; 5] = Default::default();
        let refused = Family::<ListenerReason, Counter>::default();
        for (listener, st) in &listeners {
            let l = ByListener { listener };
            open.get_or_create(&l).set(st.open.load(Relaxed) as u64);
            let values = [
                st.accepted.load(Relaxed),
                st.accept_errors.load(Relaxed),
                st.write_timeouts.load(Relaxed),
                st.auth_refused.load(Relaxed),
                st.tls_failed.load(Relaxed),
            ];
            for (f, v) in each.iter().zip(values) {
                f.get_or_create(&l).inc_by(v);
            }
            for (reason, v) in [
                ("per_client", st.refused_per_client.load(Relaxed)),
                ("total", st.refused_total.load(Relaxed)),
            ] {
                refused
                    .get_or_create(&ListenerReason { listener, reason })
                    .inc_by(v);
            }
        }
        r.register(
            "kindling_http_connections",
            "Open connections, by listener (http: the boot listener; admin)",
            open,
        );
        let [
            accepted,
            accept_errors,
            write_timeouts,
            auth_refused,
            tls_failed,
        ] = each;
        r.register(
            "kindling_http_connections_accepted",
            "Connections accepted and served, by listener",
            accepted,
        );
        r.register("kindling_http_connections_refused", "Connections closed at once, by listener and reason (per_client: the client already had max_connections_per_client open; total: max_connections were open)", refused);
        r.register("kindling_http_accept_errors", "Failed accepts (e.g. out of file descriptors), by listener; the loop backs off and keeps accepting", accept_errors);
        r.register("kindling_http_write_timeouts", "Connections closed because the client stopped reading (no write progress for the write timeout), by listener", write_timeouts);
        r.register(
            "kindling_admin_auth_refused",
            "Requests answered 401 for a missing or wrong bearer token",
            auth_refused,
        );
        r.register(
            "kindling_admin_tls_failed",
            "TLS handshakes that failed (no, or an untrusted, client certificate; timeouts)",
            tls_failed,
        );
    }
}
