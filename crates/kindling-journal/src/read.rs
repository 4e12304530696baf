//! Reading the journal back: [`read_journal`] (everything into memory, for tools and
//! examples), [`replay_journal`] (strict, one event at a time, for the CLI) and
//! [`replay_journal_lenient`] (start-up: what cannot be read is reported and skipped).
//! Lines are capped at [`LINE_MAX`]; lines cut by a crash and lines that do not parse
//! are skipped and counted in [`ReadBack`].

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::config::journal_path;

/// What reading the journal found.
#[derive(Debug)]
pub struct ReadBack<T> {
    /// Records, oldest first ([`read_journal`]; empty from [`replay_journal`], which hands
    /// them over one by one).
    pub events: Vec<T>,
    /// Records read (complete lines that parsed).
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

impl<T> Default for ReadBack<T> {
    fn default() -> Self {
        ReadBack {
            events: Vec::new(),
            read: 0,
            torn_lines: 0,
            bad_lines: 0,
            files: 0,
            bytes: 0,
            errors: Vec::new(),
        }
    }
}

/// Reads every journal file in `dir`, oldest first, into [`ReadBack::events`]. Missing
/// files are fine. (Memory grows with the journal: start-up uses [`replay_journal`].)
pub fn read_journal<T: DeserializeOwned>(dir: &Path, files: usize) -> io::Result<ReadBack<T>> {
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
pub fn replay_journal<T: DeserializeOwned>(
    dir: &Path,
    files: usize,
    each: impl FnMut(T),
) -> io::Result<ReadBack<T>> {
    replay(dir, files, each, false)
}

/// [`replay_journal`], but a file that cannot be read (a directory where a journal file
/// should be, an I/O error half way) is skipped, after the events read from it so far, and
/// reported in [`ReadBack::errors`]: the server starts with whatever history it can read.
pub fn replay_journal_lenient<T: DeserializeOwned>(
    dir: &Path,
    files: usize,
    each: impl FnMut(T),
) -> ReadBack<T> {
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

fn replay<T: DeserializeOwned>(
    dir: &Path,
    files: usize,
    mut each: impl FnMut(T),
    lenient: bool,
) -> io::Result<ReadBack<T>> {
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
            match serde_json::from_slice::<T>(line) {
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
