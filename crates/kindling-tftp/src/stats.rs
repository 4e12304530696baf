//! Counters and the observer hook.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

use crate::transfer::Outcome;

/// Server-wide counters (monotonic, relaxed atomics).
#[derive(Debug, Default)]
pub struct TftpStats {
    pub requests: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub packets_sent: AtomicU64,
    pub retransmits: AtomicU64,
    pub stale_acks: AtomicU64,
    pub io_errors: AtomicU64,
    pub malformed: AtomicU64,
    pub unexpected: AtomicU64,
    pub rate_limited: AtomicU64,
    pub evicted: AtomicU64,
    /// Requests answered with an ERROR instead of a transfer, by [`Refusal`] (in
    /// [`Refusal::ALL`] order): what `kindling_tftp_refused_total` shows.
    pub refused: [AtomicU64; Refusal::ALL.len()],
    /// Transfers ended, by [`Outcome::label`] (in [`Outcome::LABELS`] order):
    /// `kindling_tftp_transfers_total`.
    pub ended: [AtomicU64; Outcome::LABELS.len()],
    /// File bytes acknowledged by clients in ended transfers: `kindling_tftp_bytes_total`.
    pub file_bytes: AtomicU64,
}

/// Plain copy of [`TftpStats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// RRQs received (including ones refused).
    pub requests: u64,
    /// Transfers that completed, plus client aborts with ERROR 8 after OACK.
    pub transfers_ok: u64,
    /// Transfers that started and then failed (timeout, client error, read error, shutdown).
    pub transfers_failed: u64,
    /// Of `transfers_ok`: client declined our OACK with ERROR 8 (EDK2 tsize probe).
    pub options_declined: u64,
    /// Of `transfers_failed`: retry limit reached.
    pub timeouts: u64,
    /// UDP payload bytes sent (all packets, including retransmissions).
    pub bytes_sent: u64,
    pub packets_sent: u64,
    /// Timer-driven retransmission rounds.
    pub retransmits: u64,
    /// ACKs ignored because they did not advance (duplicates, old, future).
    pub stale_acks: u64,
    /// RRQs dropped unanswered because max_transfers transfers ran and none could be
    /// evicted (the client sends them again).
    pub busy: u64,
    /// WRQs refused (read-only server).
    pub wrq_refused: u64,
    /// RRQs refused with ERROR 1.
    pub not_found: u64,
    /// RRQs refused with ERROR 2 (traversal, symlink out of root, permissions).
    pub access_violations: u64,
    /// RRQs refused with ERROR 0 because of an I/O error.
    pub io_errors: u64,
    /// Transfers ended by a client ERROR other than 8.
    pub client_errors: u64,
    /// Undecodable datagrams dropped.
    pub malformed: u64,
    /// Decodable but unexpected datagrams dropped (stray DATA/ACK on the listener, unknown peer).
    pub unexpected: u64,
    /// Datagrams to the listening port dropped unanswered: the client address was over
    /// its request rate (`rate_limit`, `rate_burst`). Not counted in `requests`.
    pub rate_limited: u64,
    /// RRQs refused because the client address already held `max_transfers_per_client`
    /// transfers.
    pub client_limit: u64,
    /// Idle transfers stopped to give their slot to a new client address (the server
    /// was at `max_transfers`). Also counted in `transfers_failed`.
    pub evicted: u64,
}

impl TftpStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let ended = |o: Outcome| self.ended[o.index()].load(Relaxed);
        let refused = |r: Refusal| self.refused[r.index()].load(Relaxed);
        StatsSnapshot {
            requests: self.requests.load(Relaxed),
            transfers_ok: ended(Outcome::Completed) + ended(Outcome::OptionsDeclined),
            transfers_failed: self.ended.iter().map(|c| c.load(Relaxed)).sum::<u64>()
                - ended(Outcome::Completed)
                - ended(Outcome::OptionsDeclined),
            options_declined: ended(Outcome::OptionsDeclined),
            timeouts: ended(Outcome::TimedOut),
            bytes_sent: self.bytes_sent.load(Relaxed),
            packets_sent: self.packets_sent.load(Relaxed),
            retransmits: self.retransmits.load(Relaxed),
            stale_acks: self.stale_acks.load(Relaxed),
            busy: refused(Refusal::Busy),
            wrq_refused: refused(Refusal::WriteRequest),
            not_found: refused(Refusal::NotFound),
            access_violations: refused(Refusal::AccessViolation),
            io_errors: self.io_errors.load(Relaxed),
            client_errors: ended(Outcome::ClientError {
                code: 0,
                message: String::new(),
            }),
            malformed: self.malformed.load(Relaxed),
            unexpected: self.unexpected.load(Relaxed),
            rate_limited: self.rate_limited.load(Relaxed),
            client_limit: refused(Refusal::ClientLimit),
            evicted: self.evicted.load(Relaxed),
        }
    }

    /// `(label, count)` of every [`Refusal`].
    pub fn refused_by_reason(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Refusal::ALL
            .iter()
            .zip(&self.refused)
            .map(|(r, c)| (r.label(), c.load(Relaxed)))
    }

    /// `(label, count)` of every [`Outcome`].
    pub fn ended_by_outcome(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Outcome::LABELS
            .iter()
            .zip(&self.ended)
            .map(|(l, c)| (*l, c.load(Relaxed)))
    }

    pub(crate) fn refusal(&self, why: Refusal) {
        self.refused[why.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn ended(&self, outcome: &Outcome) {
        self.ended[outcome.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn add(c: &AtomicU64, v: u64) {
        c.fetch_add(v, Relaxed);
    }
}

/// Why a request got an ERROR instead of a transfer. Each has a stable snake_case label
/// (metrics, the boot timeline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The file does not exist (or is not a regular file).
    NotFound,
    /// The name is outside the root, or the file is not readable.
    AccessViolation,
    /// The file could not be opened for another reason.
    IoError,
    /// `max_transfers` transfers are running.
    Busy,
    /// The address already holds `max_transfers_per_client` transfers.
    ClientLimit,
    /// A write request (WRQ): the server is read-only.
    WriteRequest,
    /// Mode `mail` (RFC 1350's obsolete mode).
    MailMode,
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::NotFound,
        Refusal::AccessViolation,
        Refusal::IoError,
        Refusal::Busy,
        Refusal::ClientLimit,
        Refusal::WriteRequest,
        Refusal::MailMode,
    ];

    /// Position in [`Refusal::ALL`] (the counters' index).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The stable label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NotFound => "not_found",
            Refusal::AccessViolation => "access_violation",
            Refusal::IoError => "io_error",
            Refusal::Busy => "busy",
            Refusal::ClientLimit => "client_limit",
            Refusal::WriteRequest => "write_request",
            Refusal::MailMode => "mail_mode",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Hook for the boot timeline. Both methods default to doing nothing.
/// Called from the transfer's task: keep them cheap and non-blocking.
pub trait TftpObserver: Send + Sync {
    /// A transfer was accepted and the file opened.
    fn transfer_started(&self, _peer: SocketAddr, _file: &str, _size: Option<u64>) {}
    /// A request got an ERROR instead of a transfer, for `why`; `reason` is the
    /// explanation for people (server-side detail included; the client only got the
    /// TFTP error message). Requests dropped by the rate limit are not reported (they
    /// get no answer either; see `StatsSnapshot::rate_limited`). All texts are as the
    /// client sent them: escape them before writing them to a log.
    fn request_refused(&self, _peer: SocketAddr, _file: &str, _why: Refusal, _reason: &str) {}
    /// A started transfer ended. `bytes` = file bytes acknowledged by the client.
    fn transfer_finished(
        &self,
        _peer: SocketAddr,
        _file: &str,
        _bytes: u64,
        _duration: Duration,
        _outcome: &Outcome,
    ) {
    }
}

/// A family with one label of static text.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct Label {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct Why {
    reason: &'static str,
}

impl TftpStats {
    /// Registers the TFTP server's series in `r` (`/metrics`, at each scrape):
    /// `kindling_tftp_transfers_total{outcome}`, `kindling_tftp_refused_total{reason}`,
    /// `kindling_tftp_bytes_total`.
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::counter::{ConstCounter, Counter};
        use prometheus_client::metrics::family::Family;
        let ended = Family::<Label, Counter>::default();
        for (outcome, v) in self.ended_by_outcome() {
            ended.get_or_create(&Label { outcome }).inc_by(v);
        }
        let refused = Family::<Why, Counter>::default();
        for (reason, v) in self.refused_by_reason() {
            refused.get_or_create(&Why { reason }).inc_by(v);
        }
        r.register(
            "kindling_tftp_transfers",
            "TFTP transfers ended, by outcome",
            ended,
        );
        r.register(
            "kindling_tftp_refused",
            "TFTP requests answered with an ERROR instead of a transfer, by reason",
            refused,
        );
        r.register(
            "kindling_tftp_bytes",
            "File bytes acknowledged by TFTP clients",
            ConstCounter::new(self.file_bytes.load(std::sync::atomic::Ordering::Relaxed)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_indexes_follow_the_label_lists() {
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r}");
        }
        let st = TftpStats::default();
        st.refusal(Refusal::Busy);
        st.ended(&Outcome::OptionsDeclined);
        st.ended(&Outcome::TimedOut);
        let s = st.snapshot();
        assert_eq!((s.busy, s.not_found), (1, 0));
        assert_eq!((s.transfers_ok, s.options_declined), (1, 1));
        assert_eq!((s.transfers_failed, s.timeouts), (1, 1));
    }
}
