//! Tests of the journal writer's failure handling (a full disk, a cut that cannot be
//! undone, a state directory or journal path that cannot be used, free space) through a
//! [`JournalFile`] that runs out of room on purpose, and of lenient read-back.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::{JournalConfig, journal_path};
use super::read::{read_journal, replay_journal, replay_journal_lenient};
use super::writer::{
    JournalFile, JournalWriter, Opener, free_bytes, is_full, lines_in, open_journal_file,
};
use crate::ReadBack;

/// A journal record of the tests: a time and some text, as a boot event has.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Event {
    ts: u64,
    mac: String,
    what: String,
}

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
    Event {
        ts,
        mac: "52:54:00:12:34:56".into(),
        what: "GET /ipxe".into(),
    }
}

fn read_back(dir: &Path) -> ReadBack<Event> {
    read_journal(dir, 4).unwrap_or_default()
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
    let rb = read_back(dir.path());
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
    let rb = read_back(dir.path());
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
    let rb = read_back(&state);
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
    let e = replay_journal::<Event>(dir.path(), 2, drop)
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("events.jsonl is not a regular file")),
        "{e:?}"
    );
    // Lenient (start-up): what can be read is read, the rest reported.
    let mut seen = Vec::new();
    let rb = replay_journal_lenient(dir.path(), 2, |e: Event| seen.push(e.ts));
    assert_eq!(seen, vec![1]);
    assert_eq!(rb.errors.len(), 1, "{rb:?}");
}
