//! Per-client rate limits: which token buckets (`kindling_guard::Buckets`) a datagram is
//! charged to. Sans-I/O: every call takes `now`, so the tests drive the clock.
//!
//! Keys (see `docs/dhcp.md`, "Rate limits"):
//! * the client's MAC (`chaddr`), for every datagram with a PXE vendor class;
//! * the source address when it is not `0.0.0.0` (firmware DISCOVERs come from 0.0.0.0, so
//!   only clients that already have an address, such as port-4011 REQUESTs, have one);
//! * a relayed datagram (`giaddr` set) is charged to its source address under a separate,
//!   much larger budget: a relay forwards for every client behind it.
//!
//! A datagram passes only if every bucket it is charged to has a token; tokens are taken
//! only then (a datagram dropped for its address does not use up its MAC's budget).
//! The table is bounded (`max_clients`): when it is full, refilled buckets and then the
//! least recently used half are forgotten. Eviction only ever resets a bucket to full, so it can never throttle
//! a legitimate client; spoofed MACs cost at most `max_clients` entries.

use std::net::Ipv4Addr;
use std::time::Instant;

use kindling_guard::{Buckets, Take};
pub use kindling_guard::{Budget, LogGate};

/// The validated `[dhcp.rate_limit]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub mac: Budget,
    pub ip: Budget,
    pub relay: Budget,
    /// Most buckets kept (all kinds together).
    pub max_clients: usize,
}

/// What a bucket is keyed by. `Key::reason` (the [`IgnoreReason`](crate::IgnoreReason) of a
/// datagram over the key's budget) is in `policy`, which owns the reasons: this module
/// depends on nothing else of the crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Mac([u8; 6]),
    Ip(Ipv4Addr),
    Relay(Ipv4Addr),
}

/// The verdict for one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Dropped: `key` had no token. `first` is true for the first drop since that key was
    /// last allowed (log it once, not for every datagram of a flood).
    Limited {
        key: Key,
        first: bool,
    },
}

fn budget_of(limits: &Limits, key: Key) -> Budget {
    match key {
        Key::Mac(_) => limits.mac,
        Key::Ip(_) => limits.ip,
        Key::Relay(_) => limits.relay,
    }
}

/// Token buckets by MAC and by source address, in a bounded table.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Limits,
    buckets: Buckets<Key>,
}

impl RateLimiter {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            buckets: Buckets::new(limits.max_clients),
        }
    }

    /// Buckets currently kept.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn budget(&self, key: Key) -> Budget {
        budget_of(&self.limits, key)
    }

    /// Forgets the buckets that have refilled ([`Buckets::sweep`]); the server calls it
    /// every few seconds.
    pub fn sweep(&mut self, now: Instant) {
        let limits = &self.limits;
        self.buckets.sweep(now, |k| budget_of(limits, *k));
    }

    /// The keys a datagram is charged to.
    pub fn keys(mac: Option<[u8; 6]>, source: Ipv4Addr, relayed: bool) -> [Option<Key>; 2] {
        let ip = (!source.is_unspecified()).then_some(if relayed {
            Key::Relay(source)
        } else {
            Key::Ip(source)
        });
        [mac.map(Key::Mac), ip]
    }

    /// Charges one datagram from `mac` (its `chaddr`), sent from `source`; `relayed` when
    /// its `giaddr` is set. Tokens are taken only when every bucket has one.
    pub fn check(
        &mut self,
        now: Instant,
        mac: Option<[u8; 6]>,
        source: Ipv4Addr,
        relayed: bool,
    ) -> Verdict {
        let keys = Self::keys(mac, source, relayed);
        let denied = keys
            .iter()
            .flatten()
            .copied()
            .find(|&k| !self.buckets.has_token(&k, self.budget(k), now));
        match denied {
            None => {
                for k in keys.into_iter().flatten() {
                    self.buckets.take(k, self.budget(k), now);
                }
                Verdict::Allow
            }
            Some(key) => match self.buckets.take(key, self.budget(key), now) {
                Take::Refused { first, .. } => Verdict::Limited { key, first },
                Take::Allowed => Verdict::Allow,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
    const B: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];
    const ZERO: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

    fn limits() -> Limits {
        Limits {
            mac: Budget {
                burst: 5,
                per_minute: 60,
            },
            ip: Budget {
                burst: 8,
                per_minute: 120,
            },
            relay: Budget {
                burst: 100,
                per_minute: 6000,
            },
            max_clients: 1000,
        }
    }

    #[test]
    fn a_mac_gets_its_burst_then_one_per_refill_and_others_are_unaffected() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(limits());
        for _ in 0..5 {
            assert_eq!(rl.check(t0, Some(A), ZERO, false), Verdict::Allow);
        }
        assert_eq!(
            rl.check(t0, Some(A), ZERO, false),
            Verdict::Limited {
                key: Key::Mac(A),
                first: true
            }
        );
        assert_eq!(
            rl.check(t0, Some(A), ZERO, false),
            Verdict::Limited {
                key: Key::Mac(A),
                first: false
            }
        );
        // Another MAC is served.
        assert_eq!(rl.check(t0, Some(B), ZERO, false), Verdict::Allow);
        // 60/min: one token per second.
        let t1 = t0 + Duration::from_millis(1000);
        assert_eq!(rl.check(t1, Some(A), ZERO, false), Verdict::Allow);
        assert!(matches!(
            rl.check(t1, Some(A), ZERO, false),
            Verdict::Limited { first: true, .. }
        ));
        // Idle long enough: the whole burst again, never more.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..5 {
            assert_eq!(rl.check(t2, Some(A), ZERO, false), Verdict::Allow);
        }
        assert!(matches!(
            rl.check(t2, Some(A), ZERO, false),
            Verdict::Limited { .. }
        ));
        // A clock that goes backwards never adds tokens.
        assert!(matches!(
            rl.check(t0, Some(A), ZERO, false),
            Verdict::Limited { .. }
        ));
    }

    #[test]
    fn default_limits_never_throttle_a_chainloading_client() {
        let l = crate::config::DhcpConfig::default()
            .validate()
            .unwrap()
            .rate_limit
            .expect("on by default");
        let mut rl = RateLimiter::new(l);
        let t0 = Instant::now();
        let client = Ipv4Addr::new(192, 168, 77, 50);
        // UEFI firmware: 4 DISCOVERs (no proxy offer seen in time), its REQUEST to the site's
        // server on 67, 4 port-4011 REQUESTs, then iPXE: 4 DISCOVERs and a REQUEST; all of it
        // twice (a reboot right after), within one second.
        for _ in 0..2 {
            for _ in 0..5 {
                assert_eq!(rl.check(t0, Some(A), ZERO, false), Verdict::Allow);
            }
            for _ in 0..4 {
                assert_eq!(rl.check(t0, Some(A), client, false), Verdict::Allow);
            }
            for _ in 0..5 {
                assert_eq!(rl.check(t0, Some(A), ZERO, false), Verdict::Allow);
            }
        }
    }

    #[test]
    fn source_addresses_have_their_own_bucket_relays_a_larger_one() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(limits());
        let host = Ipv4Addr::new(192, 168, 77, 2);
        // One host with many MACs: stopped by its address after 8.
        for i in 0..8u8 {
            assert_eq!(
                rl.check(t0, Some([2, 0, 0, 0, 0, i]), host, false),
                Verdict::Allow
            );
        }
        assert_eq!(
            rl.check(t0, Some([2, 0, 0, 0, 0, 99]), host, false),
            Verdict::Limited {
                key: Key::Ip(host),
                first: true
            }
        );
        // The MAC whose datagram was dropped for its address kept its tokens.
        for _ in 0..5 {
            assert_eq!(
                rl.check(t0, Some([2, 0, 0, 0, 0, 99]), ZERO, false),
                Verdict::Allow
            );
        }
        // A relay forwarding for 100 clients is not stopped by the per-host budget.
        let relay = Ipv4Addr::new(10, 55, 0, 1);
        for i in 0..100u8 {
            assert_eq!(
                rl.check(t0, Some([4, 0, 0, 0, 0, i]), relay, true),
                Verdict::Allow
            );
        }
        assert_eq!(
            rl.check(t0, Some([4, 0, 0, 1, 0, 0]), relay, true),
            Verdict::Limited {
                key: Key::Relay(relay),
                first: true
            }
        );
        // Datagrams from 0.0.0.0 have no address bucket.
        assert_eq!(
            RateLimiter::keys(Some(A), ZERO, false),
            [Some(Key::Mac(A)), None]
        );
    }

    #[test]
    fn a_burst_of_zero_turns_a_key_off() {
        let mut l = limits();
        l.mac.burst = 0;
        let mut rl = RateLimiter::new(l);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(rl.check(t0, Some(A), ZERO, false), Verdict::Allow);
        }
        assert!(rl.is_empty());
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_least_recently_used() {
        let mut l = limits();
        l.max_clients = 64;
        let mut rl = RateLimiter::new(l);
        let t0 = Instant::now();
        // A is drained, then 10,000 spoofed MACs pass by.
        for _ in 0..5 {
            rl.check(t0, Some(A), ZERO, false);
        }
        assert!(matches!(
            rl.check(t0, Some(A), ZERO, false),
            Verdict::Limited { .. }
        ));
        for i in 0..10_000u32 {
            let b = i.to_be_bytes();
            rl.check(t0, Some([6, 0, b[0], b[1], b[2], b[3]]), ZERO, false);
            assert!(rl.len() <= 64);
        }
        // A was forgotten (least recently used): it starts over with a full bucket, never fewer tokens.
        assert_eq!(rl.check(t0, Some(A), ZERO, false), Verdict::Allow);
        // A recently used key survives new ones.
        let mut rl = RateLimiter::new(l);
        for i in 0..1000u32 {
            let b = i.to_be_bytes();
            rl.check(t0, Some(B), ZERO, false);
            rl.check(t0, Some([6, 0, b[0], b[1], b[2], b[3]]), ZERO, false);
        }
        assert!(matches!(
            rl.check(t0, Some(B), ZERO, false),
            Verdict::Limited { .. }
        ));
    }
}
