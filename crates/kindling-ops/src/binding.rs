//! The opt-in Ignition binding (`[http] ignition_binding = true`): `/ignition`, `/generic`,
//! `/cloud` and `/metadata` by MAC are answered only to an address that MAC was seen
//! booting from.
//!
//! Evidence, strongest first:
//! 1. the kernel's neighbour table (`/proc/net/arp`): when it has an entry for the caller,
//!    that entry decides: the caller's link-layer address must be the MAC asked for (on the
//!    server's own link this is what the kernel saw on the wire, not what the client wrote
//!    in a packet);
//! 2. otherwise (a caller behind a relay or router has no entry), the addresses the PXE
//!    requests of that MAC came from: the source of its port-4011 REQUESTs.
//!
//! MACs written by clients in URLs (`?mac=`) never bind anything: they are what is being
//! checked. The table is bounded ([`BindTable::MAX_MACS`] MACs, [`BindTable::MAX_IPS`]
//! addresses each; the least recently seen go first).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use kindling_model::MacAddr;

/// MAC -> the addresses its PXE requests came from.
#[derive(Debug, Default)]
pub struct BindTable {
    map: HashMap<[u8; 6], Entry>,
}

#[derive(Debug)]
struct Entry {
    ips: Vec<Ipv4Addr>,
    seen: Instant,
}

impl BindTable {
    pub const MAX_MACS: usize = 16_384;
    pub const MAX_IPS: usize = 4;

    /// `mac` was seen booting from `ip`.
    pub fn note(&mut self, mac: [u8; 6], ip: Ipv4Addr, now: Instant) {
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
            return;
        }
        if !self.map.contains_key(&mac) && self.map.len() >= Self::MAX_MACS {
            self.evict_oldest_eighth();
        }
        let e = self.map.entry(mac).or_insert_with(|| Entry {
            ips: Vec::new(),
            seen: now,
        });
        e.seen = now;
        if let Some(pos) = e.ips.iter().position(|x| *x == ip) {
            // Most recent last.
            let x = e.ips.remove(pos);
            e.ips.push(x);
        } else {
            if e.ips.len() >= Self::MAX_IPS {
                e.ips.remove(0);
            }
            e.ips.push(ip);
        }
    }

    fn evict_oldest_eighth(&mut self) {
        let mut ages: Vec<Instant> = self.map.values().map(|e| e.seen).collect();
        let k = (ages.len() / 8).max(1);
        let (_, cut, _) = ages.select_nth_unstable(k - 1);
        let cut = *cut;
        self.map.retain(|_, e| e.seen > cut);
    }

    pub fn ips(&self, mac: &[u8; 6]) -> &[Ipv4Addr] {
        self.map.get(mac).map_or(&[], |e| e.ips.as_slice())
    }
}

/// The binding decision, pure. `mac` is the MAC asked for; `neighbour` is the caller's
/// neighbour-table entry, if any; `booted_from` the addresses that MAC's PXE requests came
/// from.
pub fn decide(
    mac: MacAddr,
    peer: IpAddr,
    neighbour: Option<MacAddr>,
    booted_from: &[Ipv4Addr],
) -> Result<(), String> {
    if let Some(hw) = neighbour {
        return if hw == mac {
            Ok(())
        } else {
            Err(format!("{peer} is {hw} in the neighbour table, not {mac}"))
        };
    }
    let v4 = match peer {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    if v4.is_some_and(|ip| booted_from.contains(&ip)) {
        return Ok(());
    }
    Err(format!(
        "{peer} was never seen booting {mac} (no PXE request from it, no neighbour entry)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn the_neighbour_table_decides_on_the_link() {
        assert_eq!(decide(M, ip("10.0.0.5"), Some(M), &[]), Ok(()));
        let e = decide(
            M,
            ip("10.0.0.5"),
            Some(MacAddr([0x52, 0x54, 0, 0, 0, 0x99])),
            &[Ipv4Addr::new(10, 0, 0, 5)],
        )
        .unwrap_err();
        assert!(
            e.contains("52:54:00:00:00:99 in the neighbour table"),
            "{e}"
        );
    }

    #[test]
    fn pxe_sources_bind_callers_off_the_link() {
        let from = [Ipv4Addr::new(10, 1, 0, 7)];
        assert_eq!(decide(M, ip("10.1.0.7"), None, &from), Ok(()));
        assert_eq!(decide(M, ip("::ffff:10.1.0.7"), None, &from), Ok(()));
        let e = decide(M, ip("10.1.0.8"), None, &from).unwrap_err();
        assert!(e.contains("never seen booting"), "{e}");
        assert!(decide(M, ip("2001:db8::1"), None, &from).is_err());
    }

    #[test]
    fn table_is_bounded() {
        let mut t = BindTable::default();
        let now = Instant::now();
        let mac = [0x52, 0x54, 0, 0, 0, 1];
        for i in 0..10u8 {
            t.note(mac, Ipv4Addr::new(10, 0, 0, i + 1), now);
        }
        assert_eq!(t.ips(&mac).len(), BindTable::MAX_IPS);
        assert_eq!(
            *t.ips(&mac).last().unwrap_or_else(|| unreachable!()),
            Ipv4Addr::new(10, 0, 0, 10)
        );
        t.note(mac, Ipv4Addr::BROADCAST, now);
        assert!(!t.ips(&mac).contains(&Ipv4Addr::BROADCAST));
        for i in 0..(BindTable::MAX_MACS as u32 + 100) {
            let b = i.to_be_bytes();
            let later = now + std::time::Duration::from_millis(u64::from(i) + 1);
            t.note(
                [2, 0, b[0], b[1], b[2], b[3]],
                Ipv4Addr::new(10, 2, 0, 1),
                later,
            );
        }
        assert!(t.map.len() <= BindTable::MAX_MACS, "{}", t.map.len());
        // The oldest went first.
        assert!(t.ips(&mac).is_empty());
    }
}
