//! The tokio socket shell: one UDP socket per allowed interface and port (67, 4011), each bound
//! to its device with SO_BINDTODEVICE so that another DHCP server (libvirt's dnsmasq on
//! `virbr0`) keeps its own interfaces.
//!
//! This file is the server itself: binding at start, the run loop and the interface rescans.
//! The rest, each used from here and never the other way round:
//! * `select`: which interfaces the config selects, with the address each advertises;
//! * `socket`: the sockets of one served interface (and the packet socket for broadcasts);
//! * `worker`: the per-socket packet loop (decide, rate-limit, log, observe, send);
//! * `leasing`: full mode's lease table and lease log; `probe`: the ICMP echo before an
//!   offer; `claim` + `fleet`: the claim of an ACK's lease in a fleet's shared store;
//! * `observer`, `stats`, `error`: the observer hook, the counters, [`DhcpError`].

mod claim;
mod error;
mod fleet;
mod leasing;
pub(crate) mod observer;
mod probe;
mod select;
mod socket;
mod stats;
mod worker;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{CheckedConfig, DhcpConfig};
use crate::netif;
use crate::ratelimit::{LogGate, RateLimiter};

pub use self::claim::{Claim, SharedLeases};
pub use self::error::DhcpError;
pub use self::observer::{
    Answered6Event, AnsweredEvent, DhcpObserver, IgnoredEvent, Seen6Event, SeenEvent,
};
pub use self::select::select_interfaces;
pub use self::socket::ListenerInfo;
pub use self::stats::{DhcpStats, StatsHandle};

use self::observer::NoObserver;
use self::select::choose;
use self::socket::{Bound, bind_interface};
use self::stats::Counters;
use self::worker::{LOG_BURST, LOG_PER_SEC, Shared, Worker, lock};

/// The operator side's handle on the running server: full mode's lease table (empty in
/// proxy mode), and what the groups tell DHCP (reservations, Secure Boot).
#[derive(Clone)]
pub struct LeasesHandle(Arc<Shared>);

impl LeasesHandle {
    /// Every lease record: offers, bindings, releases, decline holds.
    pub fn leases(&self) -> Vec<crate::full::leases::Lease> {
        self.0
            .leasing
            .as_ref()
            .map(|l| l.leases())
            .unwrap_or_default()
    }

    /// The groups' `secure_boot` settings by MAC (x86-64 UEFI PXE firmware of a machine
    /// set `true` gets the signed shim, `false` iPXE, whatever the rules and the default
    /// say). Replaces the previous set.
    pub fn set_group_secure_boot(&self, by_mac: std::collections::HashMap<[u8; 6], bool>) {
        *worker::lock(&self.0.secure_boot) = Arc::new(by_mac);
    }

    /// Fixed addresses from outside the configuration (groups' metadata `ip`); the
    /// configured reservations win a clash. No-op in proxy mode.
    pub fn set_group_reservations(&self, list: Vec<crate::config::Reservation>) {
        if let Some(l) = &self.0.leasing {
            l.set_extra_reservations(list);
        }
    }
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

fn local_addrs(system: &[netif::Interface]) -> Arc<[(Ipv4Addr, Ipv4Addr)]> {
    system
        .iter()
        .flat_map(|i| i.addrs.iter().copied())
        .collect()
}

/// How often rate-limit buckets that refilled are forgotten ([`RateLimiter::sweep`]).
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The next tick of `t`, or never.
async fn next_tick(t: &mut Option<tokio::time::Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
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
            bound.push(bind_interface(c)?);
        }
        let leasing = match &config.full {
            Some(full) => {
                let own: Vec<Ipv4Addr> = system
                    .iter()
                    .flat_map(|i| i.addrs.iter().map(|(a, _)| *a))
                    .chain(config.advertise.values().copied())
                    .collect();
                Some(leasing::Leasing::open(full, &own)?)
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            local: Mutex::new(local_addrs(&system)),
            limiter: config.rate_limit.map(|l| Mutex::new(RateLimiter::new(l))),
            log_gate: Mutex::new(LogGate::new(LOG_BURST, LOG_PER_SEC)),
            unserved: std::sync::OnceLock::new(),
            leasing,
            probes: Arc::new(tokio::sync::Semaphore::new(probe::MAX_PROBES)),
            fleet: std::sync::OnceLock::new(),
            claims: Arc::new(tokio::sync::Semaphore::new(claim::MAX_CLAIMS)),
            secure_boot: Mutex::new(Arc::default()),
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

    /// Full mode in a fleet: every ACK's lease is claimed in `store` before it is sent
    /// (see [`SharedLeases`]). Call before [`run`](Self::run); later calls change nothing.
    /// Ignored in proxy mode.
    pub fn share_leases(&self, store: Arc<dyn SharedLeases>) {
        if self.shared.leasing.is_some() {
            let _ = self.shared.fleet.set(store);
        }
    }

    /// A handle on full mode's leases that keeps working after `run` has taken over.
    pub fn leases_handle(&self) -> LeasesHandle {
        LeasesHandle(self.shared.clone())
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
        // Interfaces are read again every `interface_rescan` (when set); rate-limit buckets
        // that refilled are forgotten every SWEEP_EVERY.
        let every = |d| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        };
        let mut rescan = self.config.interface_rescan.map(every);
        let mut sweep = every(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = next_tick(&mut rescan) => self.rescan(&mut tasks),
                _ = sweep.tick() => {
                    if let Some(l) = &self.shared.limiter {
                        lock(l).sweep(std::time::Instant::now());
                    }
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
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
            match bind_interface(c) {
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
