//! The [`Store`] itself: machines by MAC, IP -> MAC ties, events waiting for their IP
//! to be tied; ingesting live events and replaying journaled ones (boot splitting,
//! repeats, stages and errors, time order, eviction) and the reads the API, the CLI and
//! the dashboard make.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::machine::{BootRec, MachineRec, room_for_one};
use super::types::{BootError, Limits, MachineDetail, MachineSummary};
use crate::classify::{ProfileMap, http_stage};
use crate::event::{Detail, Endpoint, Event, Kind, Source, Stage};
use kindling_model::MacAddr;

/// The store.
#[derive(Debug, Default)]
pub struct Store {
    limits: Limits,
    /// Boxed records: the table holds a key and a pointer per slot, not a whole machine.
    machines: HashMap<MacAddr, Box<MachineRec>>,
    /// Client IP -> (MAC, when learned).
    ip_to_mac: HashMap<IpAddr, (MacAddr, u64)>,
    /// Events from IPs with no known MAC yet: IP -> (first arrival, events).
    pending: HashMap<IpAddr, (u64, VecDeque<Event>)>,
    /// Events held by earlier boots (every boot of a machine but its newest), kept at
    /// most `limits.max_earlier_events`.
    earlier_events: usize,
    /// Earlier boots that hold events, as (MAC, start), in the order they ended: the
    /// front loses its events first. Entries of boots since dropped are skipped.
    earlier: VecDeque<(MacAddr, u64)>,
    /// Arrival counter (see `Event::seq`).
    next_seq: u64,
    profiles: ProfileMap,
    /// Events dropped without a machine (pending expired or overflowed).
    pub unattributed: u64,
    /// DHCP events counted as repeats of a stored event (a retry loop).
    pub dhcp_repeats: u64,
    /// Room for an event's key while its repeats are looked for (kept between events).
    scratch: Vec<u8>,
}

impl Store {
    pub fn new(limits: Limits) -> Store {
        Store {
            limits,
            ..Store::default()
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Replaces the profile -> asset paths map (on every reload).
    pub fn set_profiles(&mut self, profiles: ProfileMap) {
        self.profiles = profiles;
    }

    pub fn mac_for_ip(&self, ip: IpAddr) -> Option<MacAddr> {
        self.ip_to_mac.get(&ip).map(|(m, _)| *m)
    }

    /// Everything known about `mac` (text, any form `MacAddr::parse` takes): its summary
    /// and its timeline.
    pub fn detail(&self, mac: &str) -> Option<MachineDetail> {
        let mac = MacAddr::parse(mac).ok()?;
        let m = self.machines.get(&mac)?;
        Some(m.detail(mac))
    }

    /// `detail(mac)`'s summary, without the timeline.
    pub fn summary(&self, mac: MacAddr) -> Option<MachineSummary> {
        let m = self.machines.get(&mac)?;
        Some(m.summary(mac))
    }

    /// The newest stored event of `mac`'s last boot.
    pub fn last_event(&self, mac: MacAddr) -> Option<Event> {
        let m = self.machines.get(&mac)?;
        let mut e = m.boots.back()?.events.newest_first().next()?;
        e.mac = Some(mac);
        Some(e)
    }

    pub fn machine_count(&self) -> usize {
        self.machines.len()
    }

    /// Registers the store's series in `r` (`/metrics`, at each scrape).
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::{counter::ConstCounter, gauge::ConstGauge};
        r.register(
            "kindling_machines",
            "Machines in the in-memory store",
            ConstGauge::new(self.machine_count() as i64),
        );
        r.register(
            "kindling_events_pending",
            "Events waiting for their IP to be tied to a MAC",
            ConstGauge::new(self.pending_events() as i64),
        );
        r.register(
            "kindling_events_unattributed",
            "Events dropped because no MAC could be found for their IP",
            ConstCounter::new(self.unattributed),
        );
        r.register(
            "kindling_dhcp_repeats",
            "DHCP retries counted on the timeline event they repeat instead of stored again",
            ConstCounter::new(self.dhcp_repeats),
        );
    }

    /// Summaries, most recently seen first.
    pub fn summaries(&self) -> Vec<MachineSummary> {
        let mut v: Vec<MachineSummary> = self
            .machines
            .iter()
            .map(|(mac, m)| m.summary(*mac))
            .collect();
        v.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.mac.cmp(&b.mac)));
        v
    }

    /// Ties `ip` to `mac` (later ties win).
    pub fn learn_ip(&mut self, ip: IpAddr, mac: MacAddr, ts: u64) {
        if ip.is_unspecified() {
            return;
        }
        self.ip_to_mac.insert(ip, (mac, ts));
        let cap = self.limits.max_machines.saturating_mul(4).max(16);
        if self.ip_to_mac.len() > cap
            && let Some(oldest) = self
                .ip_to_mac
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| *k)
        {
            self.ip_to_mac.remove(&oldest);
        }
    }

    /// Takes a live event. Events without a MAC are tied through their IP or kept
    /// pending until the IP is learned. Returns the events now attributed to a machine,
    /// in the order they were applied (journal and broadcast these).
    pub fn ingest(&mut self, mut ev: Event) -> Vec<Event> {
        self.next_seq += 1;
        ev.seq = self.next_seq;
        self.expire_pending(ev.ts);
        if ev.mac.is_none() {
            let Some(ip) = ev.ip else {
                self.unattributed += 1;
                return Vec::new();
            };
            match self.mac_for_ip(ip) {
                Some(m) => ev.mac = Some(m),
                None => {
                    self.park(ip, ev);
                    return Vec::new();
                }
            }
        }
        let (newly_tied, inserted) = self.apply(&mut ev);
        let mut out = Vec::new();
        if let Some((ip, mac)) = newly_tied
            && let Some((_, waiting)) = self.pending.remove(&ip)
        {
            // The waiting events arrived earlier (lower seq): apply() places them
            // by (time, arrival) before the event that tied their IP.
            for mut w in waiting {
                w.mac = Some(mac);
                if self.apply(&mut w).1 {
                    out.push(w);
                }
            }
        }
        // Journal in arrival order, so a replay rebuilds the same timeline.
        // A repeat (counted on the previous event) is neither journaled nor
        // broadcast: a machine in a retry loop costs no memory and no disk.
        if inserted {
            out.push(ev);
        }
        out
    }

    /// Re-applies a journaled event (MAC already set) at start-up.
    pub fn replay(&mut self, mut ev: Event) {
        if ev.mac.is_some() {
            self.next_seq += 1;
            ev.seq = self.next_seq;
            self.apply(&mut ev);
        }
    }

    fn park(&mut self, ip: IpAddr, ev: Event) {
        let ts = ev.ts;
        if !self.pending.contains_key(&ip)
            && self.pending.len() >= self.limits.max_pending_ips
            && let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| *k)
            && let Some((_, q)) = self.pending.remove(&oldest)
        {
            self.unattributed += q.len() as u64;
        }
        let entry = self
            .pending
            .entry(ip)
            .or_insert_with(|| (ts, VecDeque::new()));
        entry.1.push_back(ev);
        if entry.1.len() > self.limits.max_pending_events {
            entry.1.pop_front();
            self.unattributed += 1;
        }
    }

    /// Drops waiting events older than the TTL.
    pub fn expire_pending(&mut self, now: u64) {
        let ttl = self.limits.pending_ttl_ms;
        let mut dropped = 0u64;
        self.pending.retain(|_, (first, q)| {
            if now.saturating_sub(*first) > ttl {
                dropped += q.len() as u64;
                false
            } else {
                true
            }
        });
        self.unattributed += dropped;
    }

    /// Number of events waiting for their IP to be tied to a MAC.
    pub fn pending_events(&self) -> usize {
        self.pending.values().map(|(_, q)| q.len()).sum()
    }

    /// Applies one event that has a MAC to its machine (filling in the stage of an asset
    /// request from the machine's profile): returns the (ip, mac) pair it newly tied, and
    /// whether it was stored (false: counted as a repeat).
    fn apply(&mut self, ev: &mut Event) -> (Option<(IpAddr, MacAddr)>, bool) {
        let Some(mac) = ev.mac else {
            return (None, false);
        };
        let ts = ev.ts;
        if !self.machines.contains_key(&mac) {
            self.evict_for_new();
            self.machines.insert(mac, Box::new(MachineRec::new(ts)));
        }
        let Some(m) = self.machines.get_mut(&mac) else {
            return (None, false);
        };
        m.last_seen = m.last_seen.max(ts);
        // Stage of an asset download (the observer leaves it to the store): by the
        // profile this machine got, as of the events before this one.
        if ev.stage.is_none()
            && let Detail::Http(h) = &ev.detail
        {
            let profile = h.profile.clone().or_else(|| m.profile());
            let paths = profile.and_then(|p| self.profiles.get(&*p));
            ev.stage = h.endpoint.and_then(|e| http_stage(e, &h.path, paths));
        }
        let mut tied = None;
        if let Some(ip) = ev.ip.filter(|ip| !ip.is_unspecified()) {
            let known = match self.ip_to_mac.get_mut(&ip) {
                Some((x, t)) if *x == mac => {
                    *t = (*t).max(ts);
                    true
                }
                _ => false,
            };
            if !known {
                self.learn_ip(ip, mac, ts);
                tied = Some((ip, mac));
            }
        }
        let limits = self.limits;
        let Some(m) = self.machines.get_mut(&mac) else {
            return (tied, false);
        };
        // Boot splitting.
        let new_boot = m
            .boots
            .back()
            .is_none_or(|b| b.ends_before(ev, limits.boot_gap_ms));
        if new_boot {
            if let Some(ended) = m.boots.back_mut().filter(|b| !b.events.is_empty()) {
                // An earlier boot never grows again.
                ended.events.shrink();
                self.earlier_events += ended.events.len();
                self.earlier.push_back((mac, ended.started));
            }
            // The oldest goes first, so the queue never holds more than max_boots.
            let max_boots = limits.max_boots.max(1);
            while m.boots.len() >= max_boots {
                if let Some(old) = m.boots.pop_front() {
                    self.earlier_events = self.earlier_events.saturating_sub(old.events.len());
                }
            }
            room_for_one(&mut m.boots, max_boots);
            m.boots.push_back(BootRec::new(ts));
        }
        let Some(boot) = m.boots.back_mut() else {
            return (tied, false);
        };
        boot.last_event = boot.last_event.max(ts);
        // Stage and error bookkeeping first: a repeat still says where the boot is.
        if ev.ok {
            if let Some(st) = ev.stage
                && ev.kind() != Kind::DhcpSeen
            {
                boot.reached(st);
            }
        } else {
            let message = match &ev.reason {
                Some(r) => format!("{}: {r}", ev.what()),
                None => ev.what().to_string(),
            };
            boot.error = Some(Box::new(BootError {
                stage: ev.stage,
                message,
                ts,
            }));
        }
        // A retry loop (one event, or a cycle such as DISCOVER/OFFER or
        // DISCOVER/OFFER/REQUEST/ACK) is counted on the event it repeats instead of
        // being stored again: a machine stuck in a loop costs no memory and no disk.
        if !new_boot && boot.count_repeat(ev, &mut self.scratch) {
            if ev.source() == Source::Dhcp {
                self.dhcp_repeats += 1;
            }
            return (tied, false);
        }
        // In time order (events tied late may be older than the newest).
        boot.note(ev);
        boot.events.insert(ev);
        while boot.events.len() > limits.max_events.max(1) {
            boot.events.pop_front();
            boot.dropped_events += 1;
        }
        if new_boot {
            self.trim_earlier();
        }
        (tied, true)
    }

    /// Keeps the earlier boots' events within `max_earlier_events`: the boots that
    /// ended longest ago (any machine's) keep their summary and lose their events,
    /// counted in `dropped_events`.
    fn trim_earlier(&mut self) {
        let budget = self.limits.max_earlier_events;
        while self.earlier_events > budget {
            let Some((mac, started)) = self.earlier.pop_front() else {
                break;
            };
            let Some(m) = self.machines.get_mut(&mac) else {
                continue;
            };
            let earlier = m.boots.len().saturating_sub(1);
            if let Some(b) = m
                .boots
                .iter_mut()
                .take(earlier)
                .find(|b| b.started == started && !b.events.is_empty())
            {
                let n = b.events.len();
                b.events = Default::default();
                b.dropped_events += n as u64;
                self.earlier_events = self.earlier_events.saturating_sub(n);
            }
        }
        // Entries of boots dropped since (max_boots, evicted machines) are skipped when
        // they come up; when they are most of the queue, they go at once.
        if self.earlier.len() > 2 * self.earlier_events + 64 {
            let machines = &self.machines;
            self.earlier.retain(|(mac, started)| {
                machines.get(mac).is_some_and(|m| {
                    let earlier = m.boots.len().saturating_sub(1);
                    m.boots
                        .iter()
                        .take(earlier)
                        .any(|b| b.started == *started && !b.events.is_empty())
                })
            });
        }
    }

    /// Events held by earlier boots (see `Limits::max_earlier_events`).
    pub fn earlier_events(&self) -> usize {
        self.earlier_events
    }

    /// Makes room for a new machine. Evicts the least recently seen eighth
    /// of the store in one pass, so a storm of new machines costs O(log n)
    /// per machine instead of a scan each.
    fn evict_for_new(&mut self) {
        let max = self.limits.max_machines.max(1);
        if self.machines.len() < max {
            return;
        }
        let target = max - (max / 8).max(1);
        let mut by_age: Vec<(u64, MacAddr)> = self
            .machines
            .iter()
            .map(|(mac, m)| (m.last_seen, *mac))
            .collect();
        by_age.sort_unstable();
        let excess = self.machines.len() - target.min(self.machines.len());
        let gone: std::collections::HashSet<MacAddr> = by_age
            .into_iter()
            .take(excess)
            .map(|(_, mac)| mac)
            .collect();
        for mac in &gone {
            if let Some(m) = self.machines.remove(mac) {
                let earlier = m.boots.len().saturating_sub(1);
                let held: usize = m.boots.iter().take(earlier).map(|b| b.events.len()).sum();
                self.earlier_events = self.earlier_events.saturating_sub(held);
            }
        }
        self.ip_to_mac.retain(|_, (m, _)| !gone.contains(m));
    }
}

impl Store {
    /// Stage of an `/assets/` download for the machine behind `mac` or `ip`.
    pub fn asset_stage(&self, mac: Option<MacAddr>, ip: IpAddr, path: &str) -> Option<Stage> {
        let mac = mac.or_else(|| self.mac_for_ip(ip))?;
        let m = self.machines.get(&mac)?;
        let pp = m.profile().and_then(|p| self.profiles.get(&*p));
        http_stage(Endpoint::Assets, path, pp)
    }
}
