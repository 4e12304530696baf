//! Full DHCP mode: Kindling hands out addresses itself (`[dhcp] mode = "full"`), for labs
//! and racks with no other DHCP server.
//!
//! * `leases`: the sans-I/O lease table (pools, reservations, RFC 2131 address choice,
//!   offers, bindings, declines, releases, expiry);
//! * `log`: the append-only lease log on disk (replayed at start, compacted atomically);
//! * `decide`: one datagram and the table in, a reply with an address (and the proxy's boot
//!   answer for PXE clients) or a reason for silence out.

pub mod decide;
pub mod leases;
pub mod log;

#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;

use crate::config::FullConfig;
use crate::full::leases::PoolSpec;

/// The lease table's pools for `full`: its ranges and reservations, never handing out this
/// host's own addresses (`local`), a router, or a DNS or NTP server.
pub fn pool_specs(full: &FullConfig, local: &[Ipv4Addr]) -> Vec<PoolSpec> {
    full.subnets
        .iter()
        .map(|n| {
            let mut excluded: Vec<Ipv4Addr> = local.to_vec();
            excluded.extend(n.router);
            excluded.extend(n.dns_servers.iter().chain(&n.ntp_servers).copied());
            excluded.retain(|a| n.contains(*a));
            excluded.sort();
            excluded.dedup();
            PoolSpec {
                network: n.network,
                prefix: n.prefix,
                ranges: n.ranges.clone(),
                reservations: full
                    .reservations
                    .iter()
                    .filter(|r| n.contains(r.ip))
                    .map(|r| (r.mac, r.ip))
                    .collect(),
                excluded,
            }
        })
        .collect()
}
