//! The on-disk journal: JSON lines, appended by one writer thread, rotated at a size cap
//! with a fixed number of files, read back at start-up.
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

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::Event;

/// Name of the active journal file.
pub const JOURNAL_FILE: &str = "events.jsonl";

/// When the journal is flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// After every write.
    Always,
    /// At most every `fsync_interval_ms`.
    #[default]
    Interval,
    /// Never: the kernel writes back when it chooses.
    Never,
}

/// Journal settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    pub dir: PathBuf,
    /// Size at which the active file is rotated.
    pub max_bytes: u64,
    /// Files kept, the active one included (>= 1).
    pub files: usize,
    pub fsync: FsyncPolicy,
    pub fsync_interval: Duration,
}

impl JournalConfig {
    pub fn new(dir: impl Into<PathBuf>) -> JournalConfig {
        JournalConfig {
            dir: dir.into(),
            max_bytes: 8 * 1024 * 1024,
            files: 4,
            fsync: FsyncPolicy::Interval,
            fsync_interval: Duration::from_secs(1),
        }
    }
}

/// Path of journal file number `n` (0 = active).
pub fn journal_path(dir: &Path, n: usize) -> PathBuf {
    if n == 0 {
        dir.join(JOURNAL_FILE)
    } else {
        dir.join(format!("{JOURNAL_FILE}.{n}"))
    }
}

/// What reading the journal found.
#[derive(Debug, Default)]
pub struct ReadBack {
    /// Events, oldest first ([`read_journal`]; empty from [`replay_journal`], which hands
    /// them over one by one).
    pub events: Vec<Event>,
    /// Events read (complete lines that parsed).
    pub read: u64,
    /// Lines cut short by a crash (no trailing newline), skipped.
    pub torn_lines: u64,
    /// Complete lines that did not parse, skipped.
    pub bad_lines: u64,
    pub files: usize,
    pub bytes: u64,
    /// Files that could not be read (or not to the end), with the reason; only
    /// [`replay_journal_lenient`] goes on after one.
    pub errors: Vec<String>,
}

/// Reads every journal file in `dir`, oldest first, into [`ReadBack::events`]. Missing
/// files are fine. (Memory grows with the journal: start-up uses [`replay_journal`].)
pub fn read_journal(dir: &Path, files: usize) -> io::Result<ReadBack> {
    let mut events = Vec::new();
    let mut out = replay_journal(dir, files, |ev| events.push(ev))?;
    out.events = events;
    Ok(out)
}

/// Longest journal line read back (an event line is a few hundred bytes; the longest
/// request paths make a few KiB). Longer "lines" (a damaged file, a zero-filled tail
/// after a power cut) are skipped as bad without being held in memory.
pub const LINE_MAX: usize = 1 << 20;

/// Reads one line (through its `\n`, if any) into `buf`, keeping at most `LINE_MAX`
/// bytes of it. Returns the bytes consumed and whether the line was longer.
fn read_line_capped(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut over = false;
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok((consumed, over));
        }
        let (take, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        let room = LINE_MAX.saturating_sub(buf.len());
        if take > room {
            over = true;
        }
        buf.extend_from_slice(avail.get(..take.min(room)).unwrap_or(&[]));
        r.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, over));
        }
    }
}

/// Reads every journal file in `dir`, oldest first, line by line, handing each event to
/// `each` as it is read: memory does not grow with the journal (lines are capped at
/// [`LINE_MAX`]). Missing files are fine. Lines cut by a crash and lines that do not parse are
/// skipped and counted. A file that cannot be read (not a regular file, an I/O error) is an
/// error.
pub fn replay_journal(dir: &Path, files: usize, each: impl FnMut(Event)) -> io::Result<ReadBack> {
    replay(dir, files, each, false)
}

/// [`replay_journal`], but a file that cannot be read (a directory where a journal file
/// should be, an I/O error half way) is skipped, after the events read from it so far, and
/// reported in [`ReadBack::errors`]: the server starts with whatever history it can read.
pub fn replay_journal_lenient(dir: &Path, files: usize, each: impl FnMut(Event)) -> ReadBack {
    match replay(dir, files, each, true) {
        Ok(rb) => rb,
        // Lenient reading does not fail; keep the type honest anyway.
        Err(e) => ReadBack {
            errors: vec![e.to_string()],
            ..ReadBack::default()
        },
    }
}

/// Opens a journal file for reading without blocking on a FIFO; `None` when it is missing.
fn open_for_reading(path: &Path) -> io::Result<Option<File>> {
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        // Missing, or the state directory is not a directory (then nothing is there to
        // read; the writer says why it cannot write).
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    if !f.metadata()?.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(Some(f))
}

fn replay(
    dir: &Path,
    files: usize,
    mut each: impl FnMut(Event),
    lenient: bool,
) -> io::Result<ReadBack> {
    let mut out = ReadBack::default();
    // Rotated files that exist, even beyond `files` (a smaller cap than before).
    let mut n_max = files.max(1);
    while journal_path(dir, n_max).exists() {
        n_max += 1;
    }
    let mut buf = Vec::new();
    for n in (0..n_max).rev() {
        let path = journal_path(dir, n);
        let mut r = match open_for_reading(&path) {
            Ok(Some(f)) => BufReader::with_capacity(64 * 1024, f),
            Ok(None) => continue,
            Err(e) if lenient => {
                out.errors.push(e.to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        out.files += 1;
        loop {
            buf.clear();
            let (got, overlong) = match read_line_capped(&mut r, &mut buf) {
                Ok(x) => x,
                Err(e) if lenient => {
                    out.errors.push(format!("{}: {e}", path.display()));
                    break;
                }
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            };
            if got == 0 {
                break;
            }
            out.bytes += got as u64;
            if overlong {
                out.bad_lines += 1;
                buf = Vec::new();
                continue;
            }
            let (line, complete) = match buf.split_last() {
                Some((b'\n', l)) => (l, true),
                _ => (&buf[..], false),
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Event>(line) {
                Ok(ev) if complete => {
                    out.read += 1;
                    each(ev);
                }
                // A tail without its newline was cut by a crash even when it parses
                // (the writer always ends a record with '\n').
                Ok(_) => out.torn_lines += 1,
                Err(_) if !complete => out.torn_lines += 1,
                Err(_) => {
                    // A line cut by a crash and followed by a later write looks like a
                    // bad complete line: count it as torn if it is a JSON prefix.
                    if line.first() == Some(&b'{') && !line.ends_with(b"}") {
                        out.torn_lines += 1;
                    } else {
                        out.bad_lines += 1;
                    }
                }
            }
        }
    }
    if out.torn_lines > 0 || out.bad_lines > 0 {
        tracing::warn!(
            target: "kindling::ops",
            dir = %dir.display(),
            torn_lines = out.torn_lines,
            bad_lines = out.bad_lines,
            "journal had damaged lines (cut by a crash?); they were skipped"
        );
    }
    Ok(out)
}

/// How the journal is doing, shared by the writer, the queue in front of it and the
/// metrics: events that did not reach the journal, and whether it can be written now.
#[derive(Debug, Default)]
pub struct JournalHealth {
    /// A journal is configured (a writer was started with this health).
    enabled: AtomicBool,
    /// The last attempt to write (or, before any write, to open) the journal worked.
    writable: AtomicBool,
    /// Events not journaled: the writer's queue was full, or writing failed.
    dropped: AtomicU64,
    /// Why the journal cannot be written, while it cannot.
    error: Mutex<Option<String>>,
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

    pub(crate) fn add_dropped(&self, n: u64) {
        if n > 0 {
            self.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn set_writable(&self) {
        self.writable.store(true, Ordering::Relaxed);
        if let Ok(mut e) = self.error.lock() {
            *e = None;
        }
    }

    fn set_failed(&self, error: &str) {
        self.writable.store(false, Ordering::Relaxed);
        if let Ok(mut e) = self.error.lock() {
            *e = Some(error.to_string());
        }
    }
}

/// Events (lines) in a piece of journal text.
fn lines_in(data: &[u8]) -> u64 {
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
fn open_journal_file(path: &Path) -> io::Result<Box<dyn JournalFile>> {
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
fn free_bytes(dir: &Path) -> Option<u64> {
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

fn is_full(e: &io::Error) -> bool {
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
                crate::background_priority();
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
    pub fn append_batch(&self, evs: &[Event]) -> usize {
        let dropped = self.queue_batch(evs);
        self.health.add_dropped(dropped as u64);
        dropped
    }

    fn queue_batch(&self, evs: &[Event]) -> usize {
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
            let mut batch: Vec<u8> = Vec::new();
            let mut flushes = Vec::new();
            let mut take = |m: Msg, batch: &mut Vec<u8>| match m {
                Msg::Line(l) => {
                    batch.extend_from_slice(&l);
                    queued.fetch_sub(l.len(), Ordering::AcqRel);
                }
                Msg::Flush(d) => flushes.push(d),
            };
            take(first, &mut batch);
            while batch.len() < (1 << 20) {
                match rx.try_recv() {
                    Ok(m) => take(m, &mut batch),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.write(&batch);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;

    /// A journal file on a disk with `space` bytes left (`None`: unlimited), like a real
    /// one: a write that does not fit writes what fits, the next one fails with ENOSPC.
    struct Limited {
        inner: File,
        space: Arc<Mutex<Option<u64>>>,
        /// Truncation fails too (then the writer must start a fresh line instead).
        no_truncate: bool,
    }

    impl JournalFile for Limited {
        fn append(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut space = self.space.lock().unwrap_or_else(|e| e.into_inner());
            match *space {
                None => self.inner.append(buf),
                Some(0) => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
                Some(n) => {
                    let fits = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    let w = self.inner.append(&buf[..fits])?;
                    *space = Some(n - w as u64);
                    Ok(w)
                }
            }
        }
        fn sync(&mut self) -> io::Result<()> {
            self.inner.sync()
        }
        fn truncate(&mut self, len: u64) -> io::Result<()> {
            if self.no_truncate {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            self.inner.truncate(len)
        }
        fn size(&self) -> io::Result<u64> {
            self.inner.size()
        }
        fn last_byte(&self) -> io::Result<Option<u8>> {
            self.inner.last_byte()
        }
    }

    fn event(ts: u64) -> Event {
        let mut e = Event::new(ts, Kind::HttpRequest, "GET /ipxe");
        e.mac = kindling_model::MacAddr::parse("52:54:00:12:34:56").ok();
        e.path = Some("/ipxe".into());
        e
    }

    fn writer(dir: &Path, space: &Arc<Mutex<Option<u64>>>, no_truncate: bool) -> JournalWriter {
        let space = space.clone();
        let opener: Opener = Box::new(move |path: &Path| {
            let inner = OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(path)?;
            Ok(Box::new(Limited {
                inner,
                space: space.clone(),
                no_truncate,
            }) as Box<dyn JournalFile>)
        });
        JournalWriter::start_with(
            JournalConfig::new(dir),
            Arc::default(),
            opener,
            Duration::from_millis(5),
        )
    }

    fn set_space(space: &Arc<Mutex<Option<u64>>>, v: Option<u64>) {
        *space.lock().unwrap_or_else(|e| e.into_inner()) = v;
    }

    /// Appends one event at a time until the journal is writable again (bounded).
    fn write_until_writable(w: &JournalWriter, next_ts: &mut u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !w.health().writable() {
            assert!(Instant::now() < deadline, "the journal never came back");
            w.append_batch(&[event(*next_ts)]);
            *next_ts += 1;
            w.flush();
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn a_full_disk_drops_counts_and_undoes_the_cut_then_writing_resumes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let space = Arc::new(Mutex::new(None));
        let w = writer(dir.path(), &space, false);
        let h = w.health().clone();
        assert!(h.enabled() && h.writable());
        w.append_batch(&[event(1), event(2), event(3)]);
        w.flush();
        let before = fs::read(journal_path(dir.path(), 0)).unwrap_or_default();
        assert_eq!(lines_in(&before), 3);

        // The disk fills in the middle of the next batch's first line.
        set_space(&space, Some(40));
        w.append_batch(&[event(4), event(5)]);
        w.flush();
        assert_eq!((h.writable(), h.dropped()), (false, 2));
        let err = h.error().unwrap_or_default();
        assert!(
            err.contains("events.jsonl") && err.contains("os error 28"),
            "{err}"
        );
        // The 40 bytes that made it were taken back: no torn line.
        assert_eq!(
            fs::read(journal_path(dir.path(), 0)).unwrap_or_default(),
            before
        );
        // Still full: dropped and counted whether or not the back-off has passed.
        w.append_batch(&[event(6)]);
        w.flush();
        assert_eq!(h.dropped(), 3);
        assert!(!h.writable());

        // Space returns: the next batch after the back-off is written.
        set_space(&space, None);
        let mut ts = 7;
        write_until_writable(&w, &mut ts);
        w.append_batch(&[event(1000)]);
        w.flush();
        assert!(h.writable() && h.error().is_none());
        let rb = read_journal(dir.path(), 4).unwrap_or_default();
        assert_eq!((rb.torn_lines, rb.bad_lines), (0, 0), "{rb:?}");
        // Every event appended is either in the journal or counted as dropped.
        let appended = (ts - 1) + 1;
        assert_eq!(rb.read + h.dropped(), appended, "{rb:?}");
        let got: Vec<u64> = rb.events.iter().map(|e| e.ts).collect();
        assert_eq!(&got[..3], &[1, 2, 3]);
        assert_eq!(got.last(), Some(&1000));
    }

    #[test]
    fn a_cut_that_cannot_be_undone_is_followed_by_a_fresh_line() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let space = Arc::new(Mutex::new(None));
        let w = writer(dir.path(), &space, true);
        let h = w.health().clone();
        w.append_batch(&[event(1)]);
        w.flush();
        let one = fs::metadata(journal_path(dir.path(), 0)).map_or(0, |m| m.len());
        // Room for the first line of the batch and half of the second.
        set_space(&space, Some(one + one / 2));
        w.append_batch(&[event(2), event(3)]);
        w.flush();
        assert_eq!((h.writable(), h.dropped()), (false, 1));
        let torn = fs::read(journal_path(dir.path(), 0)).unwrap_or_default();
        assert_ne!(torn.last(), Some(&b'\n'), "the cut is still there");

        set_space(&space, None);
        let mut ts = 4;
        write_until_writable(&w, &mut ts);
        let rb = read_journal(dir.path(), 4).unwrap_or_default();
        // The half line is skipped as torn; everything around it is read.
        assert_eq!((rb.torn_lines, rb.bad_lines), (1, 0), "{rb:?}");
        let got: Vec<u64> = rb.events.iter().map(|e| e.ts).collect();
        assert_eq!(&got[..2], &[1, 2]);
        assert_eq!(rb.read + h.dropped(), ts - 1, "{got:?}");
    }

    #[test]
    fn a_state_dir_that_is_a_file_or_a_journal_that_is_a_directory_degrades() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // The state directory is a regular file.
        let state = dir.path().join("state");
        fs::write(&state, "not a directory").unwrap_or_default();
        let w = JournalWriter::start(JournalConfig::new(&state));
        let h = w.health().clone();
        assert!(h.enabled() && !h.writable());
        let err = h.error().unwrap_or_default();
        assert!(err.contains("is not a directory"), "{err}");
        assert_eq!(w.append_batch(&[event(1), event(2)]), 0, "queued");
        w.flush();
        assert_eq!(h.dropped(), 2);
        drop(w);

        // The journal file is a directory.
        let state = dir.path().join("state2");
        fs::create_dir_all(journal_path(&state, 0)).unwrap_or_default();
        let w = JournalWriter::start_with(
            JournalConfig::new(&state),
            Arc::default(),
            Box::new(open_journal_file),
            Duration::from_millis(5),
        );
        let h = w.health().clone();
        assert!(!h.writable());
        let err = h.error().unwrap_or_default();
        assert!(err.contains("events.jsonl"), "{err}");
        w.append_batch(&[event(1)]);
        w.flush();
        assert_eq!(h.dropped(), 1);
        // The operator removes the directory: the journal is created and written.
        fs::remove_dir(journal_path(&state, 0)).unwrap_or_default();
        let mut ts = 2;
        write_until_writable(&w, &mut ts);
        let rb = read_journal(&state, 4).unwrap_or_default();
        assert_eq!(rb.read + h.dropped(), ts - 1);
        assert!(rb.read >= 1);
    }

    #[test]
    fn an_unwritable_state_dir_degrades() {
        use std::os::unix::fs::PermissionsExt;
        // SAFETY: geteuid(2) has no arguments and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            eprintln!("skipped: permission bits do not stop root");
            return;
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ro = dir.path().join("ro");
        fs::create_dir(&ro).unwrap_or_default();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap_or_default();
        // The state directory cannot be created, or exists and cannot be written.
        for state in [ro.join("state"), ro.clone()] {
            let w = JournalWriter::start(JournalConfig::new(&state));
            let h = w.health().clone();
            assert!(!h.writable());
            let err = h.error().unwrap_or_default();
            assert!(err.contains("Permission denied"), "{err}");
            w.append_batch(&[event(1)]);
            w.flush();
            assert_eq!(h.dropped(), 1);
        }
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o700)).unwrap_or_default();
    }

    #[test]
    fn free_space_is_known_for_a_directory() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert!(free_bytes(dir.path()).is_some_and(|f| f > 0));
        assert_eq!(free_bytes(&dir.path().join("missing")), None);
        assert!(is_full(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(!is_full(&io::Error::from_raw_os_error(libc::EISDIR)));
    }

    #[test]
    fn lenient_replay_skips_what_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut old = serde_json::to_vec(&event(1)).unwrap_or_default();
        old.push(b'\n');
        fs::write(journal_path(dir.path(), 1), &old).unwrap_or_default();
        fs::create_dir_all(journal_path(dir.path(), 0)).unwrap_or_default();
        // Strict (the CLI): an error naming the file.
        let e = replay_journal(dir.path(), 2, drop)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("events.jsonl is not a regular file")),
            "{e:?}"
        );
        // Lenient (start-up): what can be read is read, the rest reported.
        let mut seen = Vec::new();
        let rb = replay_journal_lenient(dir.path(), 2, |e| seen.push(e.ts));
        assert_eq!(seen, vec![1]);
        assert_eq!(rb.errors.len(), 1, "{rb:?}");
    }
}
