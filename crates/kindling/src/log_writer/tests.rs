use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use super::*;

/// An output that keeps each write as a batch; with a gate, writes wait until it opens.
#[derive(Clone, Default)]
struct Sink {
    batches: Arc<(Mutex<Vec<Vec<u8>>>, Condvar)>,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl Sink {
    fn gated() -> Sink {
        Sink::default()
    }

    fn open() -> Sink {
        let s = Sink::default();
        s.open_gate();
        s
    }

    fn open_gate(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }

    fn batches(&self) -> Vec<Vec<u8>> {
        self.batches.0.lock().unwrap().clone()
    }

    fn text(&self) -> String {
        String::from_utf8(self.batches().concat()).unwrap()
    }

    /// Waits (at most a minute: a bound for a broken writer, not a timing) until `bytes`
    /// have been written.
    fn wait_for(&self, bytes: usize) {
        let (b, cv) = &*self.batches;
        let g = b.lock().unwrap();
        let _ = cv
            .wait_timeout_while(g, Duration::from_secs(60), |v| {
                v.iter().map(Vec::len).sum::<usize>() < bytes
            })
            .unwrap();
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (open, cv) = &*self.gate;
        drop(cv.wait_while(open.lock().unwrap(), |o| !*o).unwrap());
        self.batches.0.lock().unwrap().push(buf.to_vec());
        self.batches.1.notify_all();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tuning(max_bytes: usize, kick_bytes: usize, gather: Duration) -> Tuning {
    Tuning {
        max_bytes,
        kick_bytes,
        gather,
    }
}

fn log(w: &LogWriter, line: &str) {
    w.make_writer().write_all(line.as_bytes()).unwrap();
}

#[test]
fn lines_of_many_threads_arrive_whole_in_order_and_in_few_writes() {
    let sink = Sink::gated();
    let (w, guard) = spawn(sink.clone(), Tuning::default()).unwrap();
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let w = w.clone();
            thread::spawn(move || {
                for n in 0..1000 {
                    log(&w, &format!("t{t} {n:05}\n"));
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    // The writer holds at most its first batch in the closed gate; the rest gathered.
    sink.open_gate();
    drop(guard);
    let batches = sink.batches();
    assert!(
        batches.len() <= 2,
        "{} writes for 4,000 lines",
        batches.len()
    );
    let text = sink.text();
    assert_eq!(text.lines().count(), 4000);
    for t in 0..4 {
        let mine: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("t{t} ")))
            .collect();
        let want: Vec<String> = (0..1000).map(|n| format!("t{t} {n:05}")).collect();
        assert_eq!(mine, want, "thread {t}'s lines");
    }
}

#[test]
fn a_logging_thread_waits_for_room_and_loses_nothing() {
    let sink = Sink::gated();
    let (w, guard) = spawn(sink.clone(), tuning(1000, 500, Duration::from_millis(5))).unwrap();
    let producer = {
        let w = w.clone();
        thread::spawn(move || {
            for n in 0..100 {
                log(&w, &format!("{n:099}\n"));
            }
        })
    };
    // The writer is stuck in its first write: the producer must come to wait.
    while w.0.lock().waiting == 0 {
        assert!(
            !producer.is_finished(),
            "100 lines of 100 bytes went into a 1,000-byte bound"
        );
        thread::yield_now();
    }
    sink.open_gate();
    producer.join().unwrap();
    drop(guard);
    for b in sink.batches() {
        assert!(b.len() <= 1000, "a write of {} bytes", b.len());
    }
    let want: String = (0..100).map(|n| format!("{n:099}\n")).collect();
    assert_eq!(sink.text(), want);
}

#[test]
fn a_line_longer_than_the_bound_goes_alone() {
    let sink = Sink::open();
    let (w, guard) = spawn(sink.clone(), tuning(100, 50, Duration::from_millis(5))).unwrap();
    let long = format!("{}\n", "x".repeat(499));
    log(&w, "short\n");
    log(&w, &long);
    log(&w, "after\n");
    drop(guard);
    assert_eq!(sink.text(), format!("short\n{long}after\n"));
}

#[test]
fn dropping_the_guard_writes_the_rest_without_waiting_out_the_gathering() {
    let sink = Sink::open();
    // An hour's gathering: only the guard's drop can end it.
    let (w, guard) = spawn(
        sink.clone(),
        tuning(1 << 20, 1 << 19, Duration::from_secs(3600)),
    )
    .unwrap();
    log(&w, "first\n");
    sink.wait_for(6);
    for n in 0..10 {
        log(&w, &format!("line {n}\n"));
    }
    drop(guard);
    let want: String = std::iter::once("first\n".to_string())
        .chain((0..10).map(|n| format!("line {n}\n")))
        .collect();
    assert_eq!(sink.text(), want);
}

#[test]
fn a_full_buffer_wakes_the_writer_before_its_gathering_ends() {
    let sink = Sink::open();
    let (w, guard) = spawn(
        sink.clone(),
        tuning(1 << 20, 100, Duration::from_secs(3600)),
    )
    .unwrap();
    log(&w, "first\n");
    sink.wait_for(6);
    // Written while the writer gathers for an hour: 4 x 30 bytes pass the 100-byte kick.
    for n in 0..4 {
        log(&w, &format!("{n:029}\n"));
    }
    sink.wait_for(6 + 120);
    let written = sink.text();
    std::mem::forget(guard); // would write the rest itself
    assert_eq!(
        written.len(),
        126,
        "the kick did not wake the writer: {written:?}"
    );
}

#[test]
fn a_quiet_servers_line_is_written_at_once() {
    let sink = Sink::open();
    let (w, guard) = spawn(
        sink.clone(),
        tuning(1 << 20, 1 << 19, Duration::from_secs(3600)),
    )
    .unwrap();
    log(&w, "one\n");
    sink.wait_for(4);
    assert_eq!(sink.text(), "one\n");
    std::mem::forget(guard);
}

#[test]
fn the_fmt_layer_writes_through_it() {
    let sink = Sink::open();
    let (w, guard) = spawn(sink.clone(), Tuning::default()).unwrap();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(w)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(mac = "52:54:00:12:34:56", "served /ipxe");
    });
    drop(guard);
    let text = sink.text();
    assert!(
        text.ends_with("served /ipxe mac=\"52:54:00:12:34:56\"\n"),
        "{text:?}"
    );
    assert_eq!(text.lines().count(), 1);
}
