//! The live counters of the socket shell and their snapshots.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::policy::{Firmware, IgnoreReason};

#[derive(Default)]
pub(super) struct Counters {
    pub(super) received: AtomicU64,
    pub(super) offers: AtomicU64,
    pub(super) acks: AtomicU64,
    pub(super) naks: AtomicU64,
    pub(super) send_errors: AtomicU64,
    pub(super) refused_unsafe: AtomicU64,
    pub(super) ignored: [AtomicU64; IgnoreReason::ALL.len()],
    /// PXE/iPXE packets seen (the ones the observer hears of), by [`SEEN_LABELS`] index.
    pub(super) seen: [AtomicU64; SEEN_LABELS.len()],
}

/// Firmware labels of the `seen` counts: a [`Firmware`] label, or `unknown` (a PXE
/// vendor class without a firmware Kindling recognises).
pub const SEEN_LABELS: [&str; 5] = ["bios_pxe", "uefi_pxe", "uefi_http", "ipxe", "unknown"];

impl Counters {
    pub(super) fn seen(&self, firmware: Option<Firmware>) {
        let i = match firmware {
            Some(Firmware::BiosPxe) => 0,
            Some(Firmware::UefiPxe) => 1,
            Some(Firmware::UefiHttp) => 2,
            Some(Firmware::Ipxe) => 3,
            None => 4,
        };
        self.seen[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DhcpStats {
    /// Datagrams received on all sockets.
    pub received: u64,
    /// OFFERs sent.
    pub offers: u64,
    /// ACKs sent (port 4011, and full mode's on 67).
    pub acks: u64,
    /// NAKs sent (full mode).
    pub naks: u64,
    /// Replies the kernel refused to send.
    pub send_errors: u64,
    /// Replies withheld by the final `yiaddr == 0` check (always 0 unless there is a bug).
    pub refused_unsafe: u64,
    /// Ignored datagrams by reason label (every label present, zeros included).
    pub ignored: BTreeMap<String, u64>,
    /// PXE/iPXE packets seen, by firmware label (`SEEN_LABELS`, zeros included).
    pub seen: BTreeMap<String, u64>,
}

impl DhcpStats {
    /// Replies sent.
    pub fn replies(&self) -> u64 {
        self.offers + self.acks + self.naks
    }

    /// Count for one reason.
    pub fn ignored(&self, reason: IgnoreReason) -> u64 {
        self.ignored.get(reason.label()).copied().unwrap_or(0)
    }
}

/// A cheap clonable handle on the live counters (for a metrics endpoint).
#[derive(Clone)]
pub struct StatsHandle(pub(super) Arc<Counters>);

impl StatsHandle {
    pub fn snapshot(&self) -> DhcpStats {
        let c = &self.0;
        DhcpStats {
            received: c.received.load(Ordering::Relaxed),
            offers: c.offers.load(Ordering::Relaxed),
            acks: c.acks.load(Ordering::Relaxed),
            naks: c.naks.load(Ordering::Relaxed),
            send_errors: c.send_errors.load(Ordering::Relaxed),
            refused_unsafe: c.refused_unsafe.load(Ordering::Relaxed),
            ignored: IgnoreReason::ALL
                .iter()
                .map(|r| {
                    (
                        r.label().to_string(),
                        c.ignored[r.index()].load(Ordering::Relaxed),
                    )
                })
                .collect(),
            seen: SEEN_LABELS
                .iter()
                .zip(&c.seen)
                .map(|(l, n)| (l.to_string(), n.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}

impl Default for StatsHandle {
    /// Counters of no server (all zero).
    fn default() -> Self {
        StatsHandle(Arc::default())
    }
}

impl StatsHandle {
    /// Registers the proxy DHCP server's series in `r` (`/metrics`, at each scrape):
    /// `kindling_dhcp_seen_total{firmware}`, `kindling_dhcp_replies_total{message}`,
    /// `kindling_dhcp_ignored_total{reason}`, `kindling_dhcp_received_total`,
    /// `kindling_dhcp_send_errors_total`.
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::counter::{ConstCounter, Counter};
        use prometheus_client::metrics::family::Family;
        let st = self.snapshot();
        let labelled = |map: &std::collections::BTreeMap<String, u64>, label: &'static str| {
            let f = Family::<Vec<(&'static str, String)>, Counter>::default();
            for (k, v) in map {
                f.get_or_create(&vec![(label, k.clone())]).inc_by(*v);
            }
            f
        };
        let replies = std::collections::BTreeMap::from([
            ("offer".to_string(), st.offers),
            ("ack".to_string(), st.acks),
            ("nak".to_string(), st.naks),
        ]);
        r.register(
            "kindling_dhcp_seen",
            "PXE/iPXE DHCP packets received, by firmware",
            labelled(&st.seen, "firmware"),
        );
        r.register(
            "kindling_dhcp_replies",
            "DHCP replies sent, by message type",
            labelled(&replies, "message"),
        );
        r.register(
            "kindling_dhcp_ignored",
            "DHCP packets not answered, by reason",
            labelled(&st.ignored, "reason"),
        );
        r.register(
            "kindling_dhcp_received",
            "Datagrams received on the proxy DHCP sockets (ports 67 and 4011)",
            ConstCounter::new(st.received),
        );
        r.register(
            "kindling_dhcp_send_errors",
            "Proxy DHCP replies the kernel refused to send",
            ConstCounter::new(st.send_errors),
        );
    }
}
