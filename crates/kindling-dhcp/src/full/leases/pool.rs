//! One subnet's pool: its ranges, reservations and exclusions, the next-fit cursor over
//! never-used addresses and the reuse order of used ones (see the lease table's module
//! documentation for the algorithms).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

/// A client hardware address (Ethernet `chaddr`).
pub type Mac = [u8; 6];

/// The address pool of one subnet, as configured. Subnets are referred to by their
/// position in the list given to [`LeaseTable::new`](super::LeaseTable::new).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// The network address (no host bits set).
    pub network: Ipv4Addr,
    /// The prefix length, 1 to 30.
    pub prefix: u8,
    /// Dynamic ranges, inclusive, inside the network, not overlapping. The network and
    /// broadcast addresses are skipped if a range covers them.
    pub ranges: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Fixed addresses by MAC; inside the network, possibly outside the ranges.
    pub reservations: Vec<(Mac, Ipv4Addr)>,
    /// Addresses never handed out dynamically (the server's, the router's); those outside
    /// the network are ignored.
    pub excluded: Vec<Ipv4Addr>,
}

/// A pool specification that cannot be used: which subnet (index and `network/prefix`),
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subnet {subnet} ({net}): {problem}")]
pub struct SpecError {
    /// The subnet's index.
    pub subnet: usize,
    /// The subnet as `network/prefix`.
    pub net: String,
    /// What is wrong.
    pub problem: SpecProblem,
}

/// What is wrong with a [`PoolSpec`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecProblem {
    #[error("the prefix length must be 1 to 30")]
    BadPrefix,
    #[error("host bits are set (the network address is {0})")]
    HostBits(Ipv4Addr),
    #[error("range {0}-{1} ends before it starts")]
    RangeReversed(Ipv4Addr, Ipv4Addr),
    #[error("range {0}-{1} is not inside the network")]
    RangeOutsideNetwork(Ipv4Addr, Ipv4Addr),
    #[error("ranges {0}-{1} and {2}-{3} overlap")]
    RangesOverlap(Ipv4Addr, Ipv4Addr, Ipv4Addr, Ipv4Addr),
    #[error("it overlaps subnet {0} ({1})")]
    SubnetsOverlap(usize, String),
    #[error("reserved address {0} is not inside the network")]
    ReservationOutsideNetwork(Ipv4Addr),
    #[error("reserved address {0} is the network or broadcast address")]
    ReservationUnusable(Ipv4Addr),
    #[error("address {0} is reserved twice")]
    DuplicateReservationIp(Ipv4Addr),
    #[error("MAC {0} has two reservations")]
    DuplicateReservationMac(String),
    #[error("reserved address {0} is also excluded")]
    ReservationExcluded(Ipv4Addr),
    #[error("no usable range address and no reservation")]
    EmptyPool,
}

pub use crate::wire::format_mac;

pub(super) fn mask_of(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

/// One subnet's pool and its allocation state.
#[derive(Debug)]
pub(super) struct Pool {
    pub(super) network: u32,
    pub(super) mask: u32,
    /// Sorted, disjoint, inclusive.
    pub(super) ranges: Vec<(u32, u32)>,
    pub(super) reserved_by_mac: HashMap<Mac, u32>,
    pub(super) reserved_by_ip: HashMap<u32, Mac>,
    pub(super) excluded: HashSet<u32>,
    /// Dynamic addresses (in ranges, not network/broadcast/reserved/excluded).
    pub(super) dyn_total: u64,
    /// Next-fit cursor: range index and next address in it.
    pub(super) cur_range: usize,
    pub(super) cur_next: u64,
    /// Every touched dynamic address and its reuse key (in `by_key` too).
    pub(super) touched: HashMap<u32, u64>,
    pub(super) by_key: BTreeSet<(u64, u32)>,
}

impl Pool {
    pub(super) fn build(spec: &PoolSpec) -> Result<Pool, SpecProblem> {
        use SpecProblem as P;
        if !(1..=30).contains(&spec.prefix) {
            return Err(P::BadPrefix);
        }
        let mask = mask_of(spec.prefix);
        let network = u32::from(spec.network);
        if network & mask != network {
            return Err(P::HostBits(Ipv4Addr::from(network & mask)));
        }
        let broadcast = network | !mask;
        let mut ranges = Vec::with_capacity(spec.ranges.len());
        for &(start, end) in &spec.ranges {
            let (s, e) = (u32::from(start), u32::from(end));
            if s > e {
                return Err(P::RangeReversed(start, end));
            }
            if s & mask != network || e & mask != network {
                return Err(P::RangeOutsideNetwork(start, end));
            }
            ranges.push((s, e));
        }
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            if let [(s1, e1), (s2, e2)] = *w
                && s2 <= e1
            {
                let ip = Ipv4Addr::from;
                return Err(P::RangesOverlap(ip(s1), ip(e1), ip(s2), ip(e2)));
            }
        }
        let excluded: HashSet<u32> = spec.excluded.iter().map(|&ip| u32::from(ip)).collect();
        let (mut reserved_by_mac, mut reserved_by_ip) = (HashMap::new(), HashMap::new());
        for &(mac, ip) in &spec.reservations {
            let a = u32::from(ip);
            if a & mask != network {
                return Err(P::ReservationOutsideNetwork(ip));
            } else if a == network || a == broadcast {
                return Err(P::ReservationUnusable(ip));
            } else if excluded.contains(&a) {
                return Err(P::ReservationExcluded(ip));
            } else if reserved_by_ip.insert(a, mac).is_some() {
                return Err(P::DuplicateReservationIp(ip));
            } else if reserved_by_mac.insert(mac, a).is_some() {
                return Err(P::DuplicateReservationMac(format_mac(&mac)));
            }
        }
        let cur_next = ranges.first().map_or(0, |r| u64::from(r.0));
        let mut pool = Pool {
            network,
            mask,
            ranges,
            reserved_by_mac,
            reserved_by_ip,
            excluded,
            dyn_total: 0,
            cur_range: 0,
            cur_next,
            touched: HashMap::new(),
            by_key: BTreeSet::new(),
        };
        let size: u64 = pool.ranges.iter().map(|&(s, e)| u64::from(e - s) + 1).sum();
        let mut special: HashSet<u32> = pool.excluded.clone();
        special.extend(
            pool.reserved_by_ip
                .keys()
                .copied()
                .chain([network, broadcast]),
        );
        let lost = special.iter().filter(|&&ip| pool.in_ranges(ip)).count() as u64;
        pool.dyn_total = size.saturating_sub(lost);
        if pool.dyn_total == 0 && pool.reserved_by_ip.is_empty() {
            return Err(P::EmptyPool);
        }
        Ok(pool)
    }

    pub(super) fn contains(&self, ip: u32) -> bool {
        ip & self.mask == self.network
    }

    pub(super) fn in_ranges(&self, ip: u32) -> bool {
        let i = self.ranges.partition_point(|r| r.0 <= ip);
        i > 0 && self.ranges.get(i - 1).is_some_and(|r| ip <= r.1)
    }

    /// In a range and handed out dynamically.
    pub(super) fn is_dynamic(&self, ip: u32) -> bool {
        self.contains(ip)
            && ip != self.network
            && ip != (self.network | !self.mask)
            && self.in_ranges(ip)
            && !self.reserved_by_ip.contains_key(&ip)
            && !self.excluded.contains(&ip)
    }

    /// Sets the reuse key of a dynamic address (marking it touched).
    pub(super) fn set_key(&mut self, ip: u32, key: u64) {
        if let Some(old) = self.touched.insert(ip, key) {
            self.by_key.remove(&(old, ip));
        }
        self.by_key.insert((key, ip));
    }

    /// The next never-touched dynamic address (amortized O(1): the cursor only advances).
    pub(super) fn next_fresh(&mut self) -> Option<u32> {
        while let Some(&(start, end)) = self.ranges.get(self.cur_range) {
            self.cur_next = self.cur_next.max(u64::from(start));
            if self.cur_next > u64::from(end) {
                self.cur_range += 1;
                continue;
            }
            let ip = u32::try_from(self.cur_next).ok()?;
            self.cur_next += 1;
            if self.is_dynamic(ip) && !self.touched.contains_key(&ip) {
                return Some(ip);
            }
        }
        None
    }

    /// The longest-reusable touched address, if reusable at `now`.
    pub(super) fn oldest_free(&self, now: u64) -> Option<u32> {
        self.by_key
            .first()
            .filter(|(k, _)| *k <= now)
            .map(|&(_, ip)| ip)
    }
}
