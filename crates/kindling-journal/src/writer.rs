//! Writing the journal: the [`JournalWriter`] handle (never blocks, never fails) and
//! its thread's `WriterState`: batching queued lines into one write, rotation at the
//! size cap, fsync by [`FsyncPolicy`], and outages (a full disk, a state directory or
//! journal path that cannot be used) with back-off, dropped-event counts and the undoing
//! of a write cut short. The active file is reached through the [`JournalFile`] trait so
//! that tests can make it fail on purpose.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::{FsyncPolicy, JournalConfig, journal_path};
use serde::Serialize;

use super::health::JournalHealth;

/// Events (lines) in a piece of journal text.
pub(super) fn lines_in(data: &[u8]) -> u64 {
    data.iter().filter(|b| **b == b'\n').count() as u64
}

/// The active journal file as the writer uses it: a real file, or one that fails on
/// purpose in tests.
pub(crate) trait JournalFile: Send {
    /// One `write(2)` at the end of the file: may write less than `buf`.
    fn append(&mut self, buf: &[u8]) -> io::Result<usize>;
    fn sync(&mut self) -> io::Result<()>;
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    fn size(&self) -> io::Result<u64>;
    /// The last byte (`None` for an empty file).
    fn last_byte(&self) -> io::Result<Option<u8>>;
}

impl JournalFile for File {
    fn append(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn last_byte(&self) -> io::Result<Option<u8>> {
        let size = self.size()?;
        if size == 0 {
            return Ok(None);
        }
        let mut b = [0u8; 1];
        self.read_exact_at(&mut b, size - 1)?;
        Ok(Some(b[0]))
    }
}

/// Opens (creating it if missing) the active journal file at a path.
pub(crate) type Opener = Box<dyn FnMut(&Path) -> io::Result<Box<dyn JournalFile>> + Send>;

/// The real opener: appends, never blocks on a FIFO, refuses anything but a regular file.
pub(super) fn open_journal_file(path: &Path) -> io::Result<Box<dyn JournalFile>> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(Box::new(f))
}

/// Creates the state directory, with a plain reason when it cannot be.
fn create_state_dir(dir: &Path) -> Result<(), String> {
    match fs::create_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(_) if dir.exists() && !dir.is_dir() => Err(format!(
            "the state directory {} exists and is not a directory",
            dir.display()
        )),
        Err(e) => Err(format!(
            "cannot create the state directory {}: {e}",
            dir.display()
        )),
    }
}

/// First wait before writing again after a failure; it doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Free space wanted, besides the batch, before writing again after a full disk: a try
/// that only fills the last few KiB of a block would fail again at once (and the
/// journal would flap between writable and not).
const RESUME_FREE: u64 = 64 * 1024;

/// Bytes free for Kindling on the file system holding `dir` (the root's reserve counts
/// when running as root); `None` when it cannot be told.
// The statvfs fields are 64-bit here, not on every target.
#[allow(clippy::useless_conversion)]
pub(super) fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid place for the result.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    let blocks = if unsafe { libc::geteuid() } == 0 {
        st.f_bfree
    } else {
        st.f_bavail
    };
    Some(u64::from(blocks).saturating_mul(u64::from(st.f_frsize)))
}

pub(super) fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

enum Msg {
    Line(Vec<u8>),
    Flush(mpsc::Sender<()>),
}

/// The writer handle: cheap to call from any thread, never blocks (a full queue drops
/// the event and counts it), never fails (a journal that cannot be written is counted
/// and retried, see the module documentation).
pub struct JournalWriter {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
    /// Bytes handed to the writer thread and not yet written.
    queued: Arc<AtomicUsize>,
    health: Arc<JournalHealth>,
}

/// Batches queued between the ops thread and the writer thread.
const QUEUE: usize = 1024;
/// Bytes queued for the writer at most (a disk slower than a storm drops, and counts,
/// rather than growing memory).
const QUEUE_BYTES: usize = 8 << 20;

impl JournalWriter {
    /// Creates the directory, opens the journal and starts the writer thread. When the
    /// journal cannot be opened, one warning says so and the writer starts anyway:
    /// batches are counted as dropped until a write works ([`JournalWriter::health`]).
    pub fn start(cfg: JournalConfig) -> JournalWriter {
        Self::start_with_health(cfg, Arc::default())
    }

    /// [`JournalWriter::start`], reporting into `health` (the metrics' copy).
    pub fn start_with_health(cfg: JournalConfig, health: Arc<JournalHealth>) -> JournalWriter {
        Self::start_with(cfg, health, Box::new(open_journal_file), RETRY_MIN)
    }

    /// With this way to open the file and this first back-off (tests).
    pub(crate) fn start_with(
        cfg: JournalConfig,
        health: Arc<JournalHealth>,
        opener: Opener,
        retry_min: Duration,
    ) -> JournalWriter {
        health.enabled.store(true, Ordering::Relaxed);
        let dir = cfg.dir.clone();
        let mut state = WriterState::new(cfg, opener, health.clone());
        state.retry_min = retry_min;
        if state.ensure_open() {
            health.set_writable();
        }
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        let spawned = std::thread::Builder::new()
            .name("kindling-journal".into())
            .spawn(move || {
                crate::background_priority(crate::BACKGROUND_NICE);
                state.run(rx, &q)
            });
        let (tx, thread) = match spawned {
            Ok(t) => (Some(tx), Some(t)),
            Err(e) => {
                let msg = format!("could not start the journal thread: {e}");
                tracing::warn!(
                    target: "kindling::ops",
                    dir = %dir.display(),
                    error = %msg,
                    "boot history is kept in memory only"
                );
                health.set_failed(&msg);
                (None, None)
            }
        };
        JournalWriter {
            tx,
            thread,
            queued,
            health,
        }
    }

    /// Dropped events, writability and the reason it is not writable.
    pub fn health(&self) -> &Arc<JournalHealth> {
        &self.health
    }

    /// Queues a batch of events as one write; returns how many were dropped (all of
    /// them when the queue is full or the writer is gone, else those that failed to
    /// serialise), also counted in [`JournalHealth::dropped`].
    pub fn append_batch<T: Serialize>(&self, evs: &[T]) -> usize {
        let dropped = self.queue_batch(evs);
        self.health.add_dropped(dropped as u64);
        dropped
    }

    fn queue_batch<T: Serialize>(&self, evs: &[T]) -> usize {
        let Some(tx) = &self.tx else { return evs.len() };
        let mut buf = Vec::with_capacity(evs.len() * 256);
        let mut failed = 0;
        for ev in evs {
            let start = buf.len();
            if serde_json::to_writer(&mut buf, ev).is_ok() {
                buf.push(b'\n');
            } else {
                buf.truncate(start);
                failed += 1;
            }
        }
        if buf.is_empty() {
            return failed;
        }
        let len = buf.len();
        if self.queued.fetch_add(len, Ordering::AcqRel) + len > QUEUE_BYTES {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return evs.len();
        }
        match tx.try_send(Msg::Line(buf)) {
            Ok(()) => failed,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                evs.len()
            }
        }
    }

    /// Waits until everything queued so far is written (or counted as dropped) and synced.
    pub fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = mpsc::channel();
        if tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(Duration::from_secs(10));
        }
    }

    /// Flushes and stops the writer thread.
    pub fn close(&mut self) {
        self.flush();
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// While the journal cannot be written.
struct Outage {
    since: Instant,
    /// No write is tried before this; batches arriving meanwhile are dropped.
    retry_at: Instant,
    backoff: Duration,
    /// Events dropped during this outage.
    dropped: u64,
    error: String,
    /// It is a full disk (ENOSPC, EDQUOT): the next try waits for free space too.
    full: bool,
}

struct WriterState {
    cfg: JournalConfig,
    open: Opener,
    /// `None` while the journal cannot be opened (and after a failed write: the next try
    /// opens it again).
    file: Option<Box<dyn JournalFile>>,
    size: u64,
    /// The file may end inside a line: the next write starts with a newline.
    torn: bool,
    last_sync: Instant,
    dirty: bool,
    health: Arc<JournalHealth>,
    outage: Option<Outage>,
    /// First back-off after a failure ([`RETRY_MIN`]; shorter in tests).
    retry_min: Duration,
}

impl WriterState {
    fn new(cfg: JournalConfig, open: Opener, health: Arc<JournalHealth>) -> WriterState {
        WriterState {
            cfg,
            open,
            file: None,
            size: 0,
            torn: false,
            last_sync: Instant::now(),
            dirty: false,
            health,
            outage: None,
            retry_min: RETRY_MIN,
        }
    }

    /// Opens the active file if it is not open; false (and an outage) when it cannot be.
    fn ensure_open(&mut self) -> bool {
        if self.file.is_some() {
            return true;
        }
        if let Err(e) = create_state_dir(&self.cfg.dir) {
            self.fail(e, 0, false);
            return false;
        }
        let path = journal_path(&self.cfg.dir, 0);
        let opened = (self.open)(&path).and_then(|f| {
            let size = f.size()?;
            let last = f.last_byte()?;
            Ok((f, size, last))
        });
        match opened {
            Ok((f, size, last)) => {
                self.file = Some(f);
                self.size = size;
                // Start on a fresh line after a tail cut by a crash or a full disk.
                self.torn |= last.is_some_and(|b| b != b'\n');
                true
            }
            Err(e) => {
                self.fail(
                    format!("cannot open {}: {e}", path.display()),
                    0,
                    is_full(&e),
                );
                false
            }
        }
    }

    fn run(&mut self, rx: Receiver<Msg>, queued: &AtomicUsize) {
        let tick = self.cfg.fsync_interval.max(Duration::from_millis(10));
        loop {
            let first = match rx.recv_timeout(tick) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    self.maybe_sync(false);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.sync();
                    return;
                }
            };
            // Each queued buffer is written as it is (no copy into one batch); up to 1 MiB
            // of them between two fsync checks.
            let mut flushes = Vec::new();
            let mut next = Some(first);
            let mut written = 0;
            while let Some(m) = next.take() {
                match m {
                    Msg::Line(l) => {
                        queued.fetch_sub(l.len(), Ordering::AcqRel);
                        written += l.len();
                        self.write(&l);
                    }
                    Msg::Flush(d) => flushes.push(d),
                }
                if written < (1 << 20) {
                    next = rx.try_recv().ok();
                }
            }
            self.maybe_sync(!flushes.is_empty());
            for f in flushes {
                let _ = f.send(());
            }
        }
    }

    /// Whether a write may be tried now: not before the back-off has passed, and after a
    /// full disk, not before there is room again (else the next try is put off).
    fn may_try(&mut self, len: usize) -> bool {
        let Some(o) = &mut self.outage else {
            return true;
        };
        let now = Instant::now();
        if now < o.retry_at {
            return false;
        }
        if o.full
            && free_bytes(&self.cfg.dir)
                .is_some_and(|free| free < RESUME_FREE.saturating_add(len as u64))
        {
            o.backoff = (o.backoff * 2).min(RETRY_MAX.max(self.retry_min));
            o.retry_at = now + o.backoff;
            return false;
        }
        true
    }

    /// Writes complete lines, or counts them as dropped.
    fn write(&mut self, data: &[u8]) {
        if !self.may_try(data.len()) || !self.ensure_open() {
            self.count_dropped(lines_in(data));
            return;
        }
        if self.size > 0 && self.size + data.len() as u64 > self.cfg.max_bytes {
            // Split at line boundaries so that no record straddles two files.
            let mut rest = data;
            while !rest.is_empty() {
                let room = self.cfg.max_bytes.saturating_sub(self.size) as usize;
                let mut cut = 0;
                for (i, b) in rest.iter().enumerate() {
                    if *b == b'\n' {
                        if i < room {
                            cut = i + 1;
                        } else {
                            break;
                        }
                    }
                }
                if cut == 0 {
                    if self.size > 0 {
                        self.rotate();
                        continue;
                    }
                    // One record larger than the cap: write it whole.
                    cut = rest
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(rest.len(), |i| i + 1);
                }
                let (now, later) = rest.split_at(cut);
                if !self.write_raw(now) {
                    self.count_dropped(lines_in(later));
                    return;
                }
                rest = later;
            }
        } else {
            self.write_raw(data);
        }
    }

    /// Appends `data` (complete lines) to the active file; false when it was not (all
    /// of it) written, the lines lost counted as dropped.
    fn write_raw(&mut self, data: &[u8]) -> bool {
        let Some(file) = self.file.as_mut() else {
            self.count_dropped(lines_in(data));
            return false;
        };
        // The fresh line after a cut goes out in the same write as the data.
        let with_newline;
        let buf: &[u8] = if self.torn {
            with_newline = [b"\n".as_slice(), data].concat();
            &with_newline
        } else {
            data
        };
        let mut written = 0;
        let mut failure = None;
        while written < buf.len() {
            match file.append(&buf[written..]) {
                Ok(0) => {
                    failure = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let Some(e) = failure else {
            self.size += buf.len() as u64;
            self.torn = false;
            self.dirty = true;
            self.recovered();
            return true;
        };
        // Cut short (a full disk): take back the part written, so that no torn line is
        // left; if that is not possible, keep the complete lines and start the next
        // write on a fresh line.
        let mut kept = 0;
        if written > 0 {
            let undone = file.size().ok() == Some(self.size + written as u64)
                && file.truncate(self.size).is_ok();
            if !undone {
                let part = &buf[..written];
                kept = lines_in(part).saturating_sub(u64::from(self.torn));
                self.size += written as u64;
                self.dirty = true;
                self.torn = part.last() != Some(&b'\n');
            }
        }
        let path = journal_path(&self.cfg.dir, 0);
        self.fail(
            format!("cannot write {}: {e}", path.display()),
            lines_in(data).saturating_sub(kept),
            is_full(&e),
        );
        false
    }

    /// Events that did not reach the journal.
    fn count_dropped(&mut self, n: u64) {
        self.health.add_dropped(n);
        if let Some(o) = &mut self.outage {
            o.dropped += n;
        }
    }

    /// The journal cannot be written: close it, warn once per outage, back off.
    fn fail(&mut self, error: String, dropped: u64, full: bool) {
        // Opened again on the next try (the directory may have been replaced meanwhile).
        self.file = None;
        self.dirty = false;
        let now = Instant::now();
        match &mut self.outage {
            None => {
                tracing::warn!(
                    target: "kindling::ops",
                    dir = %self.cfg.dir.display(),
                    error = %error,
                    "boot journal cannot be written: boot timelines are kept in memory only \
                     (machines are still answered; dropped events are counted in \
                     kindling_journal_dropped_total); writing is tried again after a pause"
                );
                self.outage = Some(Outage {
                    since: now,
                    retry_at: now + self.retry_min,
                    backoff: self.retry_min,
                    dropped: 0,
                    error: error.clone(),
                    full,
                });
            }
            Some(o) => {
                o.backoff = (o.backoff * 2).min(RETRY_MAX.max(self.retry_min));
                o.retry_at = now + o.backoff;
                o.full = full;
                if o.error != error {
                    tracing::debug!(target: "kindling::ops", error = %error, "boot journal still cannot be written");
                    o.error = error.clone();
                }
            }
        }
        self.count_dropped(dropped);
        self.health.set_failed(&error);
    }

    /// A write worked: the end of an outage, if there was one.
    fn recovered(&mut self) {
        if let Some(o) = self.outage.take() {
            tracing::warn!(
                target: "kindling::ops",
                dir = %self.cfg.dir.display(),
                dropped = o.dropped,
                after_secs = o.since.elapsed().as_secs(),
                was = %o.error,
                "boot journal writable again; the events dropped meanwhile are in memory only"
            );
        }
        self.health.set_writable();
    }

    fn rotate(&mut self) {
        self.sync();
        self.file = None;
        let dir = self.cfg.dir.clone();
        let files = self.cfg.files.max(1);
        if files == 1 {
            let _ = fs::remove_file(journal_path(&dir, 0));
        } else {
            let _ = fs::remove_file(journal_path(&dir, files - 1));
            for n in (0..files - 1).rev() {
                let from = journal_path(&dir, n);
                if from.exists() {
                    let _ = fs::rename(&from, journal_path(&dir, n + 1));
                }
            }
        }
        self.size = 0;
        self.torn = false;
        if self.ensure_open()
            && let Ok(d) = File::open(&dir)
        {
            let _ = d.sync_all();
        }
    }

    fn maybe_sync(&mut self, force: bool) {
        let due = match self.cfg.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval => self.last_sync.elapsed() >= self.cfg.fsync_interval,
            FsyncPolicy::Never => false,
        };
        if force || due {
            self.sync();
        }
    }

    fn sync(&mut self) {
        if self.dirty
            && let Some(f) = self.file.as_mut()
        {
            if let Err(e) = f.sync() {
                // Data the kernel had may be lost: the next write starts a fresh line.
                self.torn = true;
                let path = journal_path(&self.cfg.dir, 0);
                let full = is_full(&e);
                self.fail(format!("cannot sync {}: {e}", path.display()), 0, full);
            }
            self.dirty = false;
        }
        self.last_sync = Instant::now();
    }
}
