//! How the journal is doing: [`JournalHealth`], shared by the writer, the queue in
//! front of it and the metrics (enabled, writable, events dropped, why it cannot be
//! written), and its snapshot [`JournalStatus`] for `/api/v1/status`; its series
//! (`kindling_journal_*`) are registered at each scrape by [`JournalHealth::register`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// How the journal is doing, shared by the writer, the queue in front of it and the
/// metrics: events that did not reach the journal, and whether it can be written now.
#[derive(Debug, Default)]
pub struct JournalHealth {
    /// A journal is configured (a writer was started with this health).
    pub(super) enabled: AtomicBool,
    /// The last attempt to write (or, before any write, to open) the journal worked.
    writable: AtomicBool,
    /// Events not journaled: the writer's queue was full, or writing failed.
    dropped: AtomicU64,
    /// Why the journal cannot be written, while it cannot.
    error: Mutex<Option<String>>,
    /// Damaged lines skipped when the journal was read back at start-up.
    torn: AtomicU64,
}

/// A snapshot of [`JournalHealth`], as `/api/v1/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStatus {
    pub enabled: bool,
    pub writable: bool,
    pub dropped: u64,
    pub error: Option<String>,
}

impl JournalHealth {
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn writable(&self) -> bool {
        self.writable.load(Ordering::Relaxed)
    }

    /// Events that did not reach the journal (`kindling_journal_dropped_total`).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn error(&self) -> Option<String> {
        self.error.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub fn status(&self) -> JournalStatus {
        JournalStatus {
            enabled: self.enabled(),
            writable: self.writable(),
            dropped: self.dropped(),
            error: self.error(),
        }
    }

    /// Damaged lines (torn by a crash, or not a record) skipped at start-up.
    pub fn set_torn_lines(&self, n: u64) {
        self.torn.store(n, Ordering::Relaxed);
    }

    /// Registers the journal's series in `r` (`/metrics`, at each scrape).
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::{counter::ConstCounter, gauge::ConstGauge};
        r.register(
            "kindling_journal_dropped",
            "Events not journaled (kept in memory only): the writer's queue was full, or the journal could not be written (full disk, unwritable state directory)",
            ConstCounter::new(self.dropped()),
        );
        if self.enabled() {
            r.register(
                "kindling_journal_writable",
                "1 while the journal can be written; 0 while boot timelines are kept in memory only (writing is retried)",
                ConstGauge::new(i64::from(self.writable())),
            );
        }
        r.register(
            "kindling_journal_torn_lines",
            "Damaged journal lines skipped at start-up",
            ConstGauge::new(self.torn.load(Ordering::Relaxed) as i64),
        );
    }

    pub(crate) fn add_dropped(&self, n: u64) {
        if n > 0 {
            self.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(super) fn set_writable(&self) {
        self.writable.store(true, Ordering::Relaxed);
        if let Ok(mut e) = self.error.lock() {
            *e = None;
        }
    }

    pub(super) fn set_failed(&self, error: &str) {
        self.writable.store(false, Ordering::Relaxed);
        if let Ok(mut e) = self.error.lock() {
            *e = Some(error.to_string());
        }
    }
}
