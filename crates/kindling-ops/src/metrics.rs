//! Counters and gauges, rendered in the Prometheus text exposition format (0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use kindling_tftp::{Outcome, Refusal};
use serde::{Deserialize, Serialize};

/// Label values of one series, in the order of the family's label names.
type Key = Vec<String>;

/// The value of a `kindling_fcos_*` series for one stream (none: no series), with its
/// `release` label if it has one.
type FcosValue<'a> = &'a dyn Fn(&FcosStream) -> Option<(Option<&str>, u64)>;

/// A release as the value of an info series.
fn fcos_release(r: &Option<String>) -> Option<(Option<&str>, u64)> {
    r.as_deref().map(|r| (Some(r), 1))
}

/// What the Fedora CoreOS tracker knows of one stream and architecture, as the caller
/// copies it in ([`Ops::set_fcos_streams`]): shown by `/api/v1/status` (`fcos`), `/metrics`
/// (`kindling_fcos_*`) and the dashboard. A plain copy, so that this crate needs nothing
/// of the tracker's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FcosStream {
    pub stream: String,
    /// Architecture of the tracked artifacts (`x86_64`, `aarch64`).
    pub arch: String,
    /// Release the profile boots.
    pub current: Option<String>,
    /// Release seen upstream at the last successful check.
    pub upstream: Option<String>,
    /// Error of the last check (`None` after a successful one).
    pub last_error: Option<String>,
    /// Unix time (seconds) of the last check, failed or not.
    pub last_check: Option<u64>,
    /// Unix time (seconds) of the last successful check.
    pub last_success: Option<u64>,
    /// Checks that failed since start.
    pub failures: u64,
    /// Checks that failed since the last successful one (0 after a success).
    pub consecutive_failures: u64,
}

impl FcosStream {
    /// Whether the last check failed.
    pub fn failing(&self) -> bool {
        self.last_error.is_some()
    }
}

/// All metrics. Cheap to update from any thread.
pub struct Metrics {
    http_requests: Mutex<BTreeMap<Key, u64>>,
    http_cut: Mutex<BTreeMap<Key, u64>>,
    http_bytes: Mutex<BTreeMap<Key, u64>>,
    asset_bytes: Mutex<BTreeMap<Key, u64>>,
    dhcp_seen: LabelCounters,
    dhcp_replies: LabelCounters,
    dhcp_ignored: LabelCounters,
    tftp_transfers: Mutex<BTreeMap<Key, u64>>,
    tftp_refused: Mutex<BTreeMap<Key, u64>>,
    tftp_bytes: AtomicU64,
    events: Mutex<BTreeMap<Key, u64>>,
    /// The journal's dropped events and writability, shared with its writer.
    pub(crate) journal: Arc<crate::journal::JournalHealth>,
    pub(crate) events_dropped: AtomicU64,
    pub(crate) journal_torn: AtomicU64,
    pub(crate) journal_bad: AtomicU64,
    reloads: AtomicU64,
    reload_errors: AtomicU64,
    cache_bytes: AtomicU64,
    cache_bytes_set: AtomicBool,
    /// The cache's own counters (`kindling_menu::Cache::counters`), by name.
    cache_counters: Mutex<Vec<(&'static str, u64)>>,
    config_problems: Mutex<Vec<String>>,
    /// The Fedora CoreOS tracker's status, sorted by stream and architecture.
    fcos: Mutex<Vec<FcosStream>>,
    ready: AtomicBool,
    /// Connection counters of the HTTP listeners, by listener name.
    listeners: Mutex<Vec<(&'static str, Arc<kindling_http::server::Stats>)>>,
    subscribers_refused: AtomicU64,
    subscribers_dropped_overflow: AtomicU64,
    subscribers_dropped_stalled: AtomicU64,
    /// Requests by MAC refused because the MAC is not bound to the caller's address.
    binding_refused: AtomicU64,
}

fn bump(m: &Mutex<BTreeMap<Key, u64>>, key: &[&str], by: u64) {
    if let Ok(mut g) = m.lock() {
        // Series are few (tens): a scan finds an existing one without allocating.
        let found = g
            .iter_mut()
            .find(|(k, _)| k.len() == key.len() && k.iter().zip(key).all(|(a, b)| a == b));
        match found {
            Some((_, v)) => *v += by,
            None => {
                g.insert(key.iter().map(|s| s.to_string()).collect(), by);
            }
        }
    }
}

/// An HTTP status as text without allocating (three digits for every real status).
fn status_text(status: u16, buf: &mut [u8; 5]) -> &str {
    let mut n = status;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// Firmware labels of `kindling_dhcp_seen_total`.
const FIRMWARE_LABELS: [&str; 5] = ["bios_pxe", "uefi_pxe", "uefi_http", "ipxe", "unknown"];

/// Counters for one label whose values are (almost always) known in advance: lock-free
/// for those (the DHCP path counts every packet), a map for any other value.
struct LabelCounters {
    labels: Vec<&'static str>,
    counts: Vec<AtomicU64>,
    other: Mutex<BTreeMap<Key, u64>>,
    /// Show known labels at zero (so that rates work from the start).
    zeros: bool,
}

impl LabelCounters {
    fn new(labels: &[&'static str], zeros: bool) -> LabelCounters {
        LabelCounters {
            labels: labels.to_vec(),
            counts: labels.iter().map(|_| AtomicU64::new(0)).collect(),
            other: Mutex::default(),
            zeros,
        }
    }

    fn add(&self, label: &str, by: u64) {
        match self.labels.iter().position(|l| *l == label) {
            Some(i) => {
                if let Some(c) = self.counts.get(i) {
                    c.fetch_add(by, Relaxed);
                }
            }
            None => bump(&self.other, &[label], by),
        }
    }

    fn snapshot(&self) -> BTreeMap<Key, u64> {
        let mut m = self.other.lock().map(|g| g.clone()).unwrap_or_default();
        for (l, c) in self.labels.iter().zip(&self.counts) {
            let v = c.load(Relaxed);
            if v > 0 || self.zeros {
                m.insert(vec![l.to_string()], v);
            }
        }
        m
    }
}

/// The DHCP ignore reasons, pre-declared at zero so that rates work from the start.
fn ignore_labels() -> impl Iterator<Item = &'static str> {
    kindling_dhcp::IgnoreReason::ALL.iter().map(|r| r.label())
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let zeros = |keys: Vec<Key>| Mutex::new(keys.into_iter().map(|k| (k, 0)).collect());
        Metrics {
            http_requests: Mutex::default(),
            http_cut: Mutex::default(),
            http_bytes: Mutex::default(),
            asset_bytes: zeros(
                ["kernel", "initrd", "rootfs", "other"]
                    .iter()
                    .map(|s| vec![s.to_string()])
                    .collect(),
            ),
            dhcp_seen: LabelCounters::new(&FIRMWARE_LABELS, false),
            dhcp_replies: LabelCounters::new(&["offer", "ack"], true),
            dhcp_ignored: LabelCounters::new(&ignore_labels().collect::<Vec<_>>(), true),
            tftp_transfers: zeros(
                Outcome::LABELS
                    .iter()
                    .map(|l| vec![l.to_string()])
                    .collect(),
            ),
            tftp_refused: zeros(
                Refusal::ALL
                    .iter()
                    .map(|r| vec![r.label().to_string()])
                    .collect(),
            ),
            tftp_bytes: AtomicU64::new(0),
            events: Mutex::default(),
            journal: Arc::default(),
            events_dropped: AtomicU64::new(0),
            journal_torn: AtomicU64::new(0),
            journal_bad: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reload_errors: AtomicU64::new(0),
            cache_bytes: AtomicU64::new(0),
            cache_bytes_set: AtomicBool::new(false),
            cache_counters: Mutex::default(),
            config_problems: Mutex::default(),
            fcos: Mutex::default(),
            ready: AtomicBool::new(false),
            listeners: Mutex::default(),
            subscribers_refused: AtomicU64::new(0),
            subscribers_dropped_overflow: AtomicU64::new(0),
            subscribers_dropped_stalled: AtomicU64::new(0),
            binding_refused: AtomicU64::new(0),
        }
    }

    pub fn add_listener(&self, name: &'static str, stats: Arc<kindling_http::server::Stats>) {
        if let Ok(mut l) = self.listeners.lock() {
            l.retain(|(n, _)| *n != name);
            l.push((name, stats));
        }
    }

    pub fn subscriber_refused(&self) {
        self.subscribers_refused.fetch_add(1, Relaxed);
    }

    /// A subscriber dropped: `overflow` (its queue filled) or `stalled` (it took nothing
    /// for the stall timeout).
    pub fn subscriber_dropped(&self, overflow: bool) {
        if overflow {
            &self.subscribers_dropped_overflow
        } else {
            &self.subscribers_dropped_stalled
        }
        .fetch_add(1, Relaxed);
    }

    pub fn subscribers_dropped(&self) -> u64 {
        self.subscribers_dropped_overflow.load(Relaxed)
            + self.subscribers_dropped_stalled.load(Relaxed)
    }

    pub fn binding_refused(&self) {
        self.binding_refused.fetch_add(1, Relaxed);
    }

    /// Listener connections, event-stream subscribers and binding refusals.
    pub fn render_connections(&self, o: &mut String, subscribers: usize) {
        let listeners = self.listeners.lock().map(|l| l.clone()).unwrap_or_default();
        let each = |o: &mut String,
                    name: &str,
                    kind: &str,
                    help: &str,
                    f: &dyn Fn(&kindling_http::server::Stats) -> u64| {
            header(o, name, kind, help);
            for (l, st) in &listeners {
                let _ = writeln!(o, "{name}{{listener=\"{l}\"}} {}", f(st));
            }
        };
        each(
            o,
            "kindling_http_connections",
            "gauge",
            "Open connections, by listener (http: the boot listener; admin).",
            &|s| s.open.load(Relaxed) as u64,
        );
        each(
            o,
            "kindling_http_connections_accepted_total",
            "counter",
            "Connections accepted and served, by listener.",
            &|s| s.accepted.load(Relaxed),
        );
        header(
            o,
            "kindling_http_connections_refused_total",
            "counter",
            "Connections closed at once, by listener and reason (per_client: the client already had max_connections_per_client open; total: max_connections were open).",
        );
        for (l, st) in &listeners {
            let _ = writeln!(
                o,
                "kindling_http_connections_refused_total{{listener=\"{l}\",reason=\"per_client\"}} {}",
                st.refused_per_client.load(Relaxed)
            );
            let _ = writeln!(
                o,
                "kindling_http_connections_refused_total{{listener=\"{l}\",reason=\"total\"}} {}",
                st.refused_total.load(Relaxed)
            );
        }
        each(
            o,
            "kindling_http_accept_errors_total",
            "counter",
            "Failed accepts (e.g. out of file descriptors), by listener; the loop backs off and keeps accepting.",
            &|s| s.accept_errors.load(Relaxed),
        );
        each(
            o,
            "kindling_http_write_timeouts_total",
            "counter",
            "Connections closed because the client stopped reading (no write progress for the write timeout), by listener.",
            &|s| s.write_timeouts.load(Relaxed),
        );
        each(
            o,
            "kindling_admin_auth_refused_total",
            "counter",
            "Requests answered 401 for a missing or wrong bearer token.",
            &|s| s.auth_refused.load(Relaxed),
        );
        each(
            o,
            "kindling_admin_tls_failed_total",
            "counter",
            "TLS handshakes that failed (no, or an untrusted, client certificate; timeouts).",
            &|s| s.tls_failed.load(Relaxed),
        );
        gauge(
            o,
            "kindling_events_subscribers",
            "Open /api/v1/events streams.",
            subscribers as u64,
        );
        counter(
            o,
            "kindling_events_subscribers_refused_total",
            "Event-stream requests answered 503: max_subscribers were open.",
            self.subscribers_refused.load(Relaxed),
        );
        header(
            o,
            "kindling_events_subscribers_dropped_total",
            "counter",
            "Event-stream subscribers dropped, by reason (overflow: their queue filled; stalled: they took nothing for subscriber_stall_secs).",
        );
        let _ = writeln!(
            o,
            "kindling_events_subscribers_dropped_total{{reason=\"overflow\"}} {}",
            self.subscribers_dropped_overflow.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "kindling_events_subscribers_dropped_total{{reason=\"stalled\"}} {}",
            self.subscribers_dropped_stalled.load(Relaxed)
        );
        counter(
            o,
            "kindling_http_binding_refused_total",
            "Requests by MAC (/ignition, /generic, /cloud, /metadata) refused: the MAC is not bound to the caller's address (http.ignition_binding).",
            self.binding_refused.load(Relaxed),
        );
    }

    pub fn http_request(&self, endpoint: &str, status: u16, bytes: u64) {
        let mut buf = [0u8; 5];
        bump(
            &self.http_requests,
            &[endpoint, status_text(status, &mut buf)],
            1,
        );
        bump(&self.http_bytes, &[endpoint], bytes);
    }

    /// A body that stopped before its end (the client went away, or the body failed).
    pub fn http_cut(&self, endpoint: &str) {
        bump(&self.http_cut, &[endpoint], 1);
    }

    pub fn asset_bytes(&self, kind: &str, bytes: u64) {
        bump(&self.asset_bytes, &[kind], bytes);
    }

    pub fn dhcp_seen(&self, firmware: &str) {
        self.dhcp_seen.add(firmware, 1);
    }

    pub fn dhcp_reply(&self, message: &str) {
        self.dhcp_replies.add(message, 1);
    }

    pub fn dhcp_ignored(&self, reason: &str) {
        self.dhcp_ignored.add(reason, 1);
    }

    pub fn tftp_transfer(&self, outcome: &str, bytes: u64) {
        bump(&self.tftp_transfers, &[outcome], 1);
        self.tftp_bytes.fetch_add(bytes, Relaxed);
    }

    pub fn tftp_refused(&self, kind: &str) {
        bump(&self.tftp_refused, &[kind], 1);
    }

    pub fn event(&self, source: &str) {
        bump(&self.events, &[source], 1);
    }

    pub fn reload(&self, problems: usize) {
        self.reloads.fetch_add(1, Relaxed);
        if problems > 0 {
            self.reload_errors.fetch_add(1, Relaxed);
        }
    }

    pub fn set_cache_bytes(&self, b: u64) {
        self.cache_bytes.store(b, Relaxed);
        self.cache_bytes_set.store(true, Relaxed);
    }

    /// The cache's counters: `fetches` and `refused_<reason>`.
    pub fn set_cache_counters(&self, c: Vec<(&'static str, u64)>) {
        if let Ok(mut g) = self.cache_counters.lock() {
            *g = c;
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

    pub fn set_fcos_streams(&self, mut streams: Vec<FcosStream>) {
        streams.sort_by(|a, b| (&a.stream, &a.arch).cmp(&(&b.stream, &b.arch)));
        if let Ok(mut g) = self.fcos.lock() {
            *g = streams;
        }
    }

    pub fn fcos_streams(&self) -> Vec<FcosStream> {
        self.fcos.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// The `kindling_fcos_*` families: one series per tracked stream and architecture.
    /// Timestamps are 0 until the first check (success), so that
    /// `time() - kindling_fcos_last_success_timestamp_seconds` alerts on a tracker that
    /// never succeeded too.
    fn render_fcos(&self, o: &mut String) {
        let streams = self.fcos_streams();
        let families: [(&str, &str, &str, FcosValue); 6] = [
            (
                "kindling_fcos_release_info",
                "gauge",
                "Fedora CoreOS release the profile boots, per tracked stream and architecture.",
                &|st| fcos_release(&st.current),
            ),
            (
                "kindling_fcos_upstream_release_info",
                "gauge",
                "Fedora CoreOS release seen upstream at the last successful check, per tracked stream and architecture.",
                &|st| fcos_release(&st.upstream),
            ),
            (
                "kindling_fcos_check_failures_total",
                "counter",
                "Fedora CoreOS tracker checks that failed since start, per stream and architecture.",
                &|st| Some((None, st.failures)),
            ),
            (
                "kindling_fcos_consecutive_failures",
                "gauge",
                "Fedora CoreOS tracker checks that failed since the last successful one (0 after a success).",
                &|st| Some((None, st.consecutive_failures)),
            ),
            (
                "kindling_fcos_last_check_timestamp_seconds",
                "gauge",
                "Unix time of the last Fedora CoreOS tracker check, failed or not (0: none yet).",
                &|st| Some((None, st.last_check.unwrap_or(0))),
            ),
            (
                "kindling_fcos_last_success_timestamp_seconds",
                "gauge",
                "Unix time of the last successful Fedora CoreOS tracker check (0: none since start).",
                &|st| Some((None, st.last_success.unwrap_or(0))),
            ),
        ];
        for (name, kind, help, f) in families {
            header(o, name, kind, help);
            for st in &streams {
                let Some((release, v)) = f(st) else { continue };
                let _ = write!(
                    o,
                    "{name}{{stream=\"{}\",arch=\"{}\"",
                    escape(&st.stream),
                    escape(&st.arch)
                );
                if let Some(r) = release {
                    let _ = write!(o, ",release=\"{}\"", escape(r));
                }
                let _ = writeln!(o, "}} {v}");
            }
        }
    }

    pub fn asset_bytes_by_kind(&self) -> BTreeMap<String, u64> {
        self.asset_bytes
            .lock()
            .map(|g| g.iter().map(|(k, v)| (k.join(","), *v)).collect())
            .unwrap_or_default()
    }

    pub fn set_ready(&self, r: bool) {
        self.ready.store(r, Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Relaxed)
    }

    /// The whole exposition. `machines` and `pending` are gauges from the store.
    pub fn render(
        &self,
        machines: usize,
        pending: usize,
        unattributed: u64,
        dhcp_repeats: u64,
    ) -> String {
        let mut o = String::with_capacity(8192);
        header(&mut o, "kindling_build_info", "gauge", "Kindling version.");
        let _ = writeln!(
            o,
            "kindling_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        gauge(
            &mut o,
            "kindling_ready",
            "1 once every listener is up.",
            u64::from(self.is_ready()),
        );
        family(
            &mut o,
            "kindling_http_requests_total",
            "counter",
            "HTTP requests by endpoint and status.",
            &["endpoint", "status"],
            &self.http_requests,
        );
        family(
            &mut o,
            "kindling_http_response_bytes_total",
            "counter",
            "HTTP response body bytes by endpoint (bytes handed to the connection).",
            &["endpoint"],
            &self.http_bytes,
        );
        family(
            &mut o,
            "kindling_http_downloads_cut_total",
            "counter",
            "Replies of 64 KiB or more whose body stopped before its end (client gone or body failed).",
            &["endpoint"],
            &self.http_cut,
        );
        family(
            &mut o,
            "kindling_asset_bytes_served_total",
            "counter",
            "Bytes served under /assets/ with 2xx, by boot artifact.",
            &["kind"],
            &self.asset_bytes,
        );
        family_map(
            &mut o,
            "kindling_dhcp_seen_total",
            "counter",
            "PXE/iPXE DHCP packets received, by firmware.",
            &["firmware"],
            &self.dhcp_seen.snapshot(),
        );
        family_map(
            &mut o,
            "kindling_dhcp_replies_total",
            "counter",
            "Proxy DHCP replies sent, by message type.",
            &["message"],
            &self.dhcp_replies.snapshot(),
        );
        family_map(
            &mut o,
            "kindling_dhcp_ignored_total",
            "counter",
            "DHCP packets not answered, by reason.",
            &["reason"],
            &self.dhcp_ignored.snapshot(),
        );
        family(
            &mut o,
            "kindling_tftp_transfers_total",
            "counter",
            "TFTP transfers ended, by outcome.",
            &["outcome"],
            &self.tftp_transfers,
        );
        family(
            &mut o,
            "kindling_tftp_refused_total",
            "counter",
            "TFTP requests answered with an ERROR instead of a transfer, by reason.",
            &["reason"],
            &self.tftp_refused,
        );
        header(
            &mut o,
            "kindling_tftp_bytes_total",
            "counter",
            "File bytes acknowledged by TFTP clients.",
        );
        let _ = writeln!(
            o,
            "kindling_tftp_bytes_total {}",
            self.tftp_bytes.load(Relaxed)
        );
        if let Some(c) = self.cache_bytes() {
            gauge(
                &mut o,
                "kindling_cache_bytes",
                "Bytes held in the asset cache.",
                c,
            );
        }
        let cache = self
            .cache_counters
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default();
        if !cache.is_empty() {
            for (name, v) in &cache {
                if *name == "fetches" {
                    counter(
                        &mut o,
                        "kindling_cache_fetches_total",
                        "Upstream downloads the cache started.",
                        *v,
                    );
                }
            }
            header(
                &mut o,
                "kindling_cache_refused_total",
                "counter",
                "Cache misses refused instead of fetched, by reason (head, not_routed, client_busy, client_rate, client_table_full, file).",
            );
            for (name, v) in &cache {
                if let Some(reason) = name.strip_prefix("refused_") {
                    let _ = writeln!(o, "kindling_cache_refused_total{{reason=\"{reason}\"}} {v}");
                }
            }
        }
        header(
            &mut o,
            "kindling_reloads_total",
            "counter",
            "Data directory loads.",
        );
        let _ = writeln!(o, "kindling_reloads_total {}", self.reloads.load(Relaxed));
        header(
            &mut o,
            "kindling_reload_errors_total",
            "counter",
            "Loads that reported problems.",
        );
        let _ = writeln!(
            o,
            "kindling_reload_errors_total {}",
            self.reload_errors.load(Relaxed)
        );
        gauge(
            &mut o,
            "kindling_config_problems",
            "Problems in the configuration now in force.",
            self.config_problems().len() as u64,
        );
        self.render_fcos(&mut o);
        gauge(
            &mut o,
            "kindling_machines",
            "Machines in the in-memory store.",
            machines as u64,
        );
        gauge(
            &mut o,
            "kindling_events_pending",
            "Events waiting for their IP to be tied to a MAC.",
            pending as u64,
        );
        family(
            &mut o,
            "kindling_events_total",
            "counter",
            "Events recorded in machine timelines, by source.",
            &["source"],
            &self.events,
        );
        header(
            &mut o,
            "kindling_events_unattributed_total",
            "counter",
            "Events dropped because no MAC could be found for their IP.",
        );
        let _ = writeln!(o, "kindling_events_unattributed_total {unattributed}");
        header(
            &mut o,
            "kindling_dhcp_repeats_total",
            "counter",
            "DHCP retries counted on the timeline event they repeat instead of stored again.",
        );
        let _ = writeln!(o, "kindling_dhcp_repeats_total {dhcp_repeats}");
        header(
            &mut o,
            "kindling_events_dropped_total",
            "counter",
            "Events not recorded because the ops queue was full (a storm faster than the store).",
        );
        let _ = writeln!(
            o,
            "kindling_events_dropped_total {}",
            self.events_dropped.load(Relaxed)
        );
        counter(
            &mut o,
            "kindling_journal_dropped_total",
            "Events not journaled (kept in memory only): the writer's queue was full, or the journal could not be written (full disk, unwritable state directory).",
            self.journal.dropped(),
        );
        if self.journal.enabled() {
            gauge(
                &mut o,
                "kindling_journal_writable",
                "1 while the journal can be written; 0 while boot timelines are kept in memory only (writing is retried).",
                u64::from(self.journal.writable()),
            );
        }
        gauge(
            &mut o,
            "kindling_journal_torn_lines",
            "Damaged journal lines skipped at start-up.",
            self.journal_torn.load(Relaxed) + self.journal_bad.load(Relaxed),
        );
        o
    }
}

fn header(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} {kind}");
}

fn counter(o: &mut String, name: &str, help: &str, v: u64) {
    header(o, name, "counter", help);
    let _ = writeln!(o, "{name} {v}");
}

fn gauge(o: &mut String, name: &str, help: &str, v: u64) {
    header(o, name, "gauge", help);
    let _ = writeln!(o, "{name} {v}");
}

fn family(
    o: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    labels: &[&str],
    m: &Mutex<BTreeMap<Key, u64>>,
) {
    match m.lock() {
        Ok(g) => family_map(o, name, kind, help, labels, &g),
        Err(_) => header(o, name, kind, help),
    }
}

fn family_map(
    o: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    labels: &[&str],
    m: &BTreeMap<Key, u64>,
) {
    header(o, name, kind, help);
    for (k, v) in m {
        let ls: Vec<String> = labels
            .iter()
            .zip(k.iter())
            .map(|(n, val)| format!("{n}=\"{}\"", escape(val)))
            .collect();
        let _ = writeln!(o, "{name}{{{}}} {v}", ls.join(","));
    }
}

/// Label value escaping: backslash, double quote, newline.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_without_allocation() {
        let mut b = [0u8; 5];
        assert_eq!(status_text(200, &mut b), "200");
        assert_eq!(status_text(0, &mut b), "0");
        assert_eq!(status_text(65535, &mut b), "65535");
    }

    #[test]
    fn bump_finds_and_creates_series() {
        let m = Mutex::new(BTreeMap::new());
        bump(&m, &["ipxe", "200"], 1);
        bump(&m, &["ipxe", "200"], 2);
        bump(&m, &["ipxe", "404"], 1);
        let g = m.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(
            g.get(&vec!["ipxe".to_string(), "200".to_string()]),
            Some(&3)
        );
        assert_eq!(
            g.get(&vec!["ipxe".to_string(), "404".to_string()]),
            Some(&1)
        );
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn fcos_label_values_are_escaped() {
        let m = Metrics::new();
        m.set_fcos_streams(vec![FcosStream {
            stream: "a\"b\\c\nd".into(),
            arch: "x86_64".into(),
            upstream: Some("4\"2".into()),
            consecutive_failures: 1,
            ..Default::default()
        }]);
        let text = m.render(0, 0, 0, 0);
        assert!(
            text.contains(
                "kindling_fcos_consecutive_failures{stream=\"a\\\"b\\\\c\\nd\",arch=\"x86_64\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("kindling_fcos_upstream_release_info{stream=\"a\\\"b\\\\c\\nd\",arch=\"x86_64\",release=\"4\\\"2\"} 1\n"),
            "{text}"
        );
    }
}
