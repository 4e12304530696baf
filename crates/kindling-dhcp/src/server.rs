//! The tokio socket shell: one UDP socket per allowed interface and port (67, 4011), each bound
//! to its device with SO_BINDTODEVICE so that another DHCP server (libvirt's dnsmasq on
//! `virbr0`) keeps its own interfaces.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};
use std::os::fd::AsRawFd;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use tokio::io::Interest;
use tracing::{debug, info, info_span, warn};

use crate::config::{CheckedConfig, ConfigError, DhcpConfig, InterfaceSelector};
use crate::mmsg::{RecvBatch, send_batch};
use crate::netif;
use crate::policy::{
    ClientInfo, Context, Decision, IgnoreReason, ListenPort, Reply, check_destination, decide,
    describe_arch,
};
use crate::ratelimit::{LogGate, RateLimiter, Verdict};
use crate::rawsend::RawSender;
use crate::wire::{self, opt, yiaddr_is_zero};
use kindling_guard::Esc;

/// Errors from [`DhcpServer::bind`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DhcpError {
    #[error("invalid [dhcp] configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("proxy DHCP is disabled (dhcp.enabled = false)")]
    Disabled,
    #[error("listing network interfaces: {0}")]
    Interfaces(#[source] io::Error),
    #[error("interface {0:?} (from dhcp.interfaces) does not exist")]
    NoSuchInterface(String),
    #[error("interface {0:?} has no IPv4 address; give one with dhcp.advertise.{0} = \"a.b.c.d\"")]
    NoAddress(String),
    #[error(
        "no interface matches dhcp.interfaces / dhcp.all_interfaces after dhcp.exclude_interfaces"
    )]
    NoMatchingInterface,
    #[error(
        "UDP {port} on {iface} is in use{holders}: another DHCP server (dnsmasq/libvirt?) already owns it; stop it, bind it to other interfaces (dnsmasq --bind-interfaces --except-interface={iface}), or exclude {iface} with dhcp.exclude_interfaces"
    )]
    PortInUse {
        port: u16,
        iface: String,
        /// " by dnsmasq (pid 812)" when the holder could be found, else "".
        holders: String,
    },
    #[error(
        "binding UDP {port} on {iface} was refused ({source}); proxy DHCP needs root or CAP_NET_BIND_SERVICE + CAP_NET_RAW"
    )]
    PermissionDenied {
        port: u16,
        iface: String,
        #[source]
        source: io::Error,
    },
    #[error("binding UDP {port} on {iface}: {source}")]
    Bind {
        port: u16,
        iface: String,
        #[source]
        source: io::Error,
    },
}

/// A packet Kindling recognised as a PXE / HTTP Boot / iPXE client.
#[derive(Debug, Clone, Copy)]
pub struct SeenEvent<'a> {
    pub iface: &'a str,
    pub port: ListenPort,
    pub source: SocketAddrV4,
    /// mac, arch, firmware, vendor class, user class, ciaddr, giaddr ...
    pub client: &'a ClientInfo,
}

/// A reply Kindling sent.
#[derive(Debug, Clone, Copy)]
pub struct AnsweredEvent<'a> {
    pub iface: &'a str,
    pub port: ListenPort,
    pub server_ip: Ipv4Addr,
    pub client: &'a ClientInfo,
    pub reply: &'a Reply,
}

/// A packet Kindling did not answer, and why.
#[derive(Debug, Clone, Copy)]
pub struct IgnoredEvent<'a> {
    pub iface: &'a str,
    pub port: ListenPort,
    pub source: SocketAddrV4,
    /// None when the packet did not parse, and for rate-limited datagrams after the first
    /// one of a run (every one is still reported, so counting `ignored` calls by reason
    /// stays exact; a flood does not become one timeline event per datagram).
    pub client: Option<&'a ClientInfo>,
    pub reason: IgnoreReason,
}

/// Hook for the boot timeline. Every method has an empty default.
///
/// `seen` fires for packets with a PXE/HTTPClient vendor class (before the decision),
/// `answered` after a reply was sent, `ignored` for every datagram not answered (including
/// ordinary DHCP clients, reason `not_pxe`). Calls happen on the receive task: keep them cheap.
pub trait DhcpObserver: Send + Sync {
    fn seen(&self, _event: &SeenEvent<'_>) {}
    fn answered(&self, _event: &AnsweredEvent<'_>) {}
    fn ignored(&self, _event: &IgnoredEvent<'_>) {}
}

struct NoObserver;
impl DhcpObserver for NoObserver {}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    offers: AtomicU64,
    acks: AtomicU64,
    send_errors: AtomicU64,
    refused_unsafe: AtomicU64,
    ignored: [AtomicU64; IgnoreReason::ALL.len()],
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DhcpStats {
    /// Datagrams received on all sockets.
    pub received: u64,
    /// OFFERs sent (port 67).
    pub offers: u64,
    /// ACKs sent (port 4011).
    pub acks: u64,
    /// Replies the kernel refused to send.
    pub send_errors: u64,
    /// Replies withheld by the final `yiaddr == 0` check (always 0 unless there is a bug).
    pub refused_unsafe: u64,
    /// Ignored datagrams by reason label (every label present, zeros included).
    pub ignored: BTreeMap<String, u64>,
}

impl DhcpStats {
    /// Replies sent.
    pub fn replies(&self) -> u64 {
        self.offers + self.acks
    }

    /// Count for one reason.
    pub fn ignored(&self, reason: IgnoreReason) -> u64 {
        self.ignored.get(reason.label()).copied().unwrap_or(0)
    }
}

/// A cheap clonable handle on the live counters (for a metrics endpoint).
#[derive(Clone)]
pub struct StatsHandle(Arc<Counters>);

impl StatsHandle {
    pub fn snapshot(&self) -> DhcpStats {
        let c = &self.0;
        DhcpStats {
            received: c.received.load(Ordering::Relaxed),
            offers: c.offers.load(Ordering::Relaxed),
            acks: c.acks.load(Ordering::Relaxed),
            send_errors: c.send_errors.load(Ordering::Relaxed),
            refused_unsafe: c.refused_unsafe.load(Ordering::Relaxed),
            ignored: IgnoreReason::ALL
                .iter()
                .map(|r| {
                    (
                        r.label().to_string(),
                        c.ignored[r.index()].load(Ordering::Relaxed),
                    )
                })
                .collect(),
        }
    }
}

/// One bound socket.
struct Listener {
    iface: Arc<str>,
    server_ip: Ipv4Addr,
    port: ListenPort,
    socket: Arc<UdpSocket>,
    /// Broadcast replies on port 67 go out here when it could be opened.
    raw: Option<Arc<RawSender>>,
}

/// A bound listener, for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    pub iface: String,
    pub server_ip: Ipv4Addr,
    pub port: u16,
}

/// The proxy DHCP server.
pub struct DhcpServer {
    config: Arc<CheckedConfig>,
    /// Served interfaces (changed by rescans while `run` goes).
    bound: Mutex<Vec<Bound>>,
    /// What the last look at the interfaces could not serve, to log only changes.
    problems: Mutex<Vec<String>>,
    stats: StatsHandle,
    observer: Arc<dyn DhcpObserver>,
    shared: Arc<Shared>,
}

/// State the workers share.
struct Shared {
    /// Every IPv4 (address, netmask) of this host, for the destination check; refreshed by
    /// rescans.
    local: Mutex<Arc<[(Ipv4Addr, Ipv4Addr)]>>,
    /// Per-client token buckets (None: `dhcp.rate_limit.enabled = false`).
    limiter: Option<Mutex<RateLimiter>>,
    /// Rate limit of the info/warn lines about ignored datagrams (a flood must not flood
    /// the log).
    log_gate: Mutex<LogGate>,
    /// Boot files this server may hand out that nothing serves, and why (set once at
    /// start by the binary): each reply naming one is logged at warn.
    unserved: std::sync::OnceLock<std::collections::HashMap<String, String>>,
}

/// Lines about ignored datagrams: 50 at once, then 5 a second.
const LOG_BURST: u32 = 50;
const LOG_PER_SEC: f64 = 5.0;

fn local_addrs(system: &[netif::Interface]) -> Arc<[(Ipv4Addr, Ipv4Addr)]> {
    system
        .iter()
        .flat_map(|i| i.addrs.iter().copied())
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn make_socket(iface: &str, port: u16) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    // Room for a burst (a rack powering on at once); best effort, capped by rmem_max.
    let _ = s.set_recv_buffer_size(1 << 20);
    s.bind_device(Some(iface.as_bytes()))?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    Ok(s.into())
}

fn bind_error(port: u16, iface: &str, e: io::Error) -> DhcpError {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            let h = netif::udp_port_holders(port);
            DhcpError::PortInUse {
                port,
                iface: iface.into(),
                holders: if h.is_empty() {
                    String::new()
                } else {
                    format!(" by {}", h.join(", "))
                },
            }
        }
        io::ErrorKind::PermissionDenied => DhcpError::PermissionDenied {
            port,
            iface: iface.into(),
            source: e,
        },
        _ => DhcpError::Bind {
            port,
            iface: iface.into(),
            source: e,
        },
    }
}

/// An interface to serve now, with the address it advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Choice {
    iface: String,
    index: u32,
    ip: Ipv4Addr,
}

/// The interfaces the config selects among `system`, and why others that it names or
/// matches cannot be served yet (a named interface missing, one without an address).
fn choose(cfg: &CheckedConfig, system: &[netif::Interface]) -> (Vec<Choice>, Vec<DhcpError>) {
    let mut out = Vec::new();
    let mut waiting = Vec::new();
    for sel in &cfg.interfaces {
        if let InterfaceSelector::Name(n) = sel
            && !n.as_str().contains('*')
            && !system.iter().any(|i| i.name == n.as_str())
        {
            waiting.push(DhcpError::NoSuchInterface(n.as_str().into()));
        }
    }
    for i in system {
        if cfg.is_excluded(&i.name) {
            continue;
        }
        let first = i.addrs.first().copied();
        let selected = if cfg.all_interfaces {
            i.up && !i.loopback && (first.is_some() || cfg.advertise.contains_key(&i.name))
        } else {
            cfg.interfaces.iter().any(|s| match s {
                InterfaceSelector::Name(n) => n.matches(&i.name),
                InterfaceSelector::Subnet { .. } => {
                    i.addrs.iter().any(|(a, m)| s.matches(&i.name, *a, *m))
                }
            })
        };
        if !selected {
            continue;
        }
        let ip = match cfg.advertise.get(&i.name) {
            Some(ip) => *ip,
            None => {
                // Prefer the address that matched a subnet selector.
                let by_subnet = i.addrs.iter().find(|(a, m)| {
                    cfg.interfaces.iter().any(|s| {
                        matches!(s, InterfaceSelector::Subnet { .. }) && s.matches(&i.name, *a, *m)
                    })
                });
                match by_subnet.or(i.addrs.first()) {
                    Some((a, _)) => *a,
                    None => {
                        waiting.push(DhcpError::NoAddress(i.name.clone()));
                        continue;
                    }
                }
            }
        };
        out.push(Choice {
            iface: i.name.clone(),
            index: i.index,
            ip,
        });
    }
    (out, waiting)
}

/// Chooses (interface, advertised address) pairs from the config and the system's
/// interfaces; anything named or matched that cannot be served is an error.
pub fn select_interfaces(
    cfg: &CheckedConfig,
    system: &[netif::Interface],
) -> Result<Vec<(String, Ipv4Addr)>, DhcpError> {
    let (chosen, waiting) = choose(cfg, system);
    if let Some(e) = waiting.into_iter().next() {
        return Err(e);
    }
    if chosen.is_empty() {
        return Err(DhcpError::NoMatchingInterface);
    }
    Ok(chosen.into_iter().map(|c| (c.iface, c.ip)).collect())
}

/// The sockets of one served interface (UDP 67, and 4011 unless turned off), stopped
/// together when the interface goes away or changes address.
struct Bound {
    choice: Choice,
    listeners: Vec<Listener>,
    stop: CancellationToken,
}

fn bind_interface(config: &CheckedConfig, choice: &Choice) -> Result<Bound, DhcpError> {
    let iface: Arc<str> = Arc::from(choice.iface.as_str());
    let ip = choice.ip;
    let mut ports = vec![ListenPort::Dhcp];
    if config.proxy_port_4011 {
        ports.push(ListenPort::Pxe);
    }
    let mut listeners = Vec::new();
    for port in ports {
        let std_sock =
            make_socket(&iface, port.number()).map_err(|e| bind_error(port.number(), &iface, e))?;
        let socket = UdpSocket::from_std(std_sock).map_err(|e| DhcpError::Bind {
            port: port.number(),
            iface: iface.to_string(),
            source: e,
        })?;
        info!(iface = %iface, server_ip = %ip, port = port.number(), "proxy DHCP listening");
        let raw = match port {
            ListenPort::Dhcp => match RawSender::open(&iface, ip) {
                Ok(r) => Some(Arc::new(r)),
                Err(e) => {
                    debug!(iface = %iface, error = %e, "no packet socket for broadcast replies; using UDP");
                    None
                }
            },
            ListenPort::Pxe => None,
        };
        listeners.push(Listener {
            iface: iface.clone(),
            server_ip: ip,
            port,
            socket: Arc::new(socket),
            raw,
        });
    }
    Ok(Bound {
        choice: choice.clone(),
        listeners,
        stop: CancellationToken::new(),
    })
}

impl DhcpServer {
    /// Validates the config and binds every socket. Fails with a clear error if a port is taken.
    pub async fn bind(config: &DhcpConfig) -> Result<Self, DhcpError> {
        Self::bind_checked(config.validate()?, Arc::new(NoObserver)).await
    }

    /// Like [`bind`](Self::bind), with an observer for the boot timeline.
    pub async fn bind_with_observer(
        config: &DhcpConfig,
        observer: Arc<dyn DhcpObserver>,
    ) -> Result<Self, DhcpError> {
        Self::bind_checked(config.validate()?, observer).await
    }

    /// Binds from an already validated config.
    ///
    /// Without rescans, every named or matched interface must be servable now. With them,
    /// only a named interface that does not exist is an error (a typo, most likely);
    /// matched interfaces without an address, or no match at all, are logged and served
    /// once they appear.
    pub async fn bind_checked(
        config: CheckedConfig,
        observer: Arc<dyn DhcpObserver>,
    ) -> Result<Self, DhcpError> {
        if !config.enabled {
            return Err(DhcpError::Disabled);
        }
        let system = netif::interfaces().map_err(DhcpError::Interfaces)?;
        let (chosen, waiting) = choose(&config, &system);
        let mut problems = Vec::new();
        for e in waiting {
            match e {
                DhcpError::NoSuchInterface(_) => return Err(e),
                e if config.interface_rescan.is_none() => return Err(e),
                e => problems.push(e.to_string()),
            }
        }
        if chosen.is_empty() {
            if config.interface_rescan.is_none() {
                return Err(DhcpError::NoMatchingInterface);
            }
            problems.push(DhcpError::NoMatchingInterface.to_string());
        }
        for p in &problems {
            warn!(
                "proxy DHCP: {p}; waiting for it (interfaces are read again every {}s)",
                config.interface_rescan.map(|d| d.as_secs()).unwrap_or(0)
            );
        }
        let mut bound = Vec::new();
        for c in &chosen {
            bound.push(bind_interface(&config, c)?);
        }
        let shared = Arc::new(Shared {
            local: Mutex::new(local_addrs(&system)),
            limiter: config.rate_limit.map(|l| Mutex::new(RateLimiter::new(l))),
            log_gate: Mutex::new(LogGate::new(LOG_BURST, LOG_PER_SEC)),
            unserved: std::sync::OnceLock::new(),
        });
        Ok(Self {
            config: Arc::new(config),
            bound: Mutex::new(bound),
            problems: Mutex::new(problems),
            stats: StatsHandle(Arc::new(Counters::default())),
            observer,
            shared,
        })
    }

    /// The bound sockets (now: interfaces come and go when rescans are on).
    pub fn listeners(&self) -> Vec<ListenerInfo> {
        let bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        bound
            .iter()
            .flat_map(|b| &b.listeners)
            .map(|l| ListenerInfo {
                iface: l.iface.to_string(),
                server_ip: l.server_ip,
                port: l.port.number(),
            })
            .collect()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> DhcpStats {
        self.stats.snapshot()
    }

    /// Boot files that nothing serves, each with the reason, keyed by TFTP name or, for
    /// HTTP Boot URLs, by their `/tftp/<name>` path; every reply handing one out is then logged at warn (rate-limited), so a
    /// client that will fail its TFTP or HTTP fetch is explained at the step that caused
    /// it. Set once, before [`run`](Self::run); later calls are ignored.
    pub fn warn_unserved(&self, files: std::collections::HashMap<String, String>) {
        let _ = self.shared.unserved.set(files);
    }

    /// A handle that keeps reading the counters after `run` has taken over.
    pub fn stats_handle(&self) -> StatsHandle {
        self.stats.clone()
    }

    fn spawn_workers(&self, b: &Bound, tasks: &mut tokio::task::JoinSet<()>) {
        for l in &b.listeners {
            let worker = Worker {
                config: self.config.clone(),
                iface: l.iface.clone(),
                server_ip: l.server_ip,
                port: l.port,
                socket: l.socket.clone(),
                raw: l.raw.clone(),
                stats: self.stats.clone(),
                observer: self.observer.clone(),
                shared: self.shared.clone(),
                cancel: b.stop.clone(),
            };
            tasks.spawn(worker.run());
        }
    }

    /// Serves until `cancel` fires, following interface changes when rescans are on.
    pub async fn run(&self, cancel: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        {
            let bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
            for b in bound.iter() {
                self.spawn_workers(b, &mut tasks);
            }
        }
        if let Some(every) = self.config.interface_rescan {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => self.rescan(&mut tasks),
                    Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                }
            }
        } else {
            cancel.cancelled().await;
        }
        {
            let bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
            for b in bound.iter() {
                b.stop.cancel();
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Reads the interface list again: stops serving interfaces that went away or changed
    /// (index or address), starts serving new ones. Problems are logged when they change.
    fn rescan(&self, tasks: &mut tokio::task::JoinSet<()>) {
        let system = match netif::interfaces() {
            Ok(s) => s,
            Err(e) => {
                debug!(error = %e, "listing interfaces failed; keeping the current ones");
                return;
            }
        };
        *lock(&self.shared.local) = local_addrs(&system);
        let (chosen, waiting) = choose(&self.config, &system);
        let mut problems: Vec<String> = waiting.iter().map(ToString::to_string).collect();
        let mut bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        bound.retain(|b| {
            if chosen.contains(&b.choice) {
                return true;
            }
            let why = match system.iter().find(|i| i.name == b.choice.iface) {
                None => "interface gone",
                Some(i) if i.index != b.choice.index => "interface re-created",
                Some(_) => "address or selection changed",
            };
            info!(iface = %b.choice.iface, server_ip = %b.choice.ip, reason = why, "proxy DHCP stopped on interface");
            b.stop.cancel();
            false
        });
        for c in &chosen {
            if bound.iter().any(|b| &b.choice == c) {
                continue;
            }
            match bind_interface(&self.config, c) {
                Ok(b) => {
                    self.spawn_workers(&b, tasks);
                    bound.push(b);
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if bound.is_empty() && problems.is_empty() {
            problems.push(DhcpError::NoMatchingInterface.to_string());
        }
        drop(bound);
        let mut last = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        if *last != problems {
            for p in problems.iter().filter(|p| !last.contains(p)) {
                warn!(
                    "proxy DHCP: {p}; trying again in {}s",
                    self.config
                        .interface_rescan
                        .map(|d| d.as_secs())
                        .unwrap_or(0)
                );
            }
            *last = problems;
        }
    }
}

#[derive(Clone)]
struct Worker {
    config: Arc<CheckedConfig>,
    iface: Arc<str>,
    server_ip: Ipv4Addr,
    port: ListenPort,
    socket: Arc<UdpSocket>,
    raw: Option<Arc<RawSender>>,
    stats: StatsHandle,
    observer: Arc<dyn DhcpObserver>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

/// Datagrams read per `recvmmsg` call.
const RECV_BATCH: usize = 32;
/// Receive buffer per datagram: far above any real DHCP packet (576 bytes minimum, rarely
/// more than one Ethernet frame); a larger datagram is dropped as malformed.
const DATAGRAM_MAX: usize = 4096;

/// A reply waiting for the batch's `sendmmsg`.
struct Pending {
    reply: Reply,
    client: Option<ClientInfo>,
    span: tracing::Span,
}

impl Worker {
    async fn run(self) {
        let mut batch = RecvBatch::new(RECV_BATCH, DATAGRAM_MAX);
        let mut pending: Vec<Pending> = Vec::with_capacity(RECV_BATCH);
        let fd = self.socket.as_raw_fd();
        // One registration for the whole loop (a fresh `cancelled()` per packet would lock the
        // token's mutex twice per datagram).
        let cancelled = self.cancel.cancelled();
        tokio::pin!(cancelled);
        loop {
            // Readiness stays set until a read returns WouldBlock, so under load this returns at
            // once (and still counts against tokio's cooperative budget, so a flood cannot
            // starve the HTTP tasks that share the runtime).
            tokio::select! {
                biased;
                _ = &mut cancelled => return,
                r = self.socket.readable() => if let Err(e) = r {
                    debug!(iface = %self.iface, error = %e, "socket readiness failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                },
            }
            match self.socket.try_io(Interest::READABLE, || batch.recv(fd)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    debug!(iface = %self.iface, error = %e, "recv failed");
                    // Never spin on a persistent error (interface gone, ...).
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            }
            let local = lock(&self.shared.local).clone();
            let now = Instant::now();
            for d in batch.iter() {
                let Some(source) = d.source else { continue };
                self.stats.0.received.fetch_add(1, Ordering::Relaxed);
                if d.truncated {
                    self.stats.0.ignored[IgnoreReason::Malformed.index()]
                        .fetch_add(1, Ordering::Relaxed);
                    debug!(iface = %self.iface, %source, "ignored: datagram larger than {DATAGRAM_MAX} bytes");
                    continue;
                }
                if let Some(p) = self.handle(d.data, source, &local, now) {
                    pending.push(p);
                }
            }
            self.flush(&mut pending).await;
        }
    }

    /// Decides one datagram; returns the reply to send now (delayed replies are spawned).
    fn handle(
        &self,
        packet: &[u8],
        source: SocketAddrV4,
        local: &[(Ipv4Addr, Ipv4Addr)],
        now: Instant,
    ) -> Option<Pending> {
        let ctx = Context {
            iface: &self.iface,
            server_ip: self.server_ip,
            port: self.port,
            source,
            local,
        };
        let mut outcome = decide(&self.config, &ctx, packet);
        // Per-client rate limit: every datagram of a PXE client is charged (answered or
        // not: the info lines and the timeline cost too); ordinary DHCP traffic never is.
        let mut first_drop = true;
        if let (Some(limiter), Some(c)) = (&self.shared.limiter, &outcome.client)
            && c.vendor_prefix.is_some()
        {
            let verdict = lock(limiter).check(now, c.mac, *source.ip(), !c.giaddr.is_unspecified());
            if let Verdict::Limited { key, first } = verdict {
                outcome.decision = Decision::Ignore(key.reason());
                first_drop = first;
            }
        }
        let client = outcome.client.as_ref();
        let span = info_span!(
            "dhcp",
            xid = %client.map(|c| format!("{:08x}", c.xid)).unwrap_or_default(),
            mac = %client.map(ClientInfo::mac_string).unwrap_or_default(),
            iface = %self.iface,
            port = self.port.number(),
        );
        if let Some(c) = client
            && c.vendor_prefix.is_some()
            && first_drop
        {
            self.observer.seen(&SeenEvent {
                iface: &self.iface,
                port: self.port,
                source,
                client: c,
            });
        }
        match outcome.decision {
            Decision::Ignore(reason) => {
                self.stats.0.ignored[reason.index()].fetch_add(1, Ordering::Relaxed);
                if first_drop {
                    span.in_scope(|| self.log_ignore(&ctx, reason, client, packet, now));
                }
                self.observer.ignored(&IgnoredEvent {
                    iface: &self.iface,
                    port: self.port,
                    source,
                    client: client.filter(|_| first_drop),
                    reason,
                });
                None
            }
            Decision::Reply(reply) => {
                // Last lines of defence: a proxy never hands out an address, and never
                // sends to a broadcast, multicast, loopback or own address unless it is
                // the port-67 broadcast to clients on this link.
                let dest_ok = (*reply.dest.ip() == Ipv4Addr::BROADCAST
                    && reply.dest.port() == crate::policy::DHCP_CLIENT_PORT)
                    || check_destination(*reply.dest.ip(), self.server_ip, local).is_ok();
                if !yiaddr_is_zero(&reply.packet) || !dest_ok {
                    self.stats.0.refused_unsafe.fetch_add(1, Ordering::Relaxed);
                    span.in_scope(|| warn!(dest = %reply.dest, "refusing to send an unsafe reply (yiaddr != 0 or bad destination)"));
                    return None;
                }
                let delay = self.config.reply_delay;
                let client = outcome.client;
                if delay.is_zero() {
                    return Some(Pending {
                        reply,
                        client,
                        span,
                    });
                }
                let this = self.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = this.cancel.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    let mut one = vec![Pending {
                        reply,
                        client,
                        span,
                    }];
                    this.flush(&mut one).await;
                });
                None
            }
        }
    }

    /// Logs an ignored datagram: ordinary LAN traffic at debug, the rest (rate-limited by
    /// [`LogGate`]) at info, refusals of unsafe destinations and rate-limit drops at warn.
    /// Client texts are escaped ([`Esc`]).
    fn log_ignore(
        &self,
        ctx: &Context<'_>,
        reason: IgnoreReason,
        client: Option<&ClientInfo>,
        packet: &[u8],
        now: Instant,
    ) {
        let source = ctx.source;
        match reason {
            // Ordinary DHCP traffic: every client on the LAN would log here.
            IgnoreReason::NotPxe
            | IgnoreReason::RequestOnDhcpPort
            | IgnoreReason::NotDiscoverOrRequest
            | IgnoreReason::NotBootRequest => {
                debug!(reason = reason.label(), %source, "ignored");
                return;
            }
            _ => {}
        }
        let Some(suppressed) = lock(&self.shared.log_gate).allow(now) else {
            return;
        };
        // The client's own bytes (not the lossy copies in ClientInfo), escaped.
        let req = wire::Request::parse(packet).ok();
        let vendor = req
            .as_ref()
            .and_then(|r| r.option(opt::VENDOR_CLASS))
            .unwrap_or_default();
        let user_classes = req.as_ref().map(|r| r.user_classes()).unwrap_or_default();
        let vendor_class = Esc(vendor);
        let user_classes = user_classes.join(&b","[..]);
        let user_class = Esc(&user_classes);
        let arches = client
            .map(|c| {
                c.architectures
                    .iter()
                    .map(|a| describe_arch(*a))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        match reason {
            IgnoreReason::UnsafeGiaddr | IgnoreReason::UnsafeSource => {
                let (field, addr) = match (reason, client) {
                    (IgnoreReason::UnsafeGiaddr, Some(c)) => ("giaddr", c.giaddr),
                    _ => ("source", *source.ip()),
                };
                let kind = match check_destination(addr, ctx.server_ip, ctx.local) {
                    Err(k) => k.label(),
                    Ok(()) => "port_zero",
                };
                warn!(
                    reason = reason.label(),
                    %source,
                    %addr,
                    kind,
                    %vendor_class,
                    suppressed,
                    "ignored: refusing to send a reply to the {field} address (not a unicast address of another host)"
                );
            }
            IgnoreReason::RateLimitedMac
            | IgnoreReason::RateLimitedIp
            | IgnoreReason::RateLimitedRelay => {
                warn!(
                    reason = reason.label(),
                    %source,
                    %vendor_class,
                    suppressed,
                    "ignored: over the dhcp.rate_limit budget; dropping this client's datagrams until it refills (logged once per run)"
                );
            }
            _ => {
                let why = match reason {
                    IgnoreReason::UnsupportedArchNoBinary => {
                        "arm64 firmware and no dhcp.arm64_binary configured: not answering rather than sending a dead end"
                    }
                    IgnoreReason::UnsupportedArch => {
                        "no architecture in option 93 that Kindling boots"
                    }
                    IgnoreReason::NoArch => "PXE vendor class without option 93",
                    IgnoreReason::RuleIgnore => "a rule with target = \"ignore\" matched",
                    IgnoreReason::LocalBoot => {
                        "a rule with target = \"local_boot\" matched: staying silent so the firmware boots locally"
                    }
                    _ => "",
                };
                info!(
                    reason = reason.label(),
                    %source,
                    %vendor_class,
                    %user_class,
                    arch = %arches,
                    suppressed,
                    "ignored: {why}"
                );
            }
        }
    }

    /// Sends every pending reply, as few system calls as the kernel allows; empties `pending`.
    async fn flush(&self, pending: &mut Vec<Pending>) {
        if let Some(raw) = &self.raw {
            self.send_broadcasts(raw, pending);
        }
        let fd = self.socket.as_raw_fd();
        let mut start = 0;
        while start < pending.len() {
            let rest = &pending[start..];
            let packets: Vec<(&[u8], SocketAddrV4)> = rest
                .iter()
                .map(|p| (p.reply.packet.as_slice(), p.reply.dest))
                .collect();
            match self
                .socket
                .try_io(Interest::WRITABLE, || send_batch(fd, &packets))
            {
                Ok(n) if n > 0 => {
                    for p in &rest[..n] {
                        self.sent(p);
                    }
                    start += n;
                }
                Ok(_) => start += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Send buffer full: wait for room for this one, then batch again.
                    let p = &rest[0];
                    match self.socket.send_to(&p.reply.packet, p.reply.dest).await {
                        Ok(_) => self.sent(p),
                        Err(e) => self.send_failed(p, &e),
                    }
                    start += 1;
                }
                Err(e) => {
                    // The first datagram was refused (no route, ...): count it, go on.
                    self.send_failed(&rest[0], &e);
                    start += 1;
                }
            }
        }
        pending.clear();
    }

    /// Sends the broadcast replies of `pending` on the packet socket and removes those the
    /// kernel took; anything else (unicast, or a send error) stays for the UDP socket.
    fn send_broadcasts(&self, raw: &RawSender, pending: &mut Vec<Pending>) {
        let (bcast, rest): (Vec<Pending>, Vec<Pending>) = pending
            .drain(..)
            .partition(|p| *p.reply.dest.ip() == Ipv4Addr::BROADCAST);
        *pending = rest;
        if bcast.is_empty() {
            return;
        }
        let frames: Vec<Vec<u8>> = bcast
            .iter()
            .map_while(|p| raw.frame(self.port.number(), p.reply.dest, &p.reply.packet))
            .collect();
        let sent = match raw.send_batch(&frames) {
            Ok(n) => n,
            Err(e) => {
                debug!(iface = %self.iface, error = %e, "packet socket send failed; using UDP");
                0
            }
        };
        let mut bcast = bcast.into_iter();
        for p in bcast.by_ref().take(sent) {
            self.sent(&p);
        }
        pending.extend(bcast);
    }

    fn sent(&self, p: &Pending) {
        let counter = match self.port {
            ListenPort::Dhcp => &self.stats.0.offers,
            ListenPort::Pxe => &self.stats.0.acks,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let Some(c) = &p.client else { return };
        let reply = &p.reply;
        p.span.in_scope(|| {
            info!(
                reply = reply.message_type.label(),
                firmware = %c.firmware.map(|f| f.label()).unwrap_or("-"),
                arch = %c.arch.map(describe_arch).unwrap_or_else(|| "-".into()),
                file = %reply.file,
                dest = %reply.dest,
                rule = %reply.rule.as_deref().unwrap_or("-"),
                "proxy DHCP reply"
            )
        });
        // TFTP names are keyed as they are; HTTP Boot URLs by their `/tftp/<name>` path.
        let key = match reply.file.split_once("://") {
            Some((_, rest)) => rest.find("/tftp/").map(|i| &rest[i..]),
            None => Some(reply.file.as_str()),
        };
        if let Some(why) = key.and_then(|k| self.shared.unserved.get()?.get(k))
            && let Some(suppressed) = lock(&self.shared.log_gate).allow(Instant::now())
        {
            p.span.in_scope(|| {
                warn!(
                    file = %reply.file,
                    suppressed,
                    "handed out a boot file that nothing serves: {why}; this client will fail to fetch it"
                )
            });
        }
        self.observer.answered(&AnsweredEvent {
            iface: &self.iface,
            port: self.port,
            server_ip: self.server_ip,
            client: c,
            reply,
        });
    }

    fn send_failed(&self, p: &Pending, e: &io::Error) {
        self.stats.0.send_errors.fetch_add(1, Ordering::Relaxed);
        p.span.in_scope(
            || warn!(dest = %p.reply.dest, error = %e, "sending proxy DHCP reply failed"),
        );
    }
}
