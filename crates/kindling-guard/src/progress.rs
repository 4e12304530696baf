//! Progress of a long download, said once for every download Kindling makes (cache
//! fills, `kindling cache prefetch`, `kindling fcos pull` and its tracker):
//!
//! - [`Meter`]: when a progress log line is due (sans-I/O: every call takes `now`),
//!   and the numbers for it ([`Snapshot`]: bytes, total, percent, rate, ETA);
//! - [`TtyLine`]: a single updating line on stderr, for a terminal;
//! - [`LogStderr`]: stderr for log lines that may share the terminal with a
//!   [`TtyLine`] (it clears the line first; the next update draws it again).

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A progress log line is due when the download reaches the next tenth of its
/// total, at most once per [`LOG_MIN_GAP`]...
pub const LOG_STEPS: u64 = 10;
/// ...or when this long has passed since the last one (whatever the total).
pub const LOG_EVERY: Duration = Duration::from_secs(5);
/// Never more often than this (a fast download logs only its end).
pub const LOG_MIN_GAP: Duration = Duration::from_secs(1);
/// A terminal line is redrawn at most this often.
pub const DRAW_EVERY: Duration = Duration::from_millis(200);

/// Where one download stands, and when to say so.
#[derive(Debug, Clone)]
pub struct Meter {
    start: Instant,
    /// Bytes there before this run started (a resumed download): not in the rate.
    from: u64,
    total: Option<u64>,
    last_log: Instant,
    /// The tenth of the total the last line (or the start) was in.
    logged_step: u64,
    last_draw: Option<Instant>,
}

/// The numbers of a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Bytes there (a resumed download's earlier bytes included).
    pub bytes: u64,
    /// The whole length, when known.
    pub total: Option<u64>,
    /// Since this run started.
    pub elapsed: Duration,
    /// Bytes per second over this run (earlier bytes of a resumed download left out).
    pub rate: u64,
}

impl Meter {
    /// A download that starts at `now` with `from` bytes already there.
    pub fn new(from: u64, total: Option<u64>, now: Instant) -> Meter {
        let mut m = Meter {
            start: now,
            from,
            total,
            last_log: now,
            logged_step: 0,
            last_draw: None,
        };
        m.logged_step = m.step(from);
        m
    }

    /// The total became known (a response head arrived).
    pub fn set_total(&mut self, total: Option<u64>) {
        self.total = total;
        self.logged_step = self.step(self.from);
    }

    pub fn total(&self) -> Option<u64> {
        self.total
    }

    fn step(&self, bytes: u64) -> u64 {
        match self.total {
            Some(t) if t > 0 => {
                (u128::from(bytes.min(t)) * u128::from(LOG_STEPS) / u128::from(t)) as u64
            }
            _ => 0,
        }
    }

    /// The numbers at `bytes`, now.
    pub fn snapshot(&self, bytes: u64, now: Instant) -> Snapshot {
        let elapsed = now.saturating_duration_since(self.start);
        let run = bytes.saturating_sub(self.from);
        let rate = match elapsed.as_millis() {
            0 => 0,
            ms => (u128::from(run) * 1000 / ms).min(u128::from(u64::MAX)) as u64,
        };
        Snapshot {
            bytes,
            total: self.total,
            elapsed,
            rate,
        }
    }

    /// `Some` when a progress log line is due at `bytes`: the download entered a new
    /// tenth of its total and [`LOG_MIN_GAP`] has passed since the last line, or
    /// [`LOG_EVERY`] has. Never at the very end of a known total (the caller logs
    /// completion itself, with the final numbers).
    pub fn log_due(&mut self, bytes: u64, now: Instant) -> Option<Snapshot> {
        if self.total.is_some_and(|t| bytes >= t) {
            return None;
        }
        let since = now.saturating_duration_since(self.last_log);
        let step = self.step(bytes);
        let due = (step > self.logged_step && since >= LOG_MIN_GAP) || since >= LOG_EVERY;
        if !due {
            return None;
        }
        self.last_log = now;
        self.logged_step = step;
        Some(self.snapshot(bytes, now))
    }

    /// `Some` when a terminal line should be redrawn (at most every [`DRAW_EVERY`]).
    pub fn draw_due(&mut self, bytes: u64, now: Instant) -> Option<Snapshot> {
        if self
            .last_draw
            .is_some_and(|t| now.saturating_duration_since(t) < DRAW_EVERY)
        {
            return None;
        }
        self.last_draw = Some(now);
        Some(self.snapshot(bytes, now))
    }
}

impl Snapshot {
    /// Whole percent of the total, when known.
    pub fn percent(&self) -> Option<u64> {
        self.total.map(|t| match t {
            0 => 100,
            t => (u128::from(self.bytes.min(t)) * 100 / u128::from(t)) as u64,
        })
    }

    /// Time left at the rate so far, when the total is known and bytes arrive.
    pub fn eta(&self) -> Option<Duration> {
        let left = self.total?.saturating_sub(self.bytes);
        (self.rate > 0).then(|| Duration::from_secs(left.div_ceil(self.rate)))
    }

    /// `label   12.0 MiB / 100.0 MiB   12%   4.0 MiB/s  ETA   22s`, at most
    /// `width` characters (the front of the label gives way first). The
    /// numbers have fixed widths, so the label stays put while they change.
    pub fn line(&self, label: &str, width: usize) -> String {
        let done = Bytes(self.bytes).to_string();
        let rate = format!("{}/s", Bytes(self.rate));
        let eta = self.eta().map(|d| Secs(d).to_string()).unwrap_or_default();
        let rest = match self.total {
            Some(t) => format!(
                "{done:>9} / {:>9}  {:>3}%  {rate:>11}  ETA {eta:>5}",
                Bytes(t).to_string(),
                self.percent().unwrap_or(0)
            ),
            None => format!("{done:>9}  {rate:>11}"),
        };
        fit(label, &rest, width)
    }

    /// `label  100.0 MiB in 4s (25.0 MiB/s)`: the line a finished download leaves.
    pub fn done_line(&self, label: &str, width: usize) -> String {
        let rest = format!(
            "{} in {} ({}/s)",
            Bytes(self.bytes),
            Secs(self.elapsed),
            Bytes(self.rate)
        );
        fit(label, &rest, width)
    }
}

/// `label  rest`, the label cut from the front (`…tail`) to fit `width`.
fn fit(label: &str, rest: &str, width: usize) -> String {
    let room = width.saturating_sub(rest.chars().count() + 2);
    let n = label.chars().count();
    let label = if n <= room {
        label.to_string()
    } else if room == 0 {
        String::new()
    } else {
        let tail: String = label.chars().skip(n - (room - 1)).collect();
        format!("…{tail}")
    };
    format!("{label}  {rest}")
}

/// A byte count for people: `512 B`, `1.5 KiB`, `12.3 MiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut v = self.0 as f64 / 1024.0;
        let mut i = 0;
        while v >= 1024.0 && i < UNITS.len() - 1 {
            v /= 1024.0;
            i += 1;
        }
        write!(f, "{v:.1} {}", UNITS[i])
    }
}

/// A duration for people: `45s`, `3m05s`, `1h02m`.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        match s {
            0..60 => write!(f, "{s}s"),
            60..3600 => write!(f, "{}m{:02}s", s / 60, s % 60),
            _ => write!(f, "{}h{:02}m", s / 3600, s % 3600 / 60),
        }
    }
}

/// A line of ours is on the terminal without its newline.
static DRAWN: AtomicBool = AtomicBool::new(false);

/// Width of a terminal line (kept under 80 columns, so it never wraps there).
const WIDTH: usize = 79;

/// One download shown as a single updating line on stderr. Use it only when stderr is
/// a terminal (`std::io::stderr().is_terminal()`); elsewhere log progress lines.
#[derive(Debug)]
pub struct TtyLine {
    label: String,
    meter: Meter,
}

impl TtyLine {
    /// Starts the line of `label`, which has `from` bytes already.
    pub fn new(label: impl Into<String>, from: u64, total: Option<u64>) -> TtyLine {
        TtyLine {
            label: label.into(),
            meter: Meter::new(from, total, Instant::now()),
        }
    }

    /// The total became known (or changed).
    pub fn set_total(&mut self, total: Option<u64>) {
        if self.meter.total() != total {
            self.meter.set_total(total);
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Redraws the line if it is due.
    pub fn update(&mut self, bytes: u64) {
        if let Some(s) = self.meter.draw_due(bytes, Instant::now()) {
            draw(&s.line(&self.label, WIDTH), false);
        }
    }

    /// Leaves the finished download's line (size, time, rate) on the terminal.
    pub fn finish(self, bytes: u64) {
        let s = self.meter.snapshot(bytes, Instant::now());
        draw(&s.done_line(&self.label, WIDTH), true);
    }

    /// Clears the line (the caller says why the download stopped).
    pub fn clear(self) {
        clear_line();
    }
}

fn draw(line: &str, newline: bool) {
    let mut e = io::stderr().lock();
    let end = if newline { "\n" } else { "" };
    let _ = write!(e, "\r{line}\x1b[K{end}");
    let _ = e.flush();
    DRAWN.store(!newline, Ordering::Relaxed);
}

/// Clears a [`TtyLine`] that is on screen (before other output on stderr).
pub fn clear_line() {
    if DRAWN.swap(false, Ordering::Relaxed) {
        let mut e = io::stderr().lock();
        let _ = e.write_all(b"\r\x1b[K");
        let _ = e.flush();
    }
}

/// stderr for log lines (a `tracing_subscriber` writer) that may share the terminal
/// with a [`TtyLine`]: a line on screen is cleared before the log line is written.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogStderr;

impl Write for LogStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut e = io::stderr().lock();
        if DRAWN.swap(false, Ordering::Relaxed) {
            e.write_all(b"\r\x1b[K")?;
        }
        e.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_line_per_tenth_at_most_one_a_second() {
        let t0 = Instant::now();
        let mut m = Meter::new(0, Some(100 * MIB), t0);
        // 30 % in the first half second: too soon.
        assert_eq!(m.log_due(30 * MIB, t0 + secs(0.5)), None);
        // A second in, 35 %: due (a new tenth since the start).
        let s = m.log_due(35 * MIB, t0 + secs(1.0)).unwrap();
        assert_eq!(s.bytes, 35 * MIB);
        assert_eq!(s.total, Some(100 * MIB));
        assert_eq!(s.percent(), Some(35));
        assert_eq!(s.rate, 35 * MIB);
        assert_eq!(s.eta(), Some(Duration::from_secs(2)));
        // Same tenth two seconds later: not due.
        assert_eq!(m.log_due(39 * MIB, t0 + secs(3.0)), None);
        // Next tenth: due.
        assert!(m.log_due(41 * MIB, t0 + secs(3.1)).is_some());
        // Stalled in the same tenth: a line every five seconds anyway.
        assert_eq!(m.log_due(42 * MIB, t0 + secs(8.0)), None);
        assert!(m.log_due(42 * MIB, t0 + secs(8.1)).is_some());
        // The end is the caller's to log.
        assert_eq!(m.log_due(100 * MIB, t0 + secs(20.0)), None);
    }

    #[test]
    fn unknown_total_logs_every_five_seconds() {
        let t0 = Instant::now();
        let mut m = Meter::new(0, None, t0);
        assert_eq!(m.log_due(MIB, t0 + secs(4.9)), None);
        let s = m.log_due(MIB, t0 + secs(5.0)).unwrap();
        assert_eq!((s.percent(), s.eta()), (None, None));
        assert_eq!(m.log_due(2 * MIB, t0 + secs(9.0)), None);
        assert!(m.log_due(2 * MIB, t0 + secs(10.0)).is_some());
    }

    #[test]
    fn resumed_downloads_count_only_new_bytes_in_the_rate() {
        let t0 = Instant::now();
        let mut m = Meter::new(50 * MIB, Some(100 * MIB), t0);
        // Still in the tenth it resumed in: not due at one second.
        assert_eq!(m.log_due(59 * MIB, t0 + secs(1.0)), None);
        let s = m.log_due(60 * MIB, t0 + secs(2.0)).unwrap();
        assert_eq!(s.rate, 5 * MIB);
        assert_eq!(s.eta(), Some(Duration::from_secs(8)));
    }

    #[test]
    fn total_learned_later() {
        let t0 = Instant::now();
        let mut m = Meter::new(0, None, t0);
        m.set_total(Some(1000));
        assert_eq!(m.total(), Some(1000));
        assert!(m.log_due(500, t0 + secs(1.0)).is_some());
        assert_eq!(m.snapshot(0, t0).rate, 0);
    }

    #[test]
    fn redraws_at_most_five_times_a_second() {
        let t0 = Instant::now();
        let mut m = Meter::new(0, Some(10), t0);
        assert!(m.draw_due(1, t0).is_some());
        assert!(m.draw_due(2, t0 + secs(0.1)).is_none());
        assert!(m.draw_due(3, t0 + secs(0.2)).is_some());
    }

    #[test]
    fn lines_for_people() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(Bytes(300 * MIB + MIB / 2).to_string(), "300.5 MiB");
        assert_eq!(Bytes(3 << 30).to_string(), "3.0 GiB");
        let s = Snapshot {
            bytes: 12 * MIB,
            total: Some(100 * MIB),
            elapsed: secs(3.0),
            rate: 4 * MIB,
        };
        assert_eq!(
            s.line("debian/x86_64/linux", 79),
            "debian/x86_64/linux   12.0 MiB / 100.0 MiB   12%    4.0 MiB/s  ETA   22s"
        );
        // The label does not move while the numbers change.
        let later = Snapshot {
            bytes: 99 * MIB,
            rate: 40 * MIB,
            ..s
        };
        assert_eq!(
            later.line("x", 79).len(),
            s.line("x", 79).len(),
            "{}",
            later.line("x", 79)
        );
        assert_eq!(
            Snapshot { total: None, ..s }.line("k", 79),
            "k   12.0 MiB    4.0 MiB/s"
        );
        assert_eq!(s.done_line("k", 79), "k  12.0 MiB in 3s (4.0 MiB/s)");
        let long = "fedora-coreos-43.20251101.3.0-live-rootfs.x86_64.img";
        let l = s.line(long, 79);
        assert_eq!(l.chars().count(), 79, "{l}");
        assert!(
            l.starts_with('…') && l.contains("rootfs.x86_64.img   12.0 MiB"),
            "{l}"
        );
        // 88 MiB left at 8 KiB/s: 11,264 s.
        let slow = Snapshot { rate: 8192, ..s };
        assert!(
            slow.line("x", 79).ends_with("ETA 3h07m"),
            "{}",
            slow.line("x", 79)
        );
        assert_eq!(Secs(secs(185.0)).to_string(), "3m05s");
    }
}
