//! The hub: observers in, store + journal + metrics + live stream out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kindling_dhcp::{
    AnsweredEvent, DhcpObserver, IgnoreReason, IgnoredEvent, ListenPort, SeenEvent,
};
use kindling_http::{RequestObserver, RequestRecord};
use kindling_model::{Mac, Snapshot};
use kindling_tftp::{Outcome, TftpObserver};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::classify::{ProfileMap, ProfilePaths, http_stage, is_boot_endpoint};
use crate::event::{Event, Kind, Stage, now_ms};
use crate::journal::{FsyncPolicy, JournalConfig, JournalWriter, read_journal};
use crate::metrics::Metrics;
use crate::store::{Limits, MachineDetail, MachineSummary, Store};

/// The `[ops]` table of `kindling.toml`. Every key has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// Where the journal lives; `None` lets the caller choose (see [`Ops::open`]).
    pub state_dir: Option<PathBuf>,
    /// Keep an on-disk journal (else history is lost on restart).
    pub journal: bool,
    /// Rotate the journal file at this size.
    pub journal_max_bytes: u64,
    /// Journal files kept, the active one included.
    pub journal_files: usize,
    /// `always`, `interval` (default) or `never`.
    pub fsync: FsyncPolicy,
    pub fsync_interval_ms: u64,
    pub max_machines: usize,
    /// Boots kept per machine.
    pub max_boots: usize,
    /// Events kept per boot.
    pub max_events_per_boot: usize,
    /// Silence longer than this starts a new boot.
    pub boot_gap_secs: u64,
    /// Tie unknown client IPs to MACs through the kernel's neighbour table
    /// (`/proc/net/arp`), e.g. TFTP clients that never sent an IP in DHCP.
    pub neighbour_lookup: bool,
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
            boot_gap_secs: l.boot_gap_ms / 1000,
            neighbour_lookup: true,
        }
    }
}

impl OpsConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            max_machines: self.max_machines.max(1),
            max_boots: self.max_boots.max(1),
            max_events: self.max_events_per_boot.max(1),
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

/// Errors opening the operator view.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("reading the journal in {dir}: {source}")]
    ReadJournal {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the journal in {dir}: {source}")]
    OpenJournal {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One line of the dashboard's "assets and cache" box, fed by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetStatus {
    pub name: String,
    pub detail: String,
    /// false shows the line as a problem.
    pub ok: bool,
}

/// Looks up an IPv4 address in the neighbour table; returns a normalised MAC.
pub type NeighbourLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The operator view. Create one with [`Ops::open`] (journal) or [`Ops::in_memory`], hand
/// clones of the `Arc` to the DHCP server, TFTP server and HTTP service as their observer,
/// and register [`Ops::extensions`] with the HTTP service.
pub struct Ops {
    pub(crate) store: Mutex<Store>,
    pub(crate) metrics: Metrics,
    journal: Mutex<Option<JournalWriter>>,
    pub(crate) tx: broadcast::Sender<Arc<str>>,
    pub(crate) closed: watch::Sender<bool>,
    neighbours: Option<NeighbourLookup>,
    neighbour_cache: Mutex<HashMap<String, (Option<String>, Instant)>>,
    asset_status: Mutex<Vec<AssetStatus>>,
    state_dir: Option<PathBuf>,
}

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
    pub fn open(cfg: &OpsConfig, state_dir: Option<&Path>) -> Result<Arc<Ops>, OpsError> {
        let ops = Self::build(cfg, state_dir.filter(|_| cfg.journal));
        if let Some(dir) = state_dir.filter(|_| cfg.journal) {
            let rb = read_journal(dir, cfg.journal_files.max(1)).map_err(|source| {
                OpsError::ReadJournal {
                    dir: dir.to_path_buf(),
                    source,
                }
            })?;
            ops.metrics
                .journal_torn
                .store(rb.torn_lines, std::sync::atomic::Ordering::Relaxed);
            ops.metrics
                .journal_bad
                .store(rb.bad_lines, std::sync::atomic::Ordering::Relaxed);
            if let Ok(mut s) = ops.store.lock() {
                for ev in rb.events.iter().cloned() {
                    s.replay(ev);
                }
                tracing::info!(
                    target: "kindling::ops",
                    dir = %dir.display(),
                    events = rb.events.len(),
                    machines = s.machine_count(),
                    torn_lines = rb.torn_lines,
                    "boot journal read back"
                );
            }
            let w = JournalWriter::start(cfg.journal_config(dir)).map_err(|source| {
                OpsError::OpenJournal {
                    dir: dir.to_path_buf(),
                    source,
                }
            })?;
            if let Ok(mut j) = ops.journal.lock() {
                *j = Some(w);
            }
        }
        Ok(ops)
    }

    /// No journal: history lasts as long as the process.
    pub fn in_memory(cfg: &OpsConfig) -> Arc<Ops> {
        Self::build(cfg, None)
    }

    fn build(cfg: &OpsConfig, state_dir: Option<&Path>) -> Arc<Ops> {
        let (tx, _) = broadcast::channel(1024);
        let (closed, _) = watch::channel(false);
        Arc::new(Ops {
            store: Mutex::new(Store::new(cfg.limits())),
            metrics: Metrics::new(),
            journal: Mutex::new(None),
            tx,
            closed,
            neighbours: cfg
                .neighbour_lookup
                .then(|| Arc::new(proc_net_arp) as NeighbourLookup),
            neighbour_cache: Mutex::default(),
            asset_status: Mutex::default(),
            state_dir: state_dir.map(Path::to_path_buf),
        })
    }

    /// The journal directory, if journaling.
    pub fn state_dir(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }

    /// `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.metrics.set_ready(true);
    }

    /// Replaces the list of configuration problems shown on `/ui/` and counted in
    /// `kindling_config_problems`.
    pub fn set_config_problems(&self, problems: Vec<String>) {
        self.metrics.set_config_problems(problems);
    }

    /// `kindling_fcos_release_info{stream,release} 1`.
    pub fn set_fcos_release(&self, stream: &str, release: &str) {
        self.metrics.set_fcos_release(stream, release);
    }

    /// `kindling_cache_bytes`.
    pub fn set_cache_bytes(&self, bytes: u64) {
        self.metrics.set_cache_bytes(bytes);
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
        self.set_config_problems(problems);
    }

    /// Ends the live streams and flushes the journal. Call on shutdown.
    pub fn shutdown(&self) {
        let _ = self.closed.send(true);
        if let Ok(mut j) = self.journal.lock()
            && let Some(mut w) = j.take()
        {
            w.close();
        }
    }

    /// Waits until every event recorded so far is on disk.
    pub fn flush(&self) {
        if let Ok(j) = self.journal.lock()
            && let Some(w) = j.as_ref()
        {
            w.flush();
        }
    }

    /// The Prometheus exposition.
    pub fn metrics_text(&self) -> String {
        let (m, p, u) = self
            .store
            .lock()
            .map(|s| (s.machine_count(), s.pending_events(), s.unattributed))
            .unwrap_or_default();
        self.metrics.render(m, p, u)
    }

    pub fn is_ready(&self) -> bool {
        self.metrics.is_ready()
    }

    pub fn config_problems(&self) -> Vec<String> {
        self.metrics.config_problems()
    }

    pub fn fcos_releases(&self) -> std::collections::BTreeMap<String, String> {
        self.metrics.fcos_releases()
    }

    pub fn cache_bytes(&self) -> Option<u64> {
        self.metrics.cache_bytes()
    }

    pub fn asset_bytes_by_kind(&self) -> std::collections::BTreeMap<String, u64> {
        self.metrics.asset_bytes_by_kind()
    }

    /// Every machine, most recently seen first.
    pub fn machines(&self) -> Vec<MachineSummary> {
        self.store.lock().map(|s| s.summaries()).unwrap_or_default()
    }

    /// One machine's summary and timeline (`mac` in any form `Mac::parse` accepts).
    pub fn machine(&self, mac: &str) -> Option<MachineDetail> {
        let mac = Mac::parse(mac).ok()?.to_string();
        self.store.lock().ok()?.machine(&mac).map(|m| m.detail())
    }

    /// Subscribes to live updates (JSON of [`Update`]).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }

    /// Live subscribers (open `/api/v1/events` streams).
    pub fn subscriber_count(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Records one event (already attributed or not).
    pub fn record(&self, mut ev: Event) {
        if ev.mac.is_none()
            && let Some(ip) = ev.ip.clone()
        {
            let known = self
                .store
                .lock()
                .map(|s| s.mac_for_ip(&ip).is_some())
                .unwrap_or(false);
            if !known {
                ev.mac = self.neighbour(&ip);
            }
        }
        let mut updates = Vec::new();
        let (ip_hint, mac_hint) = (ev.ip.clone(), ev.mac.clone());
        let attributed = match self.store.lock() {
            Ok(mut s) => {
                let evs = s.ingest(ev);
                for e in &evs {
                    if let Some(m) = e.mac.as_deref().and_then(|m| s.machine(m)) {
                        updates.push(Update {
                            event: e.clone(),
                            machine: m.summary(),
                        });
                    }
                }
                if evs.is_empty() {
                    // A repeat, counted on the machine's last event: not journaled,
                    // but the dashboard still hears about it.
                    let mac = mac_hint.or_else(|| {
                        ip_hint
                            .as_deref()
                            .and_then(|ip| s.mac_for_ip(ip))
                            .map(str::to_string)
                    });
                    if let Some(m) = mac.as_deref().and_then(|m| s.machine(m))
                        && let Some(last) = m.boots.back().and_then(|b| b.events.back())
                    {
                        updates.push(Update {
                            event: (**last).clone(),
                            machine: m.summary(),
                        });
                    }
                }
                evs
            }
            Err(_) => return,
        };
        for e in &attributed {
            self.metrics.event(e.source().label());
        }
        if let Ok(j) = self.journal.lock()
            && let Some(w) = j.as_ref()
        {
            for e in &attributed {
                if !w.append(e) {
                    self.metrics
                        .journal_dropped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        if self.tx.receiver_count() > 0 {
            for u in updates {
                if let Ok(s) = serde_json::to_string(&u) {
                    let _ = self.tx.send(Arc::from(s));
                }
            }
        }
    }

    fn neighbour(&self, ip: &str) -> Option<String> {
        let f = self.neighbours.as_ref()?;
        if let Ok(c) = self.neighbour_cache.lock()
            && let Some((m, at)) = c.get(ip)
            && at.elapsed() < Duration::from_secs(5)
        {
            return m.clone();
        }
        let m = f(ip);
        if let Ok(mut c) = self.neighbour_cache.lock() {
            if c.len() > 1024 {
                c.clear();
            }
            c.insert(ip.to_string(), (m.clone(), Instant::now()));
        }
        m
    }
}

/// The kernel's IPv4 neighbour table.
fn proc_net_arp(ip: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/net/arp").ok()?;
    parse_arp(&text, ip)
}

/// Finds `ip` in the text of `/proc/net/arp` (complete entries only).
pub fn parse_arp(text: &str, ip: &str) -> Option<String> {
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (addr, flags, hw) = (f.first()?, f.get(2)?, f.get(3)?);
        if *addr != ip || *flags == "0x0" || *hw == "00:00:00:00:00:00" {
            return None;
        }
        Mac::parse(hw).ok().map(|m| m.to_string())
    })
}

fn ip_of(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Reasons that are the ordinary flow of a PXE boot, not a failure (a PXE client's
/// REQUEST on 67 is for the site's DHCP server).
fn ordinary_ignore(r: IgnoreReason) -> bool {
    matches!(
        r,
        IgnoreReason::NotPxe
            | IgnoreReason::RequestOnDhcpPort
            | IgnoreReason::NotDiscoverOrRequest
            | IgnoreReason::NotBootRequest
            | IgnoreReason::Malformed
            | IgnoreReason::UnsupportedHardware
    )
}

fn client_event(kind: Kind, c: &kindling_dhcp::ClientInfo, iface: &str, what: String) -> Event {
    let mut ev = Event::new(now_ms(), kind, what);
    ev.mac = c.mac.map(|m| Mac::from_bytes(&m).to_string());
    ev.stage = Some(Stage::Dhcp);
    ev.iface = Some(iface.to_string());
    ev.arch = c.arch.map(kindling_dhcp::policy::describe_arch);
    ev.firmware = c.firmware.map(|f| f.label().to_string());
    ev.message = c.message_type.map(|m| m.label().to_string());
    ev.vendor_class = c.vendor_class.clone();
    if !c.user_classes.is_empty() {
        ev.user_class = Some(c.user_classes.join(","));
    }
    if !c.ciaddr.is_unspecified() {
        ev.ip = Some(c.ciaddr.to_string());
    }
    ev
}

impl DhcpObserver for Ops {
    fn seen(&self, e: &SeenEvent<'_>) {
        let c = e.client;
        self.metrics
            .dhcp_seen(c.firmware.map(|f| f.label()).unwrap_or("unknown"));
        let msg = c.message_type.map(|m| m.label()).unwrap_or("packet");
        // A REQUEST on 67 is for the site's DHCP server: not part of our story.
        if e.port == ListenPort::Dhcp && msg != "discover" {
            return;
        }
        let mut ev = client_event(
            Kind::DhcpSeen,
            c,
            e.iface,
            format!("{} on port {}", msg.to_uppercase(), e.port.number()),
        );
        // The source of an unrelayed packet on 4011 is the client's address.
        if ev.ip.is_none() && c.giaddr.is_unspecified() && !e.source.ip().is_unspecified() {
            ev.ip = Some(e.source.ip().to_string());
        }
        self.record(ev);
    }

    fn answered(&self, e: &AnsweredEvent<'_>) {
        let label = e.reply.message_type.label();
        self.metrics.dhcp_reply(label);
        let file = if e.reply.file.is_empty() {
            "(to port 4011)".to_string()
        } else {
            e.reply.file.clone()
        };
        let mut ev = client_event(
            Kind::DhcpAnswered,
            e.client,
            e.iface,
            format!("{} {file}", label.to_uppercase()),
        );
        ev.message = Some(label.to_string());
        ev.path = (!e.reply.file.is_empty()).then(|| e.reply.file.clone());
        if let Some(r) = &e.reply.rule {
            ev.reason = Some(format!("rule {r}"));
        }
        self.record(ev);
    }

    fn ignored(&self, e: &IgnoredEvent<'_>) {
        self.metrics.dhcp_ignored(e.reason.label());
        let Some(c) = e.client else { return };
        if c.mac.is_none() || c.vendor_prefix.is_none() || ordinary_ignore(e.reason) {
            return;
        }
        let msg = c.message_type.map(|m| m.label()).unwrap_or("packet");
        let mut ev = client_event(
            Kind::DhcpIgnored,
            c,
            e.iface,
            format!("{} not answered", msg.to_uppercase()),
        );
        ev.ok = false;
        ev.reason = Some(e.reason.label().to_string());
        self.record(ev);
    }
}

fn outcome_label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Completed => "completed",
        Outcome::OptionsDeclined => "options_declined",
        Outcome::ClientError { .. } => "client_error",
        Outcome::TimedOut => "timed_out",
        Outcome::ReadError(_) => "read_error",
        Outcome::Cancelled => "cancelled",
        Outcome::PeerGone(_) => "peer_gone",
    }
}

impl TftpObserver for Ops {
    fn transfer_finished(
        &self,
        peer: SocketAddr,
        file: &str,
        bytes: u64,
        duration: Duration,
        outcome: &Outcome,
    ) {
        self.metrics.tftp_transfer(outcome_label(outcome), bytes);
        let what = match outcome {
            Outcome::OptionsDeclined => format!("RRQ {file} (size probe)"),
            _ => format!("RRQ {file}"),
        };
        let mut ev = Event::new(now_ms(), Kind::TftpTransfer, what);
        ev.ip = Some(ip_of(peer));
        ev.stage = Some(Stage::Tftp);
        ev.path = Some(file.to_string());
        ev.bytes = Some(bytes);
        ev.duration_ms = Some(ms(duration));
        ev.ok = outcome.is_success();
        ev.reason = match outcome {
            Outcome::Completed | Outcome::OptionsDeclined => None,
            Outcome::ClientError { code, message } => {
                Some(format!("client sent ERROR {code}: {message}"))
            }
            Outcome::TimedOut => Some("timed out (no ACK within the retry limit)".into()),
            Outcome::ReadError(e) => Some(format!("read error: {e}")),
            Outcome::Cancelled => Some("server shut down".into()),
            Outcome::PeerGone(e) => Some(format!("peer unreachable: {e}")),
        };
        self.record(ev);
    }
}

impl RequestObserver for Ops {
    fn request(&self, r: &RequestRecord<'_>) {
        self.metrics.http_request(r.endpoint, r.status, r.bytes);
        if !is_boot_endpoint(r.endpoint) {
            return;
        }
        let ip = ip_of(r.peer);
        let mac = r
            .labels
            .and_then(|l| l.get("mac"))
            .and_then(|m| Mac::parse(m).ok())
            .map(|m| m.to_string());
        if r.endpoint == "assets" && (200..300).contains(&r.status) {
            let kind = self
                .store
                .lock()
                .ok()
                .and_then(|s| s.asset_stage(mac.as_deref(), &ip, r.path))
                .or_else(|| http_stage("assets", r.path, None));
            let kind = match kind {
                Some(s @ (Stage::Kernel | Stage::Initrd | Stage::Rootfs)) => s.label(),
                _ => "other",
            };
            self.metrics.asset_bytes(kind, r.bytes);
        }
        // Stray 404s from unknown clients are not worth a machine.
        if matches!(r.endpoint, "none" | "invalid") && mac.is_none() {
            let known = self
                .store
                .lock()
                .map(|s| s.mac_for_ip(&ip).is_some())
                .unwrap_or(false);
            if !known {
                return;
            }
        }
        let mut ev = Event::new(
            now_ms(),
            Kind::HttpRequest,
            format!("{} {}", r.method, r.path),
        );
        ev.mac = mac;
        ev.ip = Some(ip);
        ev.endpoint = Some(r.endpoint.to_string());
        ev.path = Some(r.path.to_string());
        ev.status = Some(r.status);
        ev.bytes = Some(r.bytes);
        ev.duration_ms = Some(ms(r.duration));
        ev.group = r.group.map(str::to_string);
        ev.profile = r.profile.map(str::to_string);
        ev.reason = r.reason.map(str::to_string);
        ev.ok = r.status < 400;
        if r.endpoint != "assets" {
            ev.stage = http_stage(r.endpoint, r.path, None);
        }
        self.record(ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_table() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 10.99.0.50       0x1         0x2         52:54:00:12:34:56     *        s0\n\
                 10.99.0.51       0x1         0x0         00:00:00:00:00:00     *        s0\n";
        assert_eq!(
            parse_arp(t, "10.99.0.50").as_deref(),
            Some("52:54:00:12:34:56")
        );
        assert_eq!(parse_arp(t, "10.99.0.51"), None);
        assert_eq!(parse_arp(t, "10.99.0.5"), None);
        assert_eq!(parse_arp("", "10.99.0.5"), None);
    }

    #[test]
    fn mapped_ipv6_peers_are_ipv4() {
        let a: SocketAddr = "[::ffff:10.0.0.7]:80"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(ip_of(a), "10.0.0.7");
    }
}
