//! The log's writer: every thread's lines gathered in one buffer, written in batches by
//! a thread of their own.
//!
//! A boot storm logs a line per request, so at tens of thousands of requests a second the
//! way a line travels matters as much as the request's own work. tracing-subscriber's fmt
//! layer formats each line in a buffer of the logging thread's own and hands it over in
//! one `write_all`. Here that is a copy into a shared buffer under a lock held only for
//! the copy. Per line there is no allocation, no message and no thread woken. The
//! previous writer (tracing-appender's non-blocking one) sent each line as a heap buffer
//! through a channel to a thread that woke to free it and write it alone; with the
//! default log level on, that cost a quarter of `/ipxe`'s throughput (bench/http).
//!
//! The writer thread takes the whole buffer at once (swapping in the empty one it wrote
//! last), writes it with one `write_all`, then gathers for [`Tuning::gather`] before it
//! looks again. So under load it wakes at most once per `gather`, early only when the
//! buffer passes [`Tuning::kick_bytes`]. With nothing to write it sleeps until the next
//! line, which wakes it: a quiet server's line is written at once.
//!
//! Bounded: when [`Tuning::max_bytes`] wait unwritten, a logging thread waits for the
//! writer. Nothing is dropped, as with the previous writer's lossless mode. When the
//! [`Guard`] is dropped, what is left is written (for at most a second when the output
//! is stuck).

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// The writer's bounds and pace.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Bytes that may wait unwritten before logging threads wait for the writer.
    pub max_bytes: usize,
    /// Bytes waiting that wake the writer before its gathering time is over.
    pub kick_bytes: usize,
    /// How long the writer lets lines gather after a write.
    pub gather: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            // The previous bound was 8,192 lines: about 1.6 MB of a storm's request lines.
            max_bytes: 1 << 20,
            kick_bytes: 64 << 10,
            // A storm's 80,000 lines a second are 200 writes of about 80 KB.
            gather: Duration::from_millis(5),
        }
    }
}

/// A buffer kept between writes above this capacity is given back.
const KEEP_CAPACITY: usize = 256 << 10;

/// How long dropping the [`Guard`] waits for the rest to be written.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    /// Lines not yet taken by the writer.
    buf: Vec<u8>,
    /// The writer sleeps until the next line.
    parked: bool,
    /// The writer was woken for a full buffer and has not taken it yet.
    kicked: bool,
    /// The guard is dropped: write what is left and stop.
    closed: bool,
    /// The writer has stopped.
    done: bool,
    /// Logging threads waiting for room.
    waiting: usize,
}

struct Shared {
    state: Mutex<State>,
    /// The writer waits here.
    wake: Condvar,
    /// Logging threads wait here for room, and the guard for the writer's end.
    room: Condvar,
    tuning: Tuning,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: &[u8]) {
        let mut s = self.lock();
        // A line longer than the bound goes in alone.
        while !s.closed && !s.buf.is_empty() && s.buf.len() + line.len() > self.tuning.max_bytes {
            s.waiting += 1;
            s = self.room.wait(s).unwrap_or_else(PoisonError::into_inner);
            s.waiting -= 1;
        }
        s.buf.extend_from_slice(line);
        if s.parked {
            s.parked = false;
            self.wake.notify_one();
        } else if !s.kicked && s.buf.len() >= self.tuning.kick_bytes {
            s.kicked = true;
            self.wake.notify_one();
        }
    }

    fn run(&self, mut sink: impl Write) {
        let mut out = Vec::new();
        let mut failed = false;
        let mut s = self.lock();
        loop {
            while s.buf.is_empty() && !s.closed {
                s.parked = true;
                s = self.wake.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            s.parked = false;
            if s.buf.is_empty() {
                break;
            }
            std::mem::swap(&mut s.buf, &mut out);
            s.kicked = false;
            if s.waiting > 0 {
                self.room.notify_all();
            }
            let closed = s.closed;
            drop(s);
            if let Err(e) = sink.write_all(&out).and_then(|()| sink.flush())
                && !failed
            {
                // The log itself cannot say it; once, to stderr, and the batch is lost.
                failed = true;
                eprintln!("kindling: writing the log failed ({e}); lines are being lost");
            }
            out.clear();
            if out.capacity() > KEEP_CAPACITY {
                out = Vec::new();
            }
            s = self.lock();
            if !closed {
                s = self
                    .wake
                    .wait_timeout_while(s, self.tuning.gather, |s| !s.kicked && !s.closed)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        s.done = true;
        self.room.notify_all();
    }
}

/// What the fmt layer writes to; cheap to clone.
#[derive(Clone)]
pub struct LogWriter(Arc<Shared>);

/// One line's handle ([`MakeWriter`]).
pub struct Line<'a>(&'a Shared);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(&self.0)
    }
}

/// Keeps the writer thread; dropping it writes what is left.
pub struct Guard(Arc<Shared>);

impl Drop for Guard {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.closed = true;
        self.0.wake.notify_one();
        self.0.room.notify_all();
        // Not joined: a stuck output must not hold the process past the timeout.
        let _ = self
            .0
            .room
            .wait_timeout_while(s, DRAIN_TIMEOUT, |s| !s.done)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// Starts the writer thread on `sink`.
pub fn spawn(sink: impl Write + Send + 'static, tuning: Tuning) -> io::Result<(LogWriter, Guard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
        room: Condvar::new(),
        tuning,
    });
    let writer = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("kindling-log".into())
        .spawn(move || writer.run(sink))?;
    Ok((LogWriter(Arc::clone(&shared)), Guard(shared)))
}

#[cfg(test)]
mod tests;
