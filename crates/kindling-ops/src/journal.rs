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

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// Name of the active journal file.
pub const JOURNAL_FILE: &str = "events.jsonl";

/// When the journal is flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    Always,
    #[default]
    Interval,
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
/// skipped and counted.
pub fn replay_journal(
    dir: &Path,
    files: usize,
    mut each: impl FnMut(Event),
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
        let mut r = match File::open(&path) {
            Ok(f) => BufReader::with_capacity(64 * 1024, f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        out.files += 1;
        loop {
            buf.clear();
            let (got, overlong) = read_line_capped(&mut r, &mut buf)?;
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

enum Msg {
    Line(Vec<u8>),
    Flush(mpsc::Sender<()>),
}

/// The writer handle: cheap to call from any thread, never blocks (a full queue drops
/// the event and counts it).
pub struct JournalWriter {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
    /// Bytes handed to the writer thread and not yet written.
    queued: Arc<AtomicUsize>,
}

/// Batches queued between the ops thread and the writer thread.
const QUEUE: usize = 1024;
/// Bytes queued for the writer at most (a disk slower than a storm drops, and counts,
/// rather than growing memory).
const QUEUE_BYTES: usize = 8 << 20;

impl JournalWriter {
    /// Creates the directory and starts the writer thread.
    pub fn start(cfg: JournalConfig) -> io::Result<JournalWriter> {
        fs::create_dir_all(&cfg.dir)?;
        let mut state = WriterState::open(cfg)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        let thread = std::thread::Builder::new()
            .name("kindling-journal".into())
            .spawn(move || {
                crate::background_priority();
                state.run(rx, &q)
            })?;
        Ok(JournalWriter {
            tx: Some(tx),
            thread: Some(thread),
            queued,
        })
    }

    /// Queues a batch of events as one write; returns how many were dropped (all of
    /// them when the queue is full or the writer is gone, else those that failed to
    /// serialise).
    pub fn append_batch(&self, evs: &[Event]) -> usize {
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

    /// Waits until everything queued so far is written and synced.
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

struct WriterState {
    cfg: JournalConfig,
    file: File,
    size: u64,
    last_sync: Instant,
    dirty: bool,
}

impl WriterState {
    fn open(cfg: JournalConfig) -> io::Result<WriterState> {
        let path = journal_path(&cfg.dir, 0);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        let mut size = file.metadata()?.len();
        if size > 0 {
            // Start on a fresh line after a tail cut by a crash.
            let mut last = [0u8; 1];
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::End(-1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                size += 1;
            }
        }
        Ok(WriterState {
            cfg,
            file,
            size,
            last_sync: Instant::now(),
            dirty: false,
        })
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

    fn write(&mut self, data: &[u8]) {
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
                self.write_raw(now);
                rest = later;
            }
        } else {
            self.write_raw(data);
        }
    }

    fn write_raw(&mut self, data: &[u8]) {
        match self.file.write_all(data) {
            Ok(()) => {
                self.size += data.len() as u64;
                self.dirty = true;
            }
            Err(e) => {
                tracing::warn!(target: "kindling::ops", error = %e, "writing the journal failed")
            }
        }
    }

    fn rotate(&mut self) {
        self.sync();
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
        match OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(journal_path(&dir, 0))
        {
            Ok(f) => {
                self.file = f;
                self.size = 0;
                if let Ok(d) = File::open(&dir) {
                    let _ = d.sync_all();
                }
            }
            Err(e) => {
                tracing::warn!(target: "kindling::ops", error = %e, "reopening the journal failed")
            }
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
        if self.dirty {
            let _ = self.file.sync_data();
            self.dirty = false;
        }
        self.last_sync = Instant::now();
    }
}
