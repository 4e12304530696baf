//! Full DHCP mode seen from the operator's side: the lease table as `/api/v1/leases` and
//! the machine views show it, and the reservations the groups' metadata asks for.

use std::collections::HashMap;

use kindling_model::{MacAddr, Snapshot};

use crate::ops::Ops;
use crate::store::LeaseSummary;

impl Ops {
    /// Hands the DHCP server what this snapshot's groups tell it: full mode's
    /// reservations, and the machines' Secure Boot settings.
    pub(crate) fn note_group_reservations(&self, snap: &Snapshot) {
        let res = group_reservations(snap);
        let sb = group_secure_boot(snap);
        if let Some(h) = self.dhcp_leases.get() {
            h.set_group_reservations(res.clone());
            h.set_group_secure_boot(sb.clone());
        }
        if let Ok(mut g) = self.group_reservations.lock() {
            *g = res;
        }
        if let Ok(mut g) = self.group_secure_boot.lock() {
            *g = sb;
        }
    }

    /// Full DHCP mode's lease table (empty in proxy mode), by address.
    pub fn leases(&self) -> Vec<LeaseSummary> {
        let Some(h) = self.dhcp_leases.get() else {
            return Vec::new();
        };
        let mut v: Vec<LeaseSummary> = h
            .leases()
            .into_iter()
            .map(|l| LeaseSummary {
                mac: kindling_dhcp::policy::format_mac(&l.mac),
                ip: l.ip.to_string(),
                state: l.state.label().to_string(),
                expires: l.expires,
                expires_at: crate::event::format_ts(l.expires.saturating_mul(1000)),
                hostname: l.hostname,
            })
            .collect();
        v.sort_by_key(|l| l.ip.parse::<std::net::Ipv4Addr>().ok());
        v
    }

    /// The DHCP server whose leases the machine views and `/api/v1/leases` show.
    pub fn add_dhcp_leases(&self, leases: kindling_dhcp::LeasesHandle) {
        if let Ok(g) = self.group_reservations.lock() {
            leases.set_group_reservations(g.clone());
        }
        if let Ok(g) = self.group_secure_boot.lock() {
            leases.set_group_secure_boot(g.clone());
        }
        let _ = self.dhcp_leases.set(leases);
    }
}

/// The machines whose group says `secure_boot`, by MAC (groups whose selector names a
/// `mac`; DHCP knows no other label). When a machine's groups disagree, `true` wins: a
/// machine with Secure Boot on cannot run iPXE at all.
fn group_secure_boot(snap: &Snapshot) -> HashMap<[u8; 6], bool> {
    let mut out = HashMap::new();
    for g in snap.index.groups() {
        let (Some(on), Some(mac)) = (
            g.secure_boot,
            g.selector.get("mac").and_then(|m| MacAddr::parse(m).ok()),
        ) else {
            continue;
        };
        let v = out.entry(mac.0).or_insert(on);
        *v |= on;
    }
    out
}

/// Full DHCP reservations from the groups: a group whose selector names one `mac` and
/// whose metadata has an IPv4 `ip` (and optionally a `hostname`) fixes that machine's
/// address, as matchbox users already write it for their templates.
fn group_reservations(snap: &Snapshot) -> Vec<kindling_dhcp::config::Reservation> {
    let mut out = Vec::new();
    for g in snap.index.groups() {
        let Some(mac) = g.selector.get("mac").and_then(|m| MacAddr::parse(m).ok()) else {
            continue;
        };
        let meta = g.metadata();
        let Some(ip) = meta
            .get("ip")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<std::net::Ipv4Addr>().ok())
        else {
            continue;
        };
        let hostname = meta
            .get("hostname")
            .and_then(|v| v.as_str())
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 63
                    && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .map(str::to_string);
        out.push(kindling_dhcp::config::Reservation {
            mac: mac.0,
            ip,
            hostname,
        });
    }
    out
}
