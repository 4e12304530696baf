//! Token buckets per client key in a bounded table, and a rate limit for log lines.
//! Sans-I/O: every call takes `now`.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// One budget: up to `burst` events at once, refilled at `per_minute`. `burst = 0`
/// means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub burst: u32,
    pub per_minute: u32,
}

impl Budget {
    /// No limit.
    pub const UNLIMITED: Budget = Budget {
        burst: 0,
        per_minute: 0,
    };

    pub fn is_unlimited(self) -> bool {
        self.burst == 0
    }

    fn per_sec(self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// The last event charged to this key was refused.
    refused: bool,
    /// When it was last used, in [`Buckets`]' own order (a clock can stand still).
    used: u64,
}

impl Bucket {
    fn full(budget: Budget, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(budget.burst),
            at: now,
            refused: false,
            used: 0,
        }
    }

    fn refill(&mut self, budget: Budget, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * budget.per_sec()).min(f64::from(budget.burst));
        self.at = self.at.max(now);
    }

    fn is_full(&self, budget: Budget, now: Instant) -> bool {
        let mut b = *self;
        b.refill(budget, now);
        b.tokens >= f64::from(budget.burst)
    }
}

/// Token buckets keyed by client (a MAC, an IP address, ...), at most `max_keys` of
/// them. When the table is full, buckets that have refilled (the same as a new one) are
/// forgotten first, then the least recently used half. Forgetting a bucket only ever
/// resets it to full: spoofed keys cost bounded memory and can never throttle a
/// legitimate client, they can at worst make the limit more lenient.
#[derive(Debug)]
pub struct Buckets<K> {
    max_keys: usize,
    map: HashMap<K, Bucket>,
    uses: u64,
}

/// What [`Buckets::take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Allowed,
    /// Refused; `first` is true for the first refusal since this key was last allowed
    /// (log that one, not every packet of a flood).
    Refused {
        first: bool,
        retry_after: Duration,
    },
}

impl Take {
    pub fn allowed(self) -> bool {
        self == Take::Allowed
    }
}

impl<K: Hash + Eq + Copy> Buckets<K> {
    pub fn new(max_keys: usize) -> Buckets<K> {
        Buckets {
            max_keys: max_keys.max(1),
            map: HashMap::new(),
            uses: 0,
        }
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether `key` has a token at `now` (takes none).
    pub fn has_token(&self, key: &K, budget: Budget, now: Instant) -> bool {
        if budget.is_unlimited() {
            return true;
        }
        match self.map.get(key) {
            None => true,
            Some(b) => {
                let mut b = *b;
                b.refill(budget, now);
                b.tokens >= 1.0
            }
        }
    }

    /// Takes one token for `key` at `now`, if it has one.
    pub fn take(&mut self, key: K, budget: Budget, now: Instant) -> Take {
        if budget.is_unlimited() {
            return Take::Allowed;
        }
        if !self.map.contains_key(&key) && self.map.len() >= self.max_keys {
            self.make_room(budget, now);
        }
        self.uses += 1;
        let b = self
            .map
            .entry(key)
            .or_insert_with(|| Bucket::full(budget, now));
        b.used = self.uses;
        b.refill(budget, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.refused = false;
            Take::Allowed
        } else {
            let first = !std::mem::replace(&mut b.refused, true);
            let rate = budget.per_sec();
            let retry_after = if rate > 0.0 {
                Duration::from_secs_f64(((1.0 - b.tokens) / rate).clamp(0.0, 86_400.0))
            } else {
                Duration::from_secs(86_400)
            };
            Take::Refused { first, retry_after }
        }
    }

    /// Forgets the buckets that have refilled (the same as none: a client seen again
    /// starts full) and gives the table's room back when most of it is unused. Without
    /// it, a boot storm's thousands of clients keep their buckets, and the table its
    /// size, until the table fills again. `budget`: each key's. Call it every few
    /// seconds; O(keys).
    pub fn sweep(&mut self, now: Instant, budget: impl Fn(&K) -> Budget) {
        self.map.retain(|k, b| !b.is_full(budget(k), now));
        if self.map.capacity() > 2 * self.map.len() + 64 {
            self.map.shrink_to_fit();
        }
    }

    fn make_room(&mut self, budget: Budget, now: Instant) {
        self.map.retain(|_, b| !b.is_full(budget, now));
        if self.map.len() < self.max_keys {
            return;
        }
        // Forget the least recently used half: O(n) once per n/2 new keys.
        let mut uses: Vec<u64> = self.map.values().map(|b| b.used).collect();
        let mid = uses.len() / 2;
        let (_, cut, _) = uses.select_nth_unstable(mid);
        let cut = *cut;
        self.map.retain(|_, b| b.used > cut);
    }
}

/// A rate limit for log lines: `burst` lines at once, then `per_sec`. Lines held back
/// are counted and reported with the next line that passes.
#[derive(Debug)]
pub struct LogGate {
    burst: f64,
    per_sec: f64,
    tokens: f64,
    at: Option<Instant>,
    suppressed: u64,
}

impl LogGate {
    pub fn new(burst: u32, per_sec: f64) -> LogGate {
        LogGate {
            burst: f64::from(burst),
            per_sec,
            tokens: f64::from(burst),
            at: None,
            suppressed: 0,
        }
    }

    /// `Some(lines held back since the last line written)` when a line may be written.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if let Some(at) = self.at {
            let dt = now.saturating_duration_since(at).as_secs_f64();
            self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        }
        if self.at.is_none_or(|at| now > at) {
            self.at = Some(now);
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Budget = Budget {
        burst: 3,
        per_minute: 60,
    };

    #[test]
    fn burst_then_refill_per_key() {
        let t0 = Instant::now();
        let mut t: Buckets<u32> = Buckets::new(16);
        for _ in 0..3 {
            assert!(t.take(1, B, t0).allowed());
        }
        assert_eq!(
            t.take(1, B, t0),
            Take::Refused {
                first: true,
                retry_after: Duration::from_secs(1)
            }
        );
        assert!(matches!(
            t.take(1, B, t0),
            Take::Refused { first: false, .. }
        ));
        // Another key is not affected.
        assert!(t.take(2, B, t0).allowed());
        assert!(!t.has_token(&1, B, t0));
        // One token per second comes back.
        let t1 = t0 + Duration::from_millis(1000);
        assert!(t.has_token(&1, B, t1));
        assert!(t.take(1, B, t1).allowed());
        assert!(!t.take(1, B, t1).allowed());
        // Never more than the burst, however long the pause.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(t.take(1, B, t2).allowed());
        }
        assert!(!t.take(1, B, t2).allowed());
    }

    #[test]
    fn unlimited_budget_never_refuses_or_stores() {
        let t0 = Instant::now();
        let mut t: Buckets<u32> = Buckets::new(4);
        for _ in 0..1000 {
            assert!(t.take(7, Budget::UNLIMITED, t0).allowed());
        }
        assert!(t.is_empty());
    }

    #[test]
    fn table_is_bounded_and_eviction_only_resets() {
        let t0 = Instant::now();
        let mut t: Buckets<u32> = Buckets::new(100);
        // A client exhausts its bucket.
        for _ in 0..3 {
            t.take(0, B, t0);
        }
        assert!(!t.take(0, B, t0).allowed());
        // A flood of spoofed keys: the table never grows past its bound.
        for k in 1..100_000u32 {
            let now = t0 + Duration::from_micros(u64::from(k));
            t.take(k, B, now);
            assert!(t.len() <= 100);
        }
        // The exhausted client was forgotten: reset to full, never locked out.
        assert!(t.take(0, B, t0 + Duration::from_millis(200)).allowed());
    }

    #[test]
    fn recently_used_keys_survive_a_flood_even_when_the_clock_stands_still() {
        let t0 = Instant::now();
        let mut t: Buckets<u32> = Buckets::new(64);
        for k in 1..10_000u32 {
            t.take(0, B, t0);
            t.take(k, B, t0);
            assert!(t.len() <= 64);
        }
        // Key 0 was used all along: still there, still throttled.
        assert!(!t.has_token(&0, B, t0));
    }

    #[test]
    fn refilled_buckets_are_dropped_before_busy_ones() {
        let t0 = Instant::now();
        let mut t: Buckets<u32> = Buckets::new(2);
        t.take(1, B, t0); // refills after 1 s
        for _ in 0..3 {
            t.take(2, B, t0 + Duration::from_secs(10));
        }
        // Key 1 is full again at t0+10s and goes first; key 2 stays throttled.
        t.take(3, B, t0 + Duration::from_secs(10));
        assert_eq!(t.len(), 2);
        assert!(!t.has_token(&2, B, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn a_sweep_forgets_refilled_buckets_and_gives_the_room_back() {
        let budget = Budget {
            burst: 2,
            per_minute: 60,
        };
        let t0 = Instant::now();
        let mut b: Buckets<u32> = Buckets::new(100_000);
        for k in 0..10_000 {
            assert!(b.take(k, budget, t0).allowed());
        }
        // One client is still busy: it keeps its bucket (and so its limit).
        let later = t0 + Duration::from_secs(1);
        assert!(b.take(7, budget, later).allowed());
        assert!(b.take(7, budget, later).allowed());
        let before = b.map.capacity();
        b.sweep(later, |_| budget);
        assert_eq!(b.len(), 1);
        assert!(
            b.map.capacity() < before / 8,
            "{} of {before}",
            b.map.capacity()
        );
        assert!(!b.take(7, budget, later).allowed());
        // Refilled, it goes too.
        b.sweep(later + Duration::from_secs(3), |_| budget);
        assert!(b.is_empty());
    }

    #[test]
    fn log_gate_counts_what_it_holds_back() {
        let t0 = Instant::now();
        let mut g = LogGate::new(2, 1.0);
        assert_eq!(g.allow(t0), Some(0));
        assert_eq!(g.allow(t0), Some(0));
        assert_eq!(g.allow(t0), None);
        assert_eq!(g.allow(t0), None);
        assert_eq!(g.allow(t0 + Duration::from_secs(1)), Some(2));
    }
}
