//! Sans-I/O admission control: transfer slots per client address with eviction (the
//! per-address request rate limit is `kindling_guard::Buckets`). Pure state fed with the current [`Instant`];
//! the socket shell only acts on the answers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A transfer slot handed out by [`Slots::admit`].
pub type SlotId = u64;

/// Answer of [`Slots::admit`] for a new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A free slot.
    Granted(SlotId),
    /// The server was full and the address held no slot: `victim` was taken away (the
    /// shell must stop that transfer) and its slot given to this request.
    Evicted { granted: SlotId, victim: SlotId },
    /// The address already holds `max_per_client` slots.
    ClientLimit,
    /// The server is full and nothing could be evicted (the address already holds a
    /// slot, or no transfer has been idle for `min_idle`).
    Busy,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    ip: IpAddr,
    /// Start, or the last time the client acknowledged something new.
    last_progress: Instant,
}

/// Transfer slots: at most `max_total`, at most `max_per_client` per client address.
///
/// When the server is full, a request from an address holding no slot evicts the
/// transfer that has been idle longest (no advancing ACK) among those of the address
/// holding the most slots, if it has been idle at least `min_idle`. One host that
/// asks for many transfers and never acknowledges them (`timeout=255`) therefore
/// cannot keep a new machine from booting, while transfers that make progress are
/// never cut for a newcomer.
#[derive(Debug)]
pub struct Slots {
    max_total: usize,
    max_per_client: usize,
    min_idle: Duration,
    next: SlotId,
    slots: HashMap<SlotId, Slot>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Slots {
    pub fn new(max_total: usize, max_per_client: usize, min_idle: Duration) -> Slots {
        Slots {
            max_total: max_total.max(1),
            max_per_client: max_per_client.max(1),
            min_idle,
            next: 0,
            slots: HashMap::new(),
            per_ip: HashMap::new(),
        }
    }

    /// Slots in use.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Slots held by `ip`.
    pub fn held_by(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Decide on a request from `ip` at `now`.
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Admission {
        let held = self.held_by(ip);
        if held >= self.max_per_client {
            return Admission::ClientLimit;
        }
        if self.slots.len() < self.max_total {
            return Admission::Granted(self.insert(ip, now));
        }
        if held > 0 {
            return Admission::Busy;
        }
        let Some(victim) = self.victim(now) else {
            return Admission::Busy;
        };
        self.release(victim);
        Admission::Evicted {
            granted: self.insert(ip, now),
            victim,
        }
    }

    /// The transfer to evict: among those idle for at least `min_idle`, the longest
    /// idle of the address holding the most slots (ties: the oldest slot).
    pub fn victim(&self, now: Instant) -> Option<SlotId> {
        self.slots
            .iter()
            .filter_map(|(&id, s)| {
                let idle = now.saturating_duration_since(s.last_progress);
                (idle >= self.min_idle).then(|| (self.held_by(s.ip), idle, std::cmp::Reverse(id)))
            })
            .max()
            .map(|(_, _, std::cmp::Reverse(id))| id)
    }

    /// The transfer in slot `id` made progress at `now`.
    pub fn touch(&mut self, id: SlotId, now: Instant) {
        if let Some(s) = self.slots.get_mut(&id) {
            s.last_progress = s.last_progress.max(now);
        }
    }

    /// Free slot `id`; false when it was not held (already evicted).
    pub fn release(&mut self, id: SlotId) -> bool {
        let Some(s) = self.slots.remove(&id) else {
            return false;
        };
        if let Some(n) = self.per_ip.get_mut(&s.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&s.ip);
            }
        }
        true
    }

    fn insert(&mut self, ip: IpAddr, now: Instant) -> SlotId {
        let id = self.next;
        self.next += 1;
        self.slots.insert(
            id,
            Slot {
                ip,
                last_progress: now,
            },
        );
        *self.per_ip.entry(ip).or_insert(0) += 1;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn per_client_limit_and_total() {
        let t0 = Instant::now();
        let mut s = Slots::new(4, 2, Duration::from_secs(1));
        let a = s.admit(ip(1), t0);
        assert!(matches!(a, Admission::Granted(_)));
        assert!(matches!(s.admit(ip(1), t0), Admission::Granted(_)));
        assert_eq!(s.admit(ip(1), t0), Admission::ClientLimit);
        assert!(matches!(s.admit(ip(2), t0), Admission::Granted(_)));
        assert!(matches!(s.admit(ip(2), t0), Admission::Granted(_)));
        assert_eq!(s.len(), 4);
        // Full, and nobody idle long enough: a new address is told busy.
        assert_eq!(s.admit(ip(3), t0), Admission::Busy);
        // Releasing frees the address's count.
        let Admission::Granted(id) = a else { panic!() };
        assert!(s.release(id));
        assert!(!s.release(id));
        assert_eq!(s.held_by(ip(1)), 1);
        assert!(matches!(s.admit(ip(3), t0), Admission::Granted(_)));
    }

    #[test]
    fn eviction_picks_longest_idle_of_the_biggest_holder() {
        let t0 = Instant::now();
        let sec = Duration::from_secs(1);
        let mut s = Slots::new(5, 8, sec);
        let mut hog = Vec::new();
        for i in 0..3 {
            match s.admit(ip(1), t0 + sec * i) {
                Admission::Granted(id) => hog.push(id),
                other => panic!("{other:?}"),
            }
        }
        let Admission::Granted(other) = s.admit(ip(2), t0) else {
            panic!()
        };
        let Admission::Granted(_) = s.admit(ip(3), t0) else {
            panic!()
        };
        // ip(2)'s transfer is the longest idle of all, but ip(1) holds the most slots.
        // Its first transfer made progress recently: the second one is the victim.
        s.touch(hog[0], t0 + sec * 9);
        let now = t0 + sec * 10;
        assert_eq!(s.victim(now), Some(hog[1]));
        // An address that already holds a slot does not evict.
        assert_eq!(s.admit(ip(2), now), Admission::Busy);
        match s.admit(ip(4), now) {
            Admission::Evicted { victim, .. } => assert_eq!(victim, hog[1]),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.len(), 5);
        assert_eq!(s.held_by(ip(1)), 2);
        assert_eq!(s.held_by(ip(4)), 1);
        // The evicted transfer's later release is a no-op.
        assert!(!s.release(hog[1]));
        assert_eq!(s.len(), 5);
        // Next newcomer: ip(1) still holds the most (2): its longest idle is hog[2].
        match s.admit(ip(5), now) {
            Admission::Evicted { victim, .. } => assert_eq!(victim, hog[2]),
            other => panic!("{other:?}"),
        }
        // Now every address holds one slot: the longest idle overall goes
        // (other and ip(3) both idle 10 s: the older slot, `other`).
        match s.admit(ip(6), now) {
            Admission::Evicted { victim, .. } => assert_eq!(victim, other),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_transfer_making_progress_is_not_evicted() {
        let t0 = Instant::now();
        let sec = Duration::from_secs(1);
        let mut s = Slots::new(1, 8, sec);
        let Admission::Granted(id) = s.admit(ip(1), t0) else {
            panic!()
        };
        s.touch(id, t0 + sec * 5);
        assert_eq!(s.admit(ip(2), t0 + sec * 5), Admission::Busy);
        assert_eq!(s.victim(t0 + sec * 5 + sec / 2), None);
        assert!(matches!(
            s.admit(ip(2), t0 + sec * 6),
            Admission::Evicted { victim, .. } if victim == id
        ));
    }
}
