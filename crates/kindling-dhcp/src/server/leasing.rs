//! Full mode's state in the shell: the lease table behind a lock, and the lease log every
//! change is appended to before the reply that announces it is sent.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::config::{CheckedConfig, FullConfig, Reservation};
use crate::full::decide::{CONFLICT_HOLD_SECS, decide_full};
use crate::full::leases::{Lease, LeaseTable};
use crate::full::log::LeaseLog;
use crate::full::pool_specs;
use crate::policy::{Context, Decision, IgnoreReason, Outcome};
use crate::server::error::DhcpError;
use crate::wire::MessageType;

/// The lease table and its log.
pub(crate) struct Leasing {
    state: Mutex<State>,
}

struct State {
    /// The configuration's full mode plus the reservations from groups' metadata.
    full: FullConfig,
    /// The configuration's own (without groups').
    base: FullConfig,
    /// This host's addresses (never handed out).
    local: Vec<Ipv4Addr>,
    table: LeaseTable,
    log: LeaseLog,
    /// A write failed: the log misses changes, so the next write rewrites it whole.
    dirty: bool,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Seconds since the epoch (the lease table's clock).
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Leasing {
    /// Opens (or creates) the lease log and restores the table from it.
    pub(super) fn open(full: &FullConfig, local: &[Ipv4Addr]) -> Result<Self, DhcpError> {
        let path: PathBuf = full.lease_file.clone().ok_or_else(|| {
            DhcpError::Config(crate::ConfigError::Invalid {
                key: "dhcp.lease_file".into(),
                reason: "full mode needs a lease file".into(),
            })
        })?;
        let table = LeaseTable::new(&pool_specs(full, local)).map_err(|e| {
            DhcpError::Config(crate::ConfigError::Invalid {
                key: "dhcp.subnets".into(),
                reason: e.to_string(),
            })
        })?;
        let (log, records, report) =
            LeaseLog::open(&path).map_err(|source| DhcpError::LeaseFile {
                path: path.clone(),
                source,
            })?;
        let mut state = State {
            full: full.clone(),
            base: full.clone(),
            local: local.to_vec(),
            table,
            log,
            dirty: false,
        };
        let restored = state.table.restore(records, unix_now());
        info!(
            file = %path.display(),
            lines = report.lines,
            skipped = report.skipped,
            restored = restored.restored,
            dropped = restored.dropped,
            "DHCP leases loaded"
        );
        if report.skipped > 0 {
            warn!(
                file = %path.display(),
                skipped = report.skipped,
                first_bad_line = ?report.first_bad_line,
                "lease file: unreadable lines skipped (a torn last line after a crash is normal)"
            );
        }
        // The table's view of what it restored, written compactly.
        let now = unix_now();
        let live: Vec<Lease> = state.table.records(now).cloned().collect();
        state
            .log
            .compact(live.iter())
            .map_err(|source| DhcpError::LeaseFile { path, source })?;
        state.table.drain_changes();
        Ok(Self {
            state: Mutex::new(state),
        })
    }

    /// Decides one datagram with the table, and appends the changes to the log before
    /// returning. A reply whose lease could not be written is not sent (the client retries).
    /// With `ping_check`, an offer of an address this client did not hold comes with that
    /// address, to be probed before the offer goes out.
    pub(super) fn decide(
        &self,
        cfg: &CheckedConfig,
        ctx: &Context<'_>,
        packet: &[u8],
    ) -> (Outcome, Option<Ipv4Addr>) {
        let mut st = lock(&self.state);
        st.decide(cfg, ctx, packet)
    }

    /// The probe found `ip` in use: holds it back and decides the same datagram again.
    pub(super) fn conflict(
        &self,
        cfg: &CheckedConfig,
        ctx: &Context<'_>,
        packet: &[u8],
        ip: Ipv4Addr,
    ) -> (Outcome, Option<Ipv4Addr>) {
        let mut st = lock(&self.state);
        st.table.conflict(ip, unix_now(), CONFLICT_HOLD_SECS);
        st.decide(cfg, ctx, packet)
    }

    /// The active lease record on `ip` (its holder and end), if any.
    pub(super) fn holder(&self, ip: Ipv4Addr) -> Option<Lease> {
        lock(&self.state).table.holder_of(ip).cloned()
    }

    /// Another server's client holds `ip` until `until` (the shared store said so): holds
    /// it back here and decides the same datagram again (a REQUEST for it gets a NAK).
    pub(super) fn held_elsewhere(
        &self,
        cfg: &CheckedConfig,
        ctx: &Context<'_>,
        packet: &[u8],
        ip: Ipv4Addr,
        until: u64,
    ) -> Outcome {
        let mut st = lock(&self.state);
        st.table.held_elsewhere(ip, unix_now(), until);
        st.decide(cfg, ctx, packet).0
    }

    /// Reservations from outside the configuration (groups' metadata): merged with the
    /// configured ones (which win on a clash of MAC or address), the table rebuilt with
    /// them and its records kept (a record on an address now reserved for another MAC is
    /// dropped). Nothing happens when the list is the one in force.
    pub(crate) fn set_extra_reservations(&self, extra: Vec<Reservation>) {
        let mut st = lock(&self.state);
        let mut full = st.base.clone();
        let mut skipped = 0usize;
        for r in extra {
            let clash = full
                .reservations
                .iter()
                .any(|o| o.mac == r.mac || o.ip == r.ip);
            let inside = full.subnets.iter().any(|n| {
                n.contains(r.ip)
                    && r.ip != n.network
                    && r.ip != n.broadcast()
                    && Some(r.ip) != n.router
            });
            if clash || !inside || st.local.contains(&r.ip) {
                skipped += 1;
                continue;
            }
            if let Some(h) = &r.hostname {
                full.hostnames.insert(r.mac, h.clone());
            }
            full.reservations.push(r);
        }
        if full.reservations == st.full.reservations {
            return;
        }
        let table = match LeaseTable::new(&pool_specs(&full, &st.local)) {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "reservations from groups not applied");
                return;
            }
        };
        let now = unix_now();
        let records: Vec<Lease> = st.table.records(now).cloned().collect();
        let old = std::mem::replace(&mut st.table, table);
        let report = st.table.restore(records, now);
        st.table.drain_changes();
        drop(old);
        info!(
            reservations = full.reservations.len(),
            from_groups = full.reservations.len() - st.base.reservations.len(),
            skipped,
            dropped_leases = report.dropped,
            "DHCP reservations updated from groups' metadata"
        );
        st.full = full;
        st.dirty = true; // the next write rewrites the log from the table
    }

    /// Every lease record, for `kindling machines` and the API.
    pub(crate) fn leases(&self) -> Vec<Lease> {
        let st = lock(&self.state);
        st.table.iter().cloned().collect()
    }
}

impl State {
    fn decide(
        &mut self,
        cfg: &CheckedConfig,
        ctx: &Context<'_>,
        packet: &[u8],
    ) -> (Outcome, Option<Ipv4Addr>) {
        if cfg.full.is_none() {
            return (crate::policy::decide(cfg, ctx, packet), None);
        }
        let full = &self.full;
        let now = unix_now();
        // The addresses this client held before (an offer of one of them needs no probe).
        let held: Vec<Ipv4Addr> = match (packet.get(1..3), packet.get(28..34)) {
            (Some([1, 6]), Some(m)) => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(m);
                self.table.leases_of(mac).map(|l| l.ip).collect()
            }
            _ => Vec::new(),
        };
        let mut out = decide_full(cfg, full, &mut self.table, ctx, packet, now);
        let ping = full.ping_timeout.is_some();
        let changes = self.table.drain_changes();
        if !changes.is_empty()
            && let Err(e) = self.persist(&changes, now)
        {
            warn!(error = %e, file = %self.log.path().display(), "writing the lease file failed; not answering");
            out.decision = Decision::Ignore(IgnoreReason::EncodeFailed);
        }
        let probe = match &out.decision {
            Decision::Reply(r) if r.message_type == MessageType::Offer => {
                r.lease.filter(|ip| ping && !held.contains(ip))
            }
            _ => None,
        };
        (out, probe)
    }

    /// Appends `changes` (the table has them already); after a failed write, or when the
    /// log has grown, rewrites the log from the table instead.
    fn persist(&mut self, changes: &[Lease], now: u64) -> io::Result<()> {
        let r = if self.dirty || self.log.needs_compaction() {
            let live: Vec<Lease> = self.table.records(now).cloned().collect();
            self.log.compact(live.iter())
        } else {
            self.log.append(changes)
        };
        self.dirty = r.is_err();
        r
    }
}
