//! The bounded in-memory store: machines by MAC, their last boots, IP -> MAC ties.
//! Sans-I/O: every input carries its own timestamp.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::classify::{ProfileMap, http_stage};
use crate::event::{Event, Kind, Source, Stage, format_ts};

/// Bounds of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Machines kept (the least recently seen is evicted).
    pub max_machines: usize,
    /// Boots kept per machine (oldest evicted).
    pub max_boots: usize,
    /// Events kept per boot (oldest evicted, counted in `dropped_events`).
    pub max_events: usize,
    /// A gap longer than this (ms) between two events of a machine starts a new boot.
    pub boot_gap_ms: u64,
    /// Events whose IP has no known MAC wait this long (ms) to be tied to one.
    pub pending_ttl_ms: u64,
    /// Client IPs with waiting events (oldest dropped).
    pub max_pending_ips: usize,
    /// Waiting events per IP.
    pub max_pending_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_machines: 10_000,
            max_boots: 5,
            max_events: 200,
            boot_gap_ms: 15 * 60 * 1000,
            pending_ttl_ms: 10 * 60 * 1000,
            max_pending_ips: 256,
            max_pending_events: 32,
        }
    }
}

/// The error that stopped a boot (so far).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootError {
    /// Stage at which it failed (`None`: a request that is no boot step).
    pub stage: Option<Stage>,
    pub message: String,
    pub ts: u64,
}

/// One boot of one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Boot {
    pub started: u64,
    pub started_at: String,
    pub last_event: u64,
    /// Furthest stage reached successfully.
    pub last_stage: Option<Stage>,
    /// The last failure not followed by a success at the same or a later stage.
    pub error: Option<BootError>,
    /// Events dropped from the front because of `max_events`.
    pub dropped_events: u64,
    pub events: VecDeque<Box<Event>>,
}

impl Boot {
    fn new(ts: u64) -> Boot {
        Boot {
            started: ts,
            started_at: format_ts(ts),
            last_event: ts,
            last_stage: None,
            error: None,
            dropped_events: 0,
            events: VecDeque::new(),
        }
    }

    /// Got past DHCP (successfully or not): a new firmware DISCOVER is then a new boot.
    fn beyond_dhcp(&self) -> bool {
        self.last_stage.is_some_and(|s| s > Stage::Dhcp)
            || self.events.iter().any(|e| e.source() != Source::Dhcp)
    }

    /// Got to a boot script (or further): iPXE only asks DHCP again when it starts anew.
    fn reached_script(&self) -> bool {
        self.last_stage.is_some_and(|s| s >= Stage::Script)
            || self
                .events
                .iter()
                .any(|e| e.stage.is_some_and(|s| s >= Stage::Script))
    }
}

/// What is known about one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub mac: String,
    pub ip: Option<String>,
    pub arch: Option<String>,
    pub firmware: Option<String>,
    pub vendor_class: Option<String>,
    pub user_class: Option<String>,
    pub group: Option<String>,
    pub profile: Option<String>,
    pub first_seen: u64,
    pub last_seen: u64,
    /// Oldest first.
    pub boots: VecDeque<Box<Boot>>,
}

/// One row of `kindling machines` / `/api/v1/machines`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineSummary {
    pub mac: String,
    pub ip: Option<String>,
    pub arch: Option<String>,
    pub firmware: Option<String>,
    pub group: Option<String>,
    pub profile: Option<String>,
    /// Furthest stage of the last boot.
    pub last_stage: Option<Stage>,
    pub last_seen: u64,
    pub last_seen_at: String,
    /// Why the last boot stopped, if it failed.
    pub last_error: Option<BootError>,
    pub boots: usize,
    pub last_boot_started: Option<u64>,
}

/// `/api/v1/machines/{mac}` and `kindling machines show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineDetail {
    #[serde(flatten)]
    pub summary: MachineSummary,
    pub vendor_class: Option<String>,
    pub user_class: Option<String>,
    pub first_seen: u64,
    /// Oldest first; events in time order.
    pub timeline: Vec<Boot>,
}

impl Machine {
    fn new(mac: &str, ts: u64) -> Machine {
        Machine {
            mac: mac.to_string(),
            ip: None,
            arch: None,
            firmware: None,
            vendor_class: None,
            user_class: None,
            group: None,
            profile: None,
            first_seen: ts,
            last_seen: ts,
            boots: VecDeque::new(),
        }
    }

    pub fn summary(&self) -> MachineSummary {
        let last = self.boots.back();
        MachineSummary {
            mac: self.mac.clone(),
            ip: self.ip.clone(),
            arch: self.arch.clone(),
            firmware: self.firmware.clone(),
            group: self.group.clone(),
            profile: self.profile.clone(),
            last_stage: last.and_then(|b| b.last_stage),
            last_seen: self.last_seen,
            last_seen_at: format_ts(self.last_seen),
            last_error: last.and_then(|b| b.error.clone()),
            boots: self.boots.len(),
            last_boot_started: last.map(|b| b.started),
        }
    }

    pub fn detail(&self) -> MachineDetail {
        MachineDetail {
            summary: self.summary(),
            vendor_class: self.vendor_class.clone(),
            user_class: self.user_class.clone(),
            first_seen: self.first_seen,
            timeline: self.boots.iter().map(|b| (**b).clone()).collect(),
        }
    }
}

/// The store.
#[derive(Debug, Default)]
pub struct Store {
    limits: Limits,
    machines: HashMap<String, Machine>,
    /// Client IP -> (MAC, when learned).
    ip_to_mac: HashMap<String, (String, u64)>,
    /// Events from IPs with no known MAC yet: IP -> (first arrival, events).
    pending: HashMap<String, (u64, VecDeque<Event>)>,
    /// Arrival counter (see `Event::seq`).
    next_seq: u64,
    profiles: ProfileMap,
    /// Events dropped without a machine (pending expired or overflowed).
    pub unattributed: u64,
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

    pub fn mac_for_ip(&self, ip: &str) -> Option<&str> {
        self.ip_to_mac.get(ip).map(|(m, _)| m.as_str())
    }

    pub fn machine(&self, mac: &str) -> Option<&Machine> {
        self.machines.get(mac)
    }

    pub fn machine_count(&self) -> usize {
        self.machines.len()
    }

    /// Summaries, most recently seen first.
    pub fn summaries(&self) -> Vec<MachineSummary> {
        let mut v: Vec<MachineSummary> = self.machines.values().map(Machine::summary).collect();
        v.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.mac.cmp(&b.mac)));
        v
    }

    /// Ties `ip` to `mac` (later ties win).
    pub fn learn_ip(&mut self, ip: &str, mac: &str, ts: u64) {
        if ip.is_empty() || ip == "0.0.0.0" {
            return;
        }
        self.ip_to_mac.insert(ip.to_string(), (mac.to_string(), ts));
        let cap = self.limits.max_machines.saturating_mul(4).max(16);
        if self.ip_to_mac.len() > cap
            && let Some(oldest) = self
                .ip_to_mac
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
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
            let Some(ip) = ev.ip.clone() else {
                self.unattributed += 1;
                return Vec::new();
            };
            match self.mac_for_ip(&ip) {
                Some(m) => ev.mac = Some(m.to_string()),
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
                w.mac = Some(mac.clone());
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

    fn park(&mut self, ip: String, ev: Event) {
        let ts = ev.ts;
        if !self.pending.contains_key(&ip)
            && self.pending.len() >= self.limits.max_pending_ips
            && let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone())
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

    /// Applies an event that has a MAC. Fills in the stage of asset requests from the
    /// machine's profile. Returns `(ip, mac)` when this event tied a new IP.
    /// Applies one event to its machine: returns the (ip, mac) pair it newly
    /// tied, and whether it was stored (false: counted as a repeat).
    fn apply(&mut self, ev: &mut Event) -> (Option<(String, String)>, bool) {
        let Some(mac) = ev.mac.clone() else {
            return (None, false);
        };
        let ts = ev.ts;
        if !self.machines.contains_key(&mac) {
            self.evict_for_new();
        }
        let m = self
            .machines
            .entry(mac.clone())
            .or_insert_with(|| Machine::new(&mac, ts));
        // Stage of asset downloads: by the profile this machine got.
        if ev.kind == Kind::HttpRequest && ev.stage.is_none() {
            let endpoint = ev.endpoint.as_deref().unwrap_or("");
            let path = ev.path.as_deref().unwrap_or("");
            let profile = ev.profile.as_ref().or(m.profile.as_ref());
            ev.stage = http_stage(endpoint, path, profile.and_then(|p| self.profiles.get(p)));
        }
        // Machine facts.
        m.last_seen = m.last_seen.max(ts);
        if let Some(a) = &ev.arch {
            m.arch = Some(a.clone());
        }
        if let Some(f) = &ev.firmware
            && (f != "ipxe" || m.firmware.is_none())
        {
            m.firmware = Some(f.clone());
        }
        if let Some(v) = &ev.vendor_class {
            m.vendor_class = Some(v.clone());
        }
        if let Some(v) = &ev.user_class {
            m.user_class = Some(v.clone());
        }
        if let Some(g) = &ev.group {
            m.group = Some(g.clone());
        }
        if let Some(p) = &ev.profile {
            m.profile = Some(p.clone());
        }
        let mut tied = None;
        if let Some(ip) = ev.ip.clone().filter(|i| i != "0.0.0.0") {
            m.ip = Some(ip.clone());
            let known = self
                .ip_to_mac
                .get(&ip)
                .map(|(x, _)| x == &mac)
                .unwrap_or(false);
            self.learn_ip(&ip, &mac, ts);
            if !known {
                tied = Some((ip, mac.clone()));
            }
        }
        let limits = self.limits;
        let Some(m) = self.machines.get_mut(&mac) else {
            return (tied, false);
        };
        // Boot splitting.
        let new_boot = match m.boots.back() {
            None => true,
            Some(b) => {
                ts.saturating_sub(b.last_event) > limits.boot_gap_ms
                    || (ev.is_firmware_discover() && b.beyond_dhcp())
                    || (ev.is_ipxe_discover() && b.reached_script())
            }
        };
        if new_boot {
            m.boots.push_back(Box::new(Boot::new(ts)));
            while m.boots.len() > limits.max_boots.max(1) {
                m.boots.pop_front();
            }
        }
        let Some(boot) = m.boots.back_mut() else {
            return (tied, false);
        };
        boot.last_event = boot.last_event.max(ts);
        if !new_boot
            && let Some(last) = boot.events.back_mut()
            && last.seq < ev.seq
            && last.ts <= ts
            && last.same_as(ev)
        {
            last.repeats += 1;
            last.last_ts = ts;
            return (tied, false);
        }
        if ev.ok {
            if let Some(st) = ev.stage
                && ev.kind != Kind::DhcpSeen
            {
                boot.last_stage = Some(boot.last_stage.map_or(st, |s| s.max(st)));
                if boot
                    .error
                    .as_ref()
                    .is_some_and(|e| e.stage.is_none_or(|es| st >= es))
                {
                    boot.error = None;
                }
            }
        } else {
            let mut message = ev.what.clone();
            if let Some(r) = &ev.reason {
                message.push_str(": ");
                message.push_str(r);
            }
            boot.error = Some(BootError {
                stage: ev.stage,
                message,
                ts,
            });
        }
        // Keep time order (events tied late may be older than the newest).
        let pos = boot
            .events
            .iter()
            .rposition(|e| (e.ts, e.seq) <= (ts, ev.seq))
            .map(|p| p + 1)
            .unwrap_or(0);
        boot.events.insert(pos, Box::new(ev.clone()));
        while boot.events.len() > limits.max_events.max(1) {
            boot.events.pop_front();
            boot.dropped_events += 1;
        }
        (tied, true)
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
        let mut by_age: Vec<(u64, String)> = self
            .machines
            .values()
            .map(|m| (m.last_seen, m.mac.clone()))
            .collect();
        by_age.sort_unstable();
        let excess = self.machines.len() - target.min(self.machines.len());
        let gone: std::collections::HashSet<String> = by_age
            .into_iter()
            .take(excess)
            .map(|(_, mac)| mac)
            .collect();
        for mac in &gone {
            self.machines.remove(mac);
        }
        self.ip_to_mac.retain(|_, (m, _)| !gone.contains(m));
    }
}

impl Store {
    /// Stage of an `/assets/` download for the machine behind `mac` or `ip`.
    pub fn asset_stage(&self, mac: Option<&str>, ip: &str, path: &str) -> Option<Stage> {
        let mac = mac.or_else(|| self.mac_for_ip(ip))?;
        let m = self.machines.get(mac)?;
        let pp = m.profile.as_ref().and_then(|p| self.profiles.get(p));
        http_stage("assets", path, pp)
    }
}
