//! Who may make the cache fetch from upstream: pure decisions and state
//! (the clock is passed in), kept apart from the I/O.
//!
//! * [`Routes`]: which catalog entries a client IP was routed to: the
//!   entries of the menus this server handed to that IP (per architecture,
//!   for `routed_ttl_secs`). A bounded table.
//! * [`MissLimiter`]: per client IP, how many upstream fetches it has
//!   running and a token bucket of cache misses (`kindling_guard`'s counts and
//!   buckets).
//! * [`decide`]: the rule that combines them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use kindling_guard::{Buckets, Budget, Counts, Full, Held, Take};
use std::time::{Duration, Instant};

use crate::catalog::Arch;

/// The same client whether it came over IPv4 or as an IPv4-mapped IPv6 address.
pub fn client_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The entries of the menus handed to each client IP.
#[derive(Debug)]
pub struct Routes {
    ttl: Duration,
    cap: usize,
    by_ip: HashMap<IpAddr, Vec<MenuRoute>>,
}

#[derive(Debug, Clone)]
struct MenuRoute {
    arch: Arch,
    entries: Arc<[String]>,
    at: Instant,
}

impl Routes {
    /// Routes last `ttl` after the menu was handed out; at most `cap`
    /// client IPs are remembered (the one routed longest ago goes first).
    pub fn new(ttl: Duration, cap: usize) -> Routes {
        Routes {
            ttl,
            cap: cap.max(1),
            by_ip: HashMap::new(),
        }
    }

    /// A menu for `arch` offering `entries` was handed to `ip` at `now`.
    pub fn note_menu(&mut self, ip: IpAddr, arch: Arch, entries: Arc<[String]>, now: Instant) {
        let ip = client_ip(ip);
        if !self.by_ip.contains_key(&ip) && self.by_ip.len() >= self.cap {
            self.expire(now);
            if self.by_ip.len() >= self.cap {
                let oldest = self
                    .by_ip
                    .iter()
                    .map(|(ip, v)| (*ip, v.iter().map(|r| r.at).max()))
                    .min_by_key(|(_, at)| *at)
                    .map(|(ip, _)| ip);
                if let Some(o) = oldest {
                    self.by_ip.remove(&o);
                }
            }
        }
        let v = self.by_ip.entry(ip).or_default();
        v.retain(|r| r.arch != arch);
        v.push(MenuRoute {
            arch,
            entries,
            at: now,
        });
    }

    /// Was `ip` handed a menu offering `entry` on `arch` within the TTL?
    pub fn is_routed(&self, ip: IpAddr, entry: &str, arch: Arch, now: Instant) -> bool {
        self.by_ip.get(&client_ip(ip)).is_some_and(|v| {
            v.iter().any(|r| {
                r.arch == arch
                    && now.saturating_duration_since(r.at) <= self.ttl
                    && r.entries.iter().any(|e| e == entry)
            })
        })
    }

    /// Client IPs remembered.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.by_ip.retain(|_, v| {
            v.retain(|r| now.saturating_duration_since(r.at) <= ttl);
            !v.is_empty()
        });
    }
}

/// Per-client limits on cache misses that start an upstream fetch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Upstream fetches one client IP may have running at once.
    pub max_fetches: u32,
    /// Token bucket: misses a client may make in a burst ...
    pub burst: u32,
    /// ... refilled at this many per minute.
    pub per_minute: u32,
    /// Client IPs tracked at most.
    pub max_clients: usize,
}

/// Why a miss was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// HEAD never starts a fetch.
    Head,
    /// Nothing routes this client to the entry.
    NotRouted,
    /// The client already has this many fetches running.
    Busy { running: u32 },
    /// The client's bucket is empty; a token comes back in this long.
    RateLimited { retry_after: Duration },
    /// Every slot of the client table holds a client with fetches running.
    TableFull,
}

impl Refusal {
    /// A short name for logs and counters.
    pub fn name(&self) -> &'static str {
        match self {
            Refusal::Head => "head",
            Refusal::NotRouted => "not_routed",
            Refusal::Busy { .. } => "client_busy",
            Refusal::RateLimited { .. } => "client_rate",
            Refusal::TableFull => "client_table_full",
        }
    }
}

/// Per client IP: upstream fetches running (`max_fetches` each, as many as
/// `max_clients` clients at their maximum in all)
/// and a token bucket of cache misses (`burst`, `per_minute`; bounded table). Both
/// come from `kindling_guard`; a value of 0 means no limit of that kind.
#[derive(Debug)]
pub struct MissLimiter {
    budget: Budget,
    running: Counts<IpAddr>,
    misses: Mutex<Buckets<IpAddr>>,
}

/// A running fetch counted against a client; its slot comes back when it is dropped
/// (when the download ends).
pub type Ticket = Held<IpAddr>;

impl MissLimiter {
    pub fn new(limits: Limits) -> MissLimiter {
        MissLimiter {
            budget: Budget {
                burst: limits.burst,
                per_minute: limits.per_minute,
            },
            running: Counts::new(
                limits.max_fetches as usize,
                limits
                    .max_clients
                    .saturating_mul(limits.max_fetches as usize),
            ),
            misses: Mutex::new(Buckets::new(limits.max_clients)),
        }
    }

    /// Takes a miss for `ip` at `now`: on success the client has one more fetch
    /// running until the ticket is dropped.
    pub fn try_start(&self, ip: IpAddr, now: Instant) -> Result<Ticket, Refusal> {
        let ip = client_ip(ip);
        let ticket = self.running.try_hold(ip).map_err(|full| match full {
            Full::Key => Refusal::Busy {
                running: self.running.held_by(&ip) as u32,
            },
            Full::Total => Refusal::TableFull,
        })?;
        let take = self
            .misses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(ip, self.budget, now);
        match take {
            Take::Allowed => Ok(ticket),
            Take::Refused { retry_after, .. } => Err(Refusal::RateLimited { retry_after }),
        }
    }

    /// Fetches `ip` has running.
    pub fn running(&self, ip: IpAddr) -> u32 {
        self.running.held_by(&client_ip(ip)) as u32
    }
}

/// Who asks for a file that is neither cached nor downloading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// `kindling cache prefetch` (directly, or through the server with the
    /// operator token).
    Operator,
    /// An HTTP client: HEAD or GET, and whether it is routed to the entry.
    Client { head: bool, routed: bool },
}

/// Whether a miss may start an upstream fetch (before the per-client
/// limits, which [`MissLimiter::try_start`] applies to clients).
pub fn decide(asker: Asker) -> Result<(), Refusal> {
    match asker {
        Asker::Operator => Ok(()),
        Asker::Client { head: true, .. } => Err(Refusal::Head),
        Asker::Client { routed: false, .. } => Err(Refusal::NotRouted),
        Asker::Client { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn decide_rules() {
        assert_eq!(decide(Asker::Operator), Ok(()));
        for routed in [false, true] {
            assert_eq!(
                decide(Asker::Client { head: true, routed }),
                Err(Refusal::Head)
            );
        }
        assert_eq!(
            decide(Asker::Client {
                head: false,
                routed: false
            }),
            Err(Refusal::NotRouted)
        );
        assert_eq!(
            decide(Asker::Client {
                head: false,
                routed: true
            }),
            Ok(())
        );
    }

    #[test]
    fn routes_per_ip_arch_entry_and_ttl() {
        let t0 = Instant::now();
        let mut r = Routes::new(Duration::from_secs(100), 2);
        let a = ip("10.0.0.1");
        r.note_menu(a, Arch::X86_64, vec!["debian".to_string()].into(), t0);
        assert!(r.is_routed(a, "debian", Arch::X86_64, t0));
        // The same client as IPv4-mapped IPv6.
        assert!(r.is_routed(ip("::ffff:10.0.0.1"), "debian", Arch::X86_64, t0));
        assert!(!r.is_routed(a, "debian", Arch::Arm64, t0));
        assert!(!r.is_routed(a, "ubuntu", Arch::X86_64, t0));
        assert!(!r.is_routed(ip("10.0.0.2"), "debian", Arch::X86_64, t0));
        assert!(r.is_routed(a, "debian", Arch::X86_64, t0 + Duration::from_secs(100)));
        assert!(!r.is_routed(a, "debian", Arch::X86_64, t0 + Duration::from_secs(101)));
        // A newer menu for the same arch replaces the older one.
        r.note_menu(a, Arch::X86_64, vec!["alpine".to_string()].into(), t0);
        assert!(!r.is_routed(a, "debian", Arch::X86_64, t0));
        assert!(r.is_routed(a, "alpine", Arch::X86_64, t0));
        // Bounded: a third client pushes out the one routed longest ago.
        let b = ip("10.0.0.2");
        let c = ip("10.0.0.3");
        r.note_menu(
            b,
            Arch::X86_64,
            vec!["x".to_string()].into(),
            t0 + Duration::from_secs(1),
        );
        r.note_menu(
            c,
            Arch::X86_64,
            vec!["x".to_string()].into(),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(r.len(), 2);
        assert!(!r.is_routed(a, "alpine", Arch::X86_64, t0));
        assert!(r.is_routed(b, "x", Arch::X86_64, t0 + Duration::from_secs(2)));
        assert!(r.is_routed(c, "x", Arch::X86_64, t0 + Duration::from_secs(2)));
    }

    fn limits() -> Limits {
        Limits {
            max_fetches: 2,
            burst: 3,
            per_minute: 6,
            max_clients: 2,
        }
    }

    #[test]
    fn concurrency_then_bucket_then_refill() {
        let t0 = Instant::now();
        let l = MissLimiter::new(limits());
        let a = ip("10.0.0.1");
        let t1 = l.try_start(a, t0).unwrap();
        let t2 = l.try_start(a, t0).unwrap();
        assert_eq!(
            l.try_start(a, t0).unwrap_err(),
            Refusal::Busy { running: 2 }
        );
        // Another client is not affected.
        let other = l.try_start(ip("10.0.0.2"), t0).unwrap();
        drop((t1, t2));
        assert_eq!(l.running(a), 0);
        drop(l.try_start(a, t0).unwrap());
        // Three tokens used: empty; 6/min = one token per 10 s.
        match l.try_start(a, t0) {
            Err(Refusal::RateLimited { retry_after }) => {
                assert_eq!(retry_after.as_secs(), 10, "{retry_after:?}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(l.running(a), 0, "a refused miss holds no slot");
        assert!(matches!(
            l.try_start(a, t0 + Duration::from_secs(5)),
            Err(Refusal::RateLimited { .. })
        ));
        drop(l.try_start(a, t0 + Duration::from_secs(10)).unwrap());
        // Refill is capped at the burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            drop(l.try_start(a, later).unwrap());
        }
        assert!(matches!(
            l.try_start(a, later),
            Err(Refusal::RateLimited { .. })
        ));
        drop(other);
    }

    #[test]
    fn running_fetches_are_bounded_in_total() {
        let t0 = Instant::now();
        let l = MissLimiter::new(limits());
        let (a, b, c) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        let ta = l.try_start(a, t0).unwrap();
        let _ta2 = l.try_start(a, t0).unwrap();
        let _tb = l.try_start(b, t0).unwrap();
        let _tb2 = l.try_start(b, t0).unwrap();
        // Two clients at their two fetches each (max_clients = 2): no room for c.
        assert_eq!(l.try_start(c, t0).unwrap_err(), Refusal::TableFull);
        drop(ta);
        let _tc = l.try_start(c, t0).unwrap();
        assert_eq!(l.running(b), 2);
        // The same client over IPv4 or as an IPv4-mapped IPv6 address.
        assert_eq!(l.running(ip("::ffff:10.0.0.2")), 2);
    }
}
