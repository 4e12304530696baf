//! How many of something each client holds (connections, transfers, fetches), with a
//! cap per client and in total. Thread-safe; a [`Held`] gives its slot back when it is
//! dropped, so a slot can never leak on an early return or a panic.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

/// Counts per key, at most `per_key` each and `total` in all. A key holding nothing is
/// not stored: the table never holds more than `total` keys.
#[derive(Debug)]
pub struct Counts<K> {
    inner: Arc<Mutex<Inner<K>>>,
}

impl<K> Clone for Counts<K> {
    fn clone(&self) -> Self {
        Counts {
            inner: self.inner.clone(),
        }
    }
}

#[derive(Debug)]
struct Inner<K> {
    per_key: usize,
    total: usize,
    held: usize,
    by_key: HashMap<K, usize>,
}

/// Why [`Counts::try_hold`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// This key already holds `per_key`.
    Key,
    /// `total` are held in all.
    Total,
}

/// One slot held by a key; released when dropped.
#[derive(Debug)]
pub struct Held<K: Hash + Eq> {
    inner: Arc<Mutex<Inner<K>>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Counts<K> {
    /// `per_key` or `total` of 0 means no limit of that kind.
    pub fn new(per_key: usize, total: usize) -> Counts<K> {
        Counts {
            inner: Arc::new(Mutex::new(Inner {
                per_key: if per_key == 0 { usize::MAX } else { per_key },
                total: if total == 0 { usize::MAX } else { total },
                held: 0,
                by_key: HashMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K>> {
        lock(&self.inner)
    }

    /// Takes one slot for `key`, unless it or the whole table is at its cap.
    pub fn try_hold(&self, key: K) -> Result<Held<K>, Full> {
        let mut g = self.lock();
        let n = g.by_key.get(&key).copied().unwrap_or(0);
        if n >= g.per_key {
            return Err(Full::Key);
        }
        if g.held >= g.total {
            return Err(Full::Total);
        }
        g.held += 1;
        *g.by_key.entry(key.clone()).or_insert(0) += 1;
        Ok(Held {
            inner: self.inner.clone(),
            key,
        })
    }

    /// Slots `key` holds now.
    pub fn held_by(&self, key: &K) -> usize {
        self.lock().by_key.get(key).copied().unwrap_or(0)
    }

    /// Slots held in all.
    pub fn held(&self) -> usize {
        self.lock().held
    }

    /// Keys holding at least one slot.
    pub fn keys(&self) -> usize {
        self.lock().by_key.len()
    }
}

impl<K: Hash + Eq> Held<K> {
    pub fn key(&self) -> &K {
        &self.key
    }
}

impl<K: Hash + Eq> Drop for Held<K> {
    fn drop(&mut self) {
        let mut g = lock(&self.inner);
        g.held = g.held.saturating_sub(1);
        if let Some(n) = g.by_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                g.by_key.remove(&self.key);
            }
        }
    }
}

fn lock<K>(m: &Mutex<Inner<K>>) -> MutexGuard<'_, Inner<K>> {
    // The counts stay consistent under a panic elsewhere: every update is one step.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_key_and_in_total_and_releases_on_drop() {
        let c: Counts<u8> = Counts::new(2, 3);
        let a1 = c.try_hold(1).unwrap();
        let a2 = c.try_hold(1).unwrap();
        assert_eq!(c.try_hold(1).unwrap_err(), Full::Key);
        let b1 = c.try_hold(2).unwrap();
        assert_eq!(c.try_hold(3).unwrap_err(), Full::Total);
        assert_eq!((c.held(), c.held_by(&1), c.keys()), (3, 2, 2));
        drop(a1);
        assert_eq!(c.held_by(&1), 1);
        let c1 = c.try_hold(3).unwrap();
        drop((a2, b1, c1));
        assert_eq!((c.held(), c.keys()), (0, 0));
    }

    #[test]
    fn zero_means_unlimited() {
        let c: Counts<u8> = Counts::new(0, 0);
        let held: Vec<_> = (0..1000).map(|_| c.try_hold(1).unwrap()).collect();
        assert_eq!(c.held_by(&1), 1000);
        drop(held);
        assert_eq!(c.held(), 0);
    }

    #[test]
    fn held_across_threads() {
        let c: Counts<u8> = Counts::new(0, 0);
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let h = c.try_hold(i % 3).unwrap();
                        drop(h);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!((c.held(), c.keys()), (0, 0));
    }
}
