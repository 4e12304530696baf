//! The sans-I/O lease table: pools, reservations, RFC 2131 address choice, offers,
//! bindings, releases, declines and conflict holds. No clocks (`now` is passed in, unix
//! seconds), no files (every change is queued for [`LeaseTable::drain_changes`]).
//!
//! Leases are keyed by client MAC and subnet, never by client-id (option 61): PXE firmware
//! and the operating system it boots must get the same address. One record per MAC per
//! subnet; each address has at most one holder record, so records never outnumber the
//! addresses of the pools.
//!
//! Expiry is lazy: a lease whose `expires <= now` counts as expired, nothing sweeps.
//!
//! Allocation, per subnet: a next-fit cursor walks the ranges once over the table's life
//! handing out never-used addresses (amortized O(1), skipping reserved, excluded and
//! already-touched ones); every touched dynamic address sits in an ordered set keyed by
//! the time it became (or becomes) reusable: lease expiry, release time, hold end. When the
//! cursor is exhausted the first entry of that set is the longest-expired address, if its
//! key is `<= now`. So `offer`, `request`, `release`, `decline` and `conflict` cost
//! O(log n) (n = touched addresses of the subnet) plus O(subnets) to find a subnet by
//! address; memory grows with touched addresses only, never with the size of the ranges.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use self::pool::Pool;
pub use self::pool::{Mac, PoolSpec, SpecError, SpecProblem, format_mac};

/// The longest hostname kept, in bytes (a DNS label); longer ones are cut.
pub const MAX_HOSTNAME: usize = 63;

/// The state of a [`Lease`] record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// Offered, held for the client until `expires` (the offer hold).
    Offered,
    /// Bound (ACKed) until `expires`.
    Bound,
    /// Released by the client (`expires` = release time); free for others, but the same
    /// MAC gets it back while nobody else took it.
    Released,
    /// A decline or conflict hold: the address is unusable until `expires`. Not a lease of
    /// `mac` (the decliner, or all-zero for a conflict found by the server's probe).
    Declined,
    /// A tombstone in the change stream: `mac` no longer holds `ip`. Never in the table.
    Free,
}

impl LeaseState {
    /// Every state.
    pub const ALL: [LeaseState; 5] = [
        Self::Offered,
        Self::Bound,
        Self::Released,
        Self::Declined,
        Self::Free,
    ];

    /// The stable snake_case label (also the lease log's spelling).
    pub fn label(self) -> &'static str {
        match self {
            Self::Offered => "offered",
            Self::Bound => "bound",
            Self::Released => "released",
            Self::Declined => "declined",
            Self::Free => "free",
        }
    }

    /// The state with this label.
    pub fn from_label(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.label() == s)
    }
}

/// One lease record (or hold, or tombstone: see [`LeaseState`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The client.
    pub mac: Mac,
    /// The address.
    pub ip: Ipv4Addr,
    /// The subnet index; derived from `ip` by the table ([`LeaseTable::restore`] resets it,
    /// the lease log does not store it).
    pub subnet: usize,
    /// What the record means.
    pub state: LeaseState,
    /// Unix seconds: end of the offer hold, of the binding, of the decline hold, or the
    /// release time.
    pub expires: u64,
    /// The client's hostname (option 12), at most [`MAX_HOSTNAME`] bytes.
    pub hostname: Option<String>,
}

impl Lease {
    /// Offered or bound, and not expired at `now`: the address is taken.
    pub fn is_active(&self, now: u64) -> bool {
        matches!(self.state, LeaseState::Offered | LeaseState::Bound) && self.expires > now
    }
}

/// Why [`LeaseTable::offer`] has no address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum NoAddress {
    /// No subnet with that index.
    #[error("unknown subnet")]
    UnknownSubnet,
    /// Every dynamic address is taken or held.
    #[error("address pool exhausted")]
    Exhausted,
}

impl NoAddress {
    /// The stable snake_case label.
    pub fn label(self) -> &'static str {
        match self {
            Self::UnknownSubnet => "unknown_subnet",
            Self::Exhausted => "pool_exhausted",
        }
    }
}

/// Why [`LeaseTable::request`] refuses (the reply is a DHCPNAK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Nak {
    /// The address is not in the subnet (or the subnet index is unknown).
    #[error("address not in the client's subnet")]
    NotInSubnet,
    /// Another MAC holds it (offered or bound, unexpired).
    #[error("address taken by another client")]
    TakenByOther,
    /// It is reserved for another MAC.
    #[error("address reserved for another client")]
    ReservedForOther,
    /// The client has a (usable) reservation for another address.
    #[error("client has a reservation for another address")]
    HasReservation,
    /// In the subnet but not in a range (or network, broadcast, excluded).
    #[error("address not in the pool")]
    NotInPool,
    /// Under a decline or conflict hold.
    #[error("address declined or in conflict")]
    Declined,
}

impl Nak {
    /// The stable snake_case label.
    pub fn label(self) -> &'static str {
        match self {
            Self::NotInSubnet => "not_in_subnet",
            Self::TakenByOther => "taken_by_other",
            Self::ReservedForOther => "reserved_for_other",
            Self::HasReservation => "client_has_reservation",
            Self::NotInPool => "not_in_pool",
            Self::Declined => "declined",
        }
    }
}

/// What [`LeaseTable::restore`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Records applied (leases and holds; a later record may supersede an earlier one).
    pub restored: usize,
    /// Records dropped: address in no subnet, not in a range nor reserved for that MAC,
    /// excluded, or reserved for another MAC.
    pub dropped: usize,
}

/// Parses `aa:bb:cc:dd:ee:ff` (either case).
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut out {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// A hostname cut to [`MAX_HOSTNAME`] bytes (on a character boundary); `None` if empty.
pub fn cap_hostname(s: &str) -> Option<String> {
    let mut end = s.len().min(MAX_HOSTNAME);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).filter(|h| !h.is_empty()).map(str::to_owned)
}

/// The lease table of all subnets. See the module documentation for the algorithms.
#[derive(Debug)]
pub struct LeaseTable {
    pools: Vec<Pool>,
    leases: HashMap<(Mac, usize), Lease>,
    /// Address -> key of its lease record.
    holders: HashMap<u32, (Mac, usize)>,
    /// Decline and conflict holds by address (expired ones linger until reused).
    holds: HashMap<u32, Lease>,
    changes: Vec<Lease>,
}

impl LeaseTable {
    /// Validates the pools (one per subnet, index = position) into an empty table.
    pub fn new(specs: &[PoolSpec]) -> Result<Self, SpecError> {
        let mut pools: Vec<Pool> = Vec::with_capacity(specs.len());
        let net = |s: &PoolSpec| format!("{}/{}", s.network, s.prefix);
        for (subnet, spec) in specs.iter().enumerate() {
            let err = |problem| SpecError {
                subnet,
                net: net(spec),
                problem,
            };
            let pool = Pool::build(spec).map_err(err)?;
            let overlap = |p: &Pool| {
                p.network & pool.mask == pool.network || pool.network & p.mask == p.network
            };
            if let Some(j) = pools.iter().position(overlap) {
                let other = specs.get(j).map(net).unwrap_or_default();
                return Err(err(SpecProblem::SubnetsOverlap(j, other)));
            }
            pools.push(pool);
        }
        Ok(LeaseTable {
            pools,
            leases: HashMap::new(),
            holders: HashMap::new(),
            holds: HashMap::new(),
            changes: Vec::new(),
        })
    }

    /// Number of subnets.
    pub fn subnet_count(&self) -> usize {
        self.pools.len()
    }

    /// The subnet whose network contains `ip` (O(subnets)).
    pub fn subnet_of(&self, ip: Ipv4Addr) -> Option<usize> {
        let a = u32::from(ip);
        self.pools.iter().position(|p| p.contains(a))
    }

    fn held(&self, ip: u32, now: u64) -> bool {
        self.holds.get(&ip).is_some_and(|h| h.expires > now)
    }

    fn holder(&self, ip: u32) -> Option<&Lease> {
        self.holders.get(&ip).and_then(|k| self.leases.get(k))
    }

    /// Chooses an address for a DISCOVER (RFC 2131 4.3.1): the MAC's reservation (unless
    /// under a hold); else its current or previous address; else `requested` if free;
    /// else a never-used address; else the longest-expired one. Records it as Offered until
    /// `now + hold_secs` (an active Bound lease of the same address is kept as is).
    pub fn offer(
        &mut self,
        subnet: usize,
        mac: Mac,
        requested: Option<Ipv4Addr>,
        now: u64,
        hold_secs: u64,
    ) -> Result<Ipv4Addr, NoAddress> {
        let Some(pool) = self.pools.get(subnet) else {
            return Err(NoAddress::UnknownSubnet);
        };
        let until = now.saturating_add(hold_secs);
        if let Some(&r) = pool.reserved_by_mac.get(&mac)
            && !self.held(r, now)
        {
            return Ok(self.offer_at(subnet, mac, r, now, until));
        }
        if let Some(l) = self.leases.get(&(mac, subnet)) {
            let ip = u32::from(l.ip);
            return Ok(self.offer_at(subnet, mac, ip, now, until));
        }
        if let Some(req) = requested.map(u32::from)
            && pool.is_dynamic(req)
            && !self.held(req, now)
            && !self.holder(req).is_some_and(|l| l.is_active(now))
        {
            return Ok(self.offer_at(subnet, mac, req, now, until));
        }
        let Some(pool) = self.pools.get_mut(subnet) else {
            return Err(NoAddress::UnknownSubnet);
        };
        let ip = pool
            .next_fresh()
            .or_else(|| pool.oldest_free(now))
            .ok_or(NoAddress::Exhausted)?;
        Ok(self.offer_at(subnet, mac, ip, now, until))
    }

    fn offer_at(&mut self, subnet: usize, mac: Mac, ip: u32, now: u64, until: u64) -> Ipv4Addr {
        let addr = Ipv4Addr::from(ip);
        let hostname = match self.leases.get(&(mac, subnet)) {
            Some(l) if l.ip == addr && l.state == LeaseState::Bound && l.expires > now => {
                return addr;
            }
            Some(l) if l.ip == addr => l.hostname.clone(),
            _ => None,
        };
        let state = LeaseState::Offered;
        self.assign(
            Lease {
                mac,
                ip: addr,
                subnet,
                state,
                expires: until,
                hostname,
            },
            now,
            true,
        );
        addr
    }

    /// May `mac` have `ip` now (the REQUEST of SELECTING, INIT-REBOOT, RENEWING and
    /// REBINDING)? Yes if it is its reservation, or it holds it (in any state, not taken
    /// since), or it is a free, unheld range address and the MAC has no usable reservation.
    /// On success the lease is Bound until `now + lease_secs` with `hostname` (cut to
    /// [`MAX_HOSTNAME`]), and the MAC's previous address in the subnet is freed.
    pub fn request(
        &mut self,
        subnet: usize,
        mac: Mac,
        ip: Ipv4Addr,
        now: u64,
        lease_secs: u64,
        hostname: Option<&str>,
    ) -> Result<Lease, Nak> {
        let a = u32::from(ip);
        let Some(pool) = self.pools.get(subnet).filter(|p| p.contains(a)) else {
            return Err(Nak::NotInSubnet);
        };
        match pool.reserved_by_ip.get(&a) {
            Some(owner) if *owner != mac => return Err(Nak::ReservedForOther),
            Some(_) => {}
            None => {
                if let Some(&r) = pool.reserved_by_mac.get(&mac)
                    && !self.held(r, now)
                {
                    return Err(Nak::HasReservation);
                }
                if self.leases.get(&(mac, subnet)).is_none_or(|l| l.ip != ip) {
                    if self.holder(a).is_some_and(|l| l.is_active(now)) {
                        return Err(Nak::TakenByOther);
                    }
                    if !pool.is_dynamic(a) {
                        return Err(Nak::NotInPool);
                    }
                    if self.held(a, now) {
                        return Err(Nak::Declined);
                    }
                }
            }
        }
        let lease = Lease {
            mac,
            ip,
            subnet,
            state: LeaseState::Bound,
            expires: now.saturating_add(lease_secs),
            hostname: hostname.and_then(cap_hostname),
        };
        self.assign(lease.clone(), now, true);
        Ok(lease)
    }

    /// Makes `lease` the record of its MAC in its subnet and of its address: the address's
    /// previous holder (another MAC) loses it, a hold on it ends, and the MAC's previous
    /// address in the subnet is freed (a `Free` tombstone is queued when `emit`).
    fn assign(&mut self, lease: Lease, now: u64, emit: bool) {
        let ip = u32::from(lease.ip);
        let subnet = lease.subnet;
        if let Some(&(other, s)) = self.holders.get(&ip)
            && other != lease.mac
        {
            self.leases.remove(&(other, s));
        }
        self.holds.remove(&ip);
        if let Some(old) = self.leases.remove(&(lease.mac, subnet))
            && old.ip != lease.ip
        {
            self.free_address(subnet, u32::from(old.ip), old.expires.min(now));
            if emit {
                self.changes.push(Lease {
                    state: LeaseState::Free,
                    expires: now,
                    ..old
                });
            }
        }
        self.holders.insert(ip, (lease.mac, subnet));
        self.touch(subnet, ip, lease.expires);
        if emit {
            self.changes.push(lease.clone());
        }
        self.leases.insert((lease.mac, subnet), lease);
    }

    /// Sets the reuse key of `ip` if it is a dynamic address of `subnet`.
    fn touch(&mut self, subnet: usize, ip: u32, key: u64) {
        if let Some(pool) = self.pools.get_mut(subnet)
            && pool.is_dynamic(ip)
        {
            pool.set_key(ip, key);
        }
    }

    fn free_address(&mut self, subnet: usize, ip: u32, since: u64) {
        self.holders.remove(&ip);
        self.touch(subnet, ip, since);
    }

    fn set_hold(&mut self, subnet: usize, ip: Ipv4Addr, mac: Mac, until: u64, emit: bool) {
        let a = u32::from(ip);
        if let Some(key) = self.holders.remove(&a) {
            self.leases.remove(&key);
        }
        self.touch(subnet, a, until);
        let hold = Lease {
            mac,
            ip,
            subnet,
            state: LeaseState::Declined,
            expires: until,
            hostname: None,
        };
        if emit {
            self.changes.push(hold.clone());
        }
        self.holds.insert(a, hold);
    }

    /// DHCPRELEASE: if `mac` holds `ip` (offered or bound), the record becomes Released
    /// (`expires` = min(expires, now)); the MAC gets the same address back while nobody
    /// else took it. Returns whether anything changed.
    pub fn release(&mut self, mac: Mac, ip: Ipv4Addr, now: u64) -> bool {
        let Some(subnet) = self.subnet_of(ip) else {
            return false;
        };
        let Some(l) = self.leases.get_mut(&(mac, subnet)) else {
            return false;
        };
        if l.ip != ip || !matches!(l.state, LeaseState::Offered | LeaseState::Bound) {
            return false;
        }
        l.state = LeaseState::Released;
        l.expires = l.expires.min(now);
        let lease = l.clone();
        self.touch(subnet, u32::from(ip), lease.expires);
        self.changes.push(lease);
        true
    }

    /// DHCPDECLINE: if `mac` holds `ip`, its lease is dropped and the address is unusable
    /// until `now + hold_secs` (a Declined record is queued). Returns whether it applied.
    pub fn decline(&mut self, mac: Mac, ip: Ipv4Addr, now: u64, hold_secs: u64) -> bool {
        let Some(subnet) = self.subnet_of(ip) else {
            return false;
        };
        if self.leases.get(&(mac, subnet)).is_none_or(|l| l.ip != ip) {
            return false;
        }
        self.set_hold(subnet, ip, mac, now.saturating_add(hold_secs), true);
        true
    }

    /// The server's probe found `ip` in use: hold it until `now + hold_secs` (Declined record
    /// with the all-zero MAC), dropping any record on it except an active Bound lease (then
    /// nothing happens: the answer was probably its holder). Returns whether it applied.
    pub fn conflict(&mut self, ip: Ipv4Addr, now: u64, hold_secs: u64) -> bool {
        let a = u32::from(ip);
        let Some(subnet) = self.subnet_of(ip) else {
            return false;
        };
        let usable = self
            .pools
            .get(subnet)
            .is_some_and(|p| p.is_dynamic(a) || p.reserved_by_ip.contains_key(&a));
        let bound = self
            .holder(a)
            .is_some_and(|l| l.state == LeaseState::Bound && l.is_active(now));
        if !usable || bound {
            return false;
        }
        self.set_hold(subnet, ip, [0; 6], now.saturating_add(hold_secs), true);
        true
    }

    /// Another server of the fleet holds `ip` until `until` (its claim in the shared store
    /// won): whatever this table has on the address, the binding it just made for the
    /// client that lost included, is replaced by a hold until then (a Declined record with
    /// the all-zero MAC). Returns whether it applied (`ip` in a subnet, `until` ahead).
    pub fn held_elsewhere(&mut self, ip: Ipv4Addr, now: u64, until: u64) -> bool {
        let Some(subnet) = self.subnet_of(ip) else {
            return false;
        };
        if until <= now {
            return false;
        }
        self.set_hold(subnet, ip, [0; 6], until, true);
        true
    }

    /// Drops every record of `mac` (all subnets; `Free` tombstones queued): it gets no
    /// preference for its old addresses. Returns how many were dropped.
    pub fn forget(&mut self, mac: Mac, now: u64) -> usize {
        let mut n = 0;
        for subnet in 0..self.pools.len() {
            if let Some(old) = self.leases.remove(&(mac, subnet)) {
                self.free_address(subnet, u32::from(old.ip), old.expires.min(now));
                self.changes.push(Lease {
                    state: LeaseState::Free,
                    expires: now,
                    ..old
                });
                n += 1;
            }
        }
        n
    }

    /// Puts back records read from the lease log, in log order (a later record wins for
    /// its address and for its MAC in that subnet). `subnet` is derived from the address;
    /// `Free` tombstones remove what they name; records no longer allowed by the current
    /// pools are dropped and counted. Queues no changes.
    pub fn restore(&mut self, records: impl IntoIterator<Item = Lease>, now: u64) -> RestoreReport {
        let mut report = RestoreReport::default();
        for mut rec in records {
            let a = u32::from(rec.ip);
            let Some(subnet) = self.subnet_of(rec.ip) else {
                report.dropped += 1;
                continue;
            };
            rec.subnet = subnet;
            let Some(pool) = self.pools.get(subnet) else {
                continue;
            };
            let reserved_for = pool.reserved_by_ip.get(&a).copied();
            let usable = pool.is_dynamic(a) || reserved_for.is_some();
            match rec.state {
                LeaseState::Free => {
                    if let Some(l) = self.leases.get(&(rec.mac, subnet))
                        && l.ip == rec.ip
                    {
                        let since = l.expires.min(now);
                        self.leases.remove(&(rec.mac, subnet));
                        self.free_address(subnet, a, since);
                    }
                }
                LeaseState::Declined if usable => {
                    self.set_hold(subnet, rec.ip, rec.mac, rec.expires, false);
                    report.restored += 1;
                }
                _ if !usable || reserved_for.is_some_and(|m| m != rec.mac) => report.dropped += 1,
                _ => {
                    rec.hostname = rec.hostname.as_deref().and_then(cap_hostname);
                    self.assign(rec, now, false);
                    report.restored += 1;
                }
            }
        }
        report
    }

    /// The records to persist since the last call, in order (append them to the lease log
    /// before sending the reply).
    pub fn drain_changes(&mut self) -> Vec<Lease> {
        std::mem::take(&mut self.changes)
    }

    /// The record of `mac` in `subnet` (possibly expired or released).
    pub fn lease_of(&self, subnet: usize, mac: Mac) -> Option<&Lease> {
        self.leases.get(&(mac, subnet))
    }

    /// The records of `mac` in all subnets.
    pub fn leases_of(&self, mac: Mac) -> impl Iterator<Item = &Lease> {
        (0..self.pools.len()).filter_map(move |s| self.leases.get(&(mac, s)))
    }

    /// The lease record on `ip` (possibly expired or released).
    pub fn holder_of(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.holder(u32::from(ip))
    }

    /// The decline or conflict hold on `ip` (possibly ended: compare `expires`).
    pub fn hold_of(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.holds.get(&u32::from(ip))
    }

    /// Every lease record (no holds), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Everything worth persisting at `now`: every lease record and the unexpired holds
    /// (what [`super::log::LeaseLog::compact`] should be given).
    pub fn records(&self, now: u64) -> impl Iterator<Item = &Lease> {
        self.leases
            .values()
            .chain(self.holds.values().filter(move |h| h.expires > now))
    }

    /// Number of lease records (holds not counted).
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// No lease records.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// Dynamic addresses of `subnet` an offer could use at `now` (0 for an unknown subnet).
    /// O(log n + reusable addresses).
    pub fn free_count(&self, subnet: usize, now: u64) -> u64 {
        self.pools.get(subnet).map_or(0, |p| {
            let fresh = p.dyn_total.saturating_sub(p.touched.len() as u64);
            fresh + p.by_key.range(..=(now, u32::MAX)).count() as u64
        })
    }
}

mod pool;
#[cfg(test)]
mod tests;
