//! What a listener counts ([`Stats`]): its connections, and in [`RequestCounts`] the
//! requests answered by endpoint and status, bytes sent and downloads cut short by
//! endpoint. Counted by the server where it answers (one atomic add, no lock for the
//! usual statuses), read by `/metrics` at each scrape.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointStatus {
    endpoint: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByEndpoint {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByListener {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerReason {
    listener: &'static str,
    reason: &'static str,
}

/// Registers the listeners' series in `r` (`/metrics`, at each scrape): requests by
/// endpoint and status, bytes and cut downloads by endpoint (summed over the
/// listeners), connections by listener (`http`: the boot listener; `admin`; `rpc`).
pub fn register_listeners(r: &mut Registry, listeners: &[(&'static str, Arc<Stats>)]) {
    let requests = Family::<EndpointStatus, Counter>::default();
    let [bytes, cut]: [Family<ByEndpoint, Counter>; 2] = Default::default();
    for (_, st) in listeners {
        let c = &st.requests;
        for (e, status, n) in c.requests() {
            let endpoint = e.label();
            requests
                .get_or_create(&EndpointStatus { endpoint, status })
                .inc_by(n);
        }
        for (family, counts) in [(&bytes, c.bytes()), (&cut, c.cut())] {
            for (e, n) in counts {
                family
                    .get_or_create(&ByEndpoint {
                        endpoint: e.label(),
                    })
                    .inc_by(n);
            }
        }
    }
    r.register(
        "kindling_http_requests",
        "HTTP requests by endpoint and status",
        requests,
    );
    r.register(
        "kindling_http_response_bytes",
        "HTTP response body bytes by endpoint (bytes handed to the connection)",
        bytes,
    );
    r.register(
        "kindling_http_downloads_cut",
        "Replies of 64 KiB or more whose body stopped before its end (client gone or body failed)",
        cut,
    );
    let open = Family::<ByListener, Gauge<u64, AtomicU64>>::default();
    let each: [Family<ByListener, Counter>; 5] = Default::default();
    let refused = Family::<ListenerReason, Counter>::default();
    for (listener, st) in listeners {
        let l = ByListener { listener };
        open.get_or_create(&l).set(st.open.load(Relaxed) as u64);
        let values = [
            st.accepted.load(Relaxed),
            st.accept_errors.load(Relaxed),
            st.write_timeouts.load(Relaxed),
            st.auth_refused.load(Relaxed),
            st.tls_failed.load(Relaxed),
        ];
        for (f, v) in each.iter().zip(values) {
            f.get_or_create(&l).inc_by(v);
        }
        for (reason, v) in [
            ("per_client", st.refused_per_client.load(Relaxed)),
            ("total", st.refused_total.load(Relaxed)),
        ] {
            refused
                .get_or_create(&ListenerReason { listener, reason })
                .inc_by(v);
        }
    }
    r.register(
        "kindling_http_connections",
        "Open connections, by listener (http: the boot listener; admin; rpc: the gRPC API)",
        open,
    );
    let [
        accepted,
        accept_errors,
        write_timeouts,
        auth_refused,
        tls_failed,
    ] = each;
    r.register(
        "kindling_http_connections_accepted",
        "Connections accepted and served, by listener",
        accepted,
    );
    r.register("kindling_http_connections_refused", "Connections closed at once, by listener and reason (per_client: the client already had max_connections_per_client open; total: max_connections were open)", refused);
    r.register("kindling_http_accept_errors", "Failed accepts (e.g. out of file descriptors), by listener; the loop backs off and keeps accepting", accept_errors);
    r.register("kindling_http_write_timeouts", "Connections closed because the client stopped reading (no write progress for the write timeout), by listener", write_timeouts);
    r.register(
        "kindling_admin_auth_refused",
        "Requests answered 401 for a missing or wrong bearer token",
        auth_refused,
    );
    r.register(
        "kindling_admin_tls_failed",
        "TLS handshakes that failed, by listener (admin, rpc): no, or an untrusted, client certificate; timeouts",
        tls_failed,
    );
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
