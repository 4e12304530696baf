//! The on-disk journal: JSON lines (one serialisable record each: Kindling's boot events),
//! appended by one writer thread, rotated at a size cap with a fixed number of files, read
//! back at start-up. Generic over the record type.
//!
//! Files in the state directory: `events.jsonl` (being written), `events.jsonl.1` (the
//! previous one) ... `events.jsonl.<files-1>` (oldest). At most `files` files of at most
//! `max_bytes` each (a single event larger than the cap is still written whole).
//!
//! Durability: every batch of events is handed to the kernel with one `write(2)` as soon
//! as the writer thread wakes, so a crash of the process loses at most the events still in
//! the channel. `fsync` decides when data also reaches the disk (power loss):
//! `always` (after every batch), `interval` (at most every `fsync_interval_ms`, the
//! default, 1 s), `never` (left to the kernel). Rotation and shutdown always sync.
//!
//! A line cut by a crash (no trailing newline) is skipped and counted when read back; the
//! writer starts a fresh line before appending after such a tail.
//!
//! History never stops a boot: when the journal cannot be written (a full disk, a state
//! directory that cannot be created, a journal path that is a directory), the writer keeps
//! going without it. Events stay in memory, batches that could not be written are counted
//! as dropped ([`JournalHealth`], `kindling_journal_dropped_total`), one warning says so,
//! and the next batch after a back-off (1 s, doubling up to 10 s) tries again (after a
//! full disk, once 64 KiB are free again); a second warning says when the journal is
//! writable again. A write cut short by a full disk is
//! undone (the file is truncated back to its last complete line), or, when that is not
//! possible, the next write starts on a fresh line.
//!
//! The parts, each depending only on those listed before it:
//!
//! * `config`: [`JournalConfig`], [`FsyncPolicy`], the file names ([`journal_path`]).
//! * `health`: [`JournalHealth`] and its snapshot [`JournalStatus`].
//! * `read`: reading the files back ([`read_journal`], [`replay_journal`],
//!   [`replay_journal_lenient`]).
//! * `writer`: the [`JournalWriter`] and its thread: batching, rotation, fsync, outages
//!   (a full disk, an unwritable state directory).

mod config;
mod health;
mod read;
mod writer;

#[cfg(test)]
mod tests;

pub use config::{FsyncPolicy, JOURNAL_FILE, JournalConfig, journal_path};
pub use health::{JournalHealth, JournalStatus};
pub use read::{LINE_MAX, ReadBack, read_journal, replay_journal, replay_journal_lenient};
pub use writer::JournalWriter;

/// Nice value of Kindling's background threads (the journal writer, the timeline's
/// applier): when the CPU is short, answering DHCP, TFTP and HTTP comes first and these
/// catch up in the gaps (their queues are bounded; what does not fit is counted as dropped).
pub const BACKGROUND_NICE: i32 = 5;

/// Lowers the calling thread's scheduling priority to `nice` (on Linux, nice is per
/// thread).
pub fn background_priority(nice: i32) {
    // SAFETY: setpriority(2) on the calling thread (who = 0); no pointers.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a background thread's priority");
    }
}
