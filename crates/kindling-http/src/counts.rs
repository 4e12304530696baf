//! What a listener counts ([`Stats`]): its connections, and in [`RequestCounts`] the
//! requests answered by endpoint and status, bytes sent and downloads cut short by
//! endpoint. Counted by the server where it answers (one atomic add, no lock for the
//! usual statuses), read by `/metrics` at each scrape.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::Endpoint;

/// Counters of one listener (read by the metrics).
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections open now.
    pub open: AtomicUsize,
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections closed at once: the client already had `per_client` open.
    pub refused_per_client: AtomicU64,
    /// Connections closed at once: `total` were open.
    pub refused_total: AtomicU64,
    /// `accept` failures (e.g. EMFILE: out of descriptors).
    pub accept_errors: AtomicU64,
    /// Connections closed because a write made no progress for `write_timeout`.
    pub write_timeouts: AtomicU64,
    /// Admin only: requests refused for missing or wrong credentials (401).
    pub auth_refused: AtomicU64,
    /// Admin only: TLS handshakes that failed (no or bad client certificate, ...).
    pub tls_failed: AtomicU64,
    /// Requests answered on this listener.
    pub requests: crate::RequestCounts,
}

/// The statuses Kindling answers, each with a counter per endpoint; others (rare) are
/// counted in a map.
const STATUSES: [u16; 24] = [
    200, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 412, 413, 414, 416,
    429, 431, 500, 502, 503,
];
const ENDPOINTS: usize = Endpoint::ALL.len();

/// See the module documentation.
#[derive(Debug)]
pub struct RequestCounts {
    by_status: [[AtomicU64; STATUSES.len()]; ENDPOINTS],
    other_status: Mutex<BTreeMap<(usize, u16), u64>>,
    bytes: [AtomicU64; ENDPOINTS],
    cut: [AtomicU64; ENDPOINTS],
}

impl Default for RequestCounts {
    fn default() -> Self {
        RequestCounts {
            by_status: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            other_status: Mutex::default(),
            bytes: std::array::from_fn(|_| AtomicU64::new(0)),
            cut: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl RequestCounts {
    /// A request answered with `status` and `bytes` of body sent; `complete` false: the
    /// body stopped before its end (the client went away, or the body failed).
    pub fn answered(&self, endpoint: Endpoint, status: u16, bytes: u64, complete: bool) {
        let e = endpoint.index();
        match STATUSES.iter().position(|s| *s == status) {
            Some(i) => {
                if let Some(c) = self.by_status.get(e).and_then(|row| row.get(i)) {
                    c.fetch_add(1, Relaxed);
                }
            }
            None => {
                if let Ok(mut m) = self.other_status.lock() {
                    *m.entry((e, status)).or_default() += 1;
                }
            }
        }
        if let Some(b) = self.bytes.get(e) {
            b.fetch_add(bytes, Relaxed);
        }
        if !complete && let Some(c) = self.cut.get(e) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Every (endpoint, status) counted, with its count.
    pub fn requests(&self) -> Vec<(Endpoint, u16, u64)> {
        let mut out = Vec::new();
        for (endpoint, row) in Endpoint::ALL.iter().zip(&self.by_status) {
            for (status, c) in STATUSES.iter().zip(row) {
                let n = c.load(Relaxed);
                if n > 0 {
                    out.push((*endpoint, *status, n));
                }
            }
        }
        if let Ok(m) = self.other_status.lock() {
            for ((e, status), n) in m.iter() {
                if let Some(endpoint) = Endpoint::ALL.get(*e) {
                    out.push((*endpoint, *status, *n));
                }
            }
        }
        out
    }

    /// Body bytes sent, by endpoint (endpoints that answered at least once).
    pub fn bytes(&self) -> Vec<(Endpoint, u64)> {
        self.per_endpoint(&self.bytes, true)
    }

    /// Downloads cut short, by endpoint (those with any).
    pub fn cut(&self) -> Vec<(Endpoint, u64)> {
        self.per_endpoint(&self.cut, false)
    }

    fn per_endpoint(&self, of: &[AtomicU64; ENDPOINTS], answered: bool) -> Vec<(Endpoint, u64)> {
        let seen: Vec<bool> = if answered {
            let mut seen = vec![false; ENDPOINTS];
            for (e, _, _) in self.requests() {
                if let Some(s) = seen.get_mut(e.index()) {
                    *s = true;
                }
            }
            seen
        } else {
            vec![false; ENDPOINTS]
        };
        Endpoint::ALL
            .iter()
            .zip(of)
            .zip(seen)
            .filter_map(|((e, c), seen)| {
                let n = c.load(Relaxed);
                (n > 0 || seen).then_some((*e, n))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_by_endpoint_and_status() {
        let c = RequestCounts::default();
        c.answered(Endpoint::Ipxe, 200, 10, true);
        c.answered(Endpoint::Ipxe, 200, 5, true);
        c.answered(Endpoint::Ipxe, 404, 0, true);
        c.answered(Endpoint::Assets, 200, 7, false);
        c.answered(Endpoint::Assets, 418, 0, true);
        let mut r = c.requests();
        r.sort_by_key(|(e, s, _)| (e.label(), *s));
        assert_eq!(
            r,
            [
                (Endpoint::Assets, 200, 1),
                (Endpoint::Assets, 418, 1),
                (Endpoint::Ipxe, 200, 2),
                (Endpoint::Ipxe, 404, 1),
            ]
        );
        assert_eq!(c.bytes(), [(Endpoint::Ipxe, 15), (Endpoint::Assets, 7)]);
        assert_eq!(c.cut(), [(Endpoint::Assets, 1)]);
    }
}
