//! The store's public types: its bounds ([`Limits`]), a [`Boot`] (kept as it is, events
//! and all) and its [`BootError`], and what readers get of a machine: the
//! [`MachineSummary`]/[`MachineDetail`] rows of the API and the CLI, made on each read.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::event::{Event, Stage, format_ts};

/// Bounds of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Machines kept (the least recently seen is evicted).
    pub max_machines: usize,
    /// Boots kept per machine (oldest evicted).
    pub max_boots: usize,
    /// Events kept per boot (oldest evicted, counted in `dropped_events`).
    pub max_events: usize,
    /// Events kept across every machine's earlier boots (all but its newest): beyond,
    /// the earliest-ended boots lose their events (counted in `dropped_events`) and keep
    /// their summary (start, last stage, error). Bounds the timeline's memory whatever
    /// the fleet's size or reboot rate; a machine's newest boot is bounded by
    /// `max_events` alone.
    pub max_earlier_events: usize,
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
            max_earlier_events: 20_000,
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

/// One boot of one machine, as readers get it (the store keeps its events encoded, see
/// `log`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Boot {
    pub started: u64,
    pub last_event: u64,
    /// Furthest stage reached successfully.
    pub last_stage: Option<Stage>,
    /// The last failure not followed by a success at the same or a later stage (boxed:
    /// most boots have none).
    pub error: Option<Box<BootError>>,
    /// Events dropped from the front because of `max_events`.
    pub dropped_events: u64,
    pub events: VecDeque<Event>,
}

/// A [`Boot`] in JSON: its fields and `started_at`, the start in text.
impl Serialize for Boot {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Boot", 7)?;
        st.serialize_field("started", &self.started)?;
        st.serialize_field("started_at", &format_ts(self.started))?;
        st.serialize_field("last_event", &self.last_event)?;
        st.serialize_field("last_stage", &self.last_stage)?;
        st.serialize_field("error", &self.error)?;
        st.serialize_field("dropped_events", &self.dropped_events)?;
        st.serialize_field("events", &self.events)?;
        st.end()
    }
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
    /// `installed` (its next boots go to its disk) or `discovered` (no group selects
    /// it), from the lifecycle store; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<String>,
    /// Its DHCP lease, when this server hands out addresses (full DHCP mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseSummary>,
}

/// A full-mode DHCP lease, as `/api/v1/leases` and the machine views show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseSummary {
    pub mac: String,
    pub ip: String,
    /// `offered`, `bound`, `released`, `declined` (held back after a conflict) or `free`.
    pub state: String,
    /// Unix seconds: the end of the lease, offer or hold (the release time once released).
    pub expires: u64,
    pub expires_at: String,
    /// The client's host name (option 12) or its reservation's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

impl From<kindling_dhcp::full::leases::Lease> for LeaseSummary {
    fn from(l: kindling_dhcp::full::leases::Lease) -> Self {
        LeaseSummary {
            mac: kindling_dhcp::policy::format_mac(&l.mac),
            ip: l.ip.to_string(),
            state: l.state.label().to_string(),
            expires: l.expires,
            expires_at: format_ts(l.expires.saturating_mul(1000)),
            hostname: l.hostname,
        }
    }
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
    /// The machine's lifecycle record (install, discovery), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_record: Option<kindling_model::MachineRecord>,
}
