//! Who may make the cache fetch from upstream: pure decisions and state
//! (the clock is passed in), kept apart from the I/O.
//!
//! * [`Routes`]: which catalog entries a client IP was routed to: the
//!   entries of the menus this server handed to that IP (per architecture,
//!   for `routed_ttl_secs`). A bounded table.
//! * [`MissLimiter`]: per client IP, how many upstream fetches it has
//!   running and a token bucket of cache misses. A bounded table.
//! * [`decide`]: the rule that combines them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
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

#[derive(Debug, Clone)]
struct ClientState {
    tokens: f64,
    last: Instant,
    running: u32,
}

/// Token buckets and running-fetch counts per client IP.
#[derive(Debug)]
pub struct MissLimiter {
    limits: Limits,
    clients: HashMap<IpAddr, ClientState>,
}

impl MissLimiter {
    pub fn new(limits: Limits) -> MissLimiter {
        MissLimiter {
            limits,
            clients: HashMap::new(),
        }
    }

    fn refill(&self, c: &mut ClientState, now: Instant) {
        let dt = now.saturating_duration_since(c.last).as_secs_f64();
        let rate = f64::from(self.limits.per_minute) / 60.0;
        c.tokens = (c.tokens + dt * rate).min(f64::from(self.limits.burst));
        c.last = c.last.max(now);
    }

    /// Takes a miss for `ip` at `now`: on success the client has one more
    /// fetch running (give it back with [`MissLimiter::finish`]).
    pub fn try_start(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let ip = client_ip(ip);
        if !self.clients.contains_key(&ip) && self.clients.len() >= self.limits.max_clients.max(1) {
            // Forget a client with nothing running whose bucket refilled
            // the longest ago; a full table of busy clients refuses.
            let victim = self
                .clients
                .iter()
                .filter(|(_, c)| c.running == 0)
                .min_by_key(|(_, c)| c.last)
                .map(|(ip, _)| *ip);
            match victim {
                Some(v) => {
                    self.clients.remove(&v);
                }
                None => return Err(Refusal::TableFull),
            }
        }
        let burst = f64::from(self.limits.burst);
        let mut c = self.clients.remove(&ip).unwrap_or(ClientState {
            tokens: burst,
            last: now,
            running: 0,
        });
        self.refill(&mut c, now);
        let res = if c.running >= self.limits.max_fetches {
            Err(Refusal::Busy { running: c.running })
        } else if c.tokens < 1.0 {
            let rate = f64::from(self.limits.per_minute) / 60.0;
            let retry_after = if rate > 0.0 {
                Duration::from_secs_f64(((1.0 - c.tokens) / rate).clamp(0.0, 86_400.0))
            } else {
                Duration::from_secs(86_400)
            };
            Err(Refusal::RateLimited { retry_after })
        } else {
            c.tokens -= 1.0;
            c.running += 1;
            Ok(())
        };
        self.clients.insert(ip, c);
        res
    }

    /// A fetch that `ip` started has ended.
    pub fn finish(&mut self, ip: IpAddr) {
        if let Some(c) = self.clients.get_mut(&client_ip(ip)) {
            c.running = c.running.saturating_sub(1);
        }
    }

    /// Fetches `ip` has running.
    pub fn running(&self, ip: IpAddr) -> u32 {
        self.clients
            .get(&client_ip(ip))
            .map(|c| c.running)
            .unwrap_or(0)
    }

    /// Client IPs tracked.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
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

/// A running fetch counted against a client; gives its slot back when
/// dropped (when the download ends).
pub struct Ticket {
    limiter: Arc<Mutex<MissLimiter>>,
    ip: IpAddr,
}

impl Ticket {
    pub fn new(limiter: Arc<Mutex<MissLimiter>>, ip: IpAddr) -> Ticket {
        Ticket { limiter, ip }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finish(self.ip);
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
        let mut l = MissLimiter::new(limits());
        let a = ip("10.0.0.1");
        assert_eq!(l.try_start(a, t0), Ok(()));
        assert_eq!(l.try_start(a, t0), Ok(()));
        assert_eq!(l.try_start(a, t0), Err(Refusal::Busy { running: 2 }));
        // Another client is not affected.
        assert_eq!(l.try_start(ip("10.0.0.2"), t0), Ok(()));
        l.finish(a);
        l.finish(a);
        assert_eq!(l.running(a), 0);
        assert_eq!(l.try_start(a, t0), Ok(()));
        l.finish(a);
        // Three tokens used: empty; 6/min = one token per 10 s.
        match l.try_start(a, t0) {
            Err(Refusal::RateLimited { retry_after }) => {
                assert_eq!(retry_after.as_secs(), 10, "{retry_after:?}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            l.try_start(a, t0 + Duration::from_secs(5)),
            Err(Refusal::RateLimited { .. })
        ));
        assert_eq!(l.try_start(a, t0 + Duration::from_secs(10)), Ok(()));
        l.finish(a);
        // Refill is capped at the burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.try_start(a, later), Ok(()));
            l.finish(a);
        }
        assert!(matches!(
            l.try_start(a, later),
            Err(Refusal::RateLimited { .. })
        ));
        // A clock that goes backwards does not panic or mint tokens.
        assert!(matches!(
            l.try_start(a, t0),
            Err(Refusal::RateLimited { .. })
        ));
    }

    #[test]
    fn table_is_bounded_and_never_drops_busy_clients() {
        let t0 = Instant::now();
        let mut l = MissLimiter::new(limits());
        let (a, b, c) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        assert_eq!(l.try_start(a, t0), Ok(()));
        assert_eq!(l.try_start(b, t0), Ok(()));
        // Both have a fetch running: no room for c.
        assert_eq!(l.try_start(c, t0), Err(Refusal::TableFull));
        l.finish(a);
        assert_eq!(l.try_start(c, t0), Ok(()));
        assert_eq!(l.len(), 2);
        assert_eq!(l.running(b), 1);
        // Ticket gives the slot back when dropped.
        let shared = Arc::new(Mutex::new(MissLimiter::new(limits())));
        shared.lock().unwrap().try_start(a, t0).unwrap();
        let t = Ticket::new(shared.clone(), a);
        assert_eq!(shared.lock().unwrap().running(a), 1);
        drop(t);
        assert_eq!(shared.lock().unwrap().running(a), 0);
    }

    #[test]
    fn zero_limits_refuse_without_panicking() {
        let t0 = Instant::now();
        let mut l = MissLimiter::new(Limits {
            max_fetches: 1,
            burst: 0,
            per_minute: 0,
            max_clients: 0,
        });
        assert!(matches!(
            l.try_start(ip("::1"), t0),
            Err(Refusal::RateLimited { .. })
        ));
        let mut l = MissLimiter::new(Limits {
            max_fetches: 0,
            ..limits()
        });
        assert_eq!(
            l.try_start(ip("::1"), t0),
            Err(Refusal::Busy { running: 0 })
        );
    }
}
