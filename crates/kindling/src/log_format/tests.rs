use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

use super::*;

/// Everything written, as one string.
#[derive(Clone, Default)]
struct Out(Arc<Mutex<Vec<u8>>>);

impl Out {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl io::Write for Out {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Out {
    type Writer = Out;
    fn make_writer(&'a self) -> Out {
        self.clone()
    }
}

/// 2000-02-29T12:34:56.000789Z, a leap day.
fn fixed() -> SystemTime {
    UNIX_EPOCH + Duration::new(951_827_696, 789_000)
}

#[derive(Debug)]
struct Outer(&'static str, Option<&'static Outer>);

impl fmt::Display for Outer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.1.map(|e| e as _)
    }
}

static ROOT_CAUSE: Outer = Outer("disk\x1b[2J gone", None);

/// Events of every field kind, in a span with fields and a nested span without, and a
/// record of the `log` crate.
fn events() {
    let outer = tracing::info_span!("dhcp", iface = "br0", n = 2);
    let _o = outer.enter();
    tracing::info!(target: "kindling::http", method = %"GET", path = "/ipxe", query = "mac=52:54:00:00:00:01",
        status = 200u16, bytes = 517u64, ms = format_args!("{:.3}", 0.25), "request");
    let inner = tracing::info_span!("transfer");
    let _i = inner.enter();
    tracing::warn!(quote = "a \"b\" \\ c\n\u{1b}é", neg = -42i64, yes = true, f = 1.5f64,
        r#type = "x", list = ?[1, 2], "two\x1b[31m red \u{9b}");
    tracing::error!(
        error = &Outer("read failed", Some(&ROOT_CAUSE)) as &(dyn std::error::Error + 'static),
        "failed {}",
        3
    );
    tracing::debug!(empty = "", "");
    drop(_i);
    outer.record("n", 3);
    tracing::trace!("after a record");
    tracing_log::format_trace(
        &log::Record::builder()
            .level(log::Level::Info)
            .target("rustls::client")
            .args(format_args!("a log record"))
            .build(),
    )
    .unwrap();
}

fn ours(out: &Out) -> impl Subscriber + Send + Sync + use<> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .fmt_fields(Fields)
        .event_format(Text { now: fixed })
        .with_writer(out.clone())
        .finish()
}

#[test]
fn lines_are_written_as_documented() {
    let out = Out::default();
    tracing::subscriber::with_default(ours(&out), events);
    let t = "2000-02-29T12:34:56.000789Z";
    let expected = [
        format!(
            "{t}  INFO dhcp{{iface=\"br0\" n=2}}: kindling::http: request method=GET path=\"/ipxe\" \
             query=\"mac=52:54:00:00:00:01\" status=200 bytes=517 ms=0.250"
        ),
        format!(
            "{t}  WARN dhcp{{iface=\"br0\" n=2}}:transfer: kindling::log_format::tests: \
             two\\x1b[31m red \\u{{9b}} quote=\"a \\\"b\\\" \\\\ c\\n\\u{{1b}}é\" neg=-42 yes=true f=1.5 \
             type=\"x\" list=[1, 2]"
        ),
        format!(
            "{t} ERROR dhcp{{iface=\"br0\" n=2}}:transfer: kindling::log_format::tests: failed 3 \
             error=read failed error.sources=[disk\\x1b[2J gone]"
        ),
        format!(
            "{t} DEBUG dhcp{{iface=\"br0\" n=2}}:transfer: kindling::log_format::tests:  empty=\"\""
        ),
        format!(
            "{t} TRACE dhcp{{iface=\"br0\" n=2 n=3}}: kindling::log_format::tests: after a record"
        ),
        format!("{t}  INFO dhcp{{iface=\"br0\" n=2 n=3}}: rustls::client: a log record"),
    ];
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, expected, "{text}");
    assert!(text.ends_with('\n'));
}

/// The lines are tracing-subscriber's default format with ANSI off, timestamp aside: the
/// format the documentation, the end-to-end tests and operators' tools read.
#[test]
fn lines_match_the_default_format() {
    let out = Out::default();
    tracing::subscriber::with_default(ours(&out), events);
    let reference = Out::default();
    let library = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .without_time()
        .with_writer(reference.clone())
        .finish();
    tracing::subscriber::with_default(library, events);
    let ours: Vec<String> = out
        .text()
        .lines()
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect();
    let theirs: Vec<String> = reference.text().lines().map(str::to_string).collect();
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 6);
}

fn stamp(t: SystemTime) -> String {
    let mut s = String::new();
    write_timestamp(&mut Writer::new(&mut s), t).unwrap();
    s
}

fn at(secs: i64, micros: u32) -> SystemTime {
    let base = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    base + Duration::from_micros(u64::from(micros))
}

#[test]
fn timestamps() {
    let cases = [
        (0, 0, "1970-01-01T00:00:00.000000Z"),
        (951_827_696, 789, "2000-02-29T12:34:56.000789Z"),
        (951_868_800, 0, "2000-03-01T00:00:00.000000Z"),
        (4_107_542_400, 1, "2100-03-01T00:00:00.000001Z"),
        (4_107_542_399, 999_999, "2100-02-28T23:59:59.999999Z"),
        (1_796_661_697, 123_456, "2026-12-07T16:41:37.123456Z"),
        (253_402_300_799, 999_999, "9999-12-31T23:59:59.999999Z"),
        (253_402_300_800, 0, "+10000-01-01T00:00:00.000000Z"),
        (-1, 500_000, "1969-12-31T23:59:59.500000Z"),
        (-62_167_219_200, 0, "0000-01-01T00:00:00.000000Z"),
        (-62_167_219_201, 0, "-0001-12-31T23:59:59.000000Z"),
    ];
    for (secs, micros, text) in cases {
        assert_eq!(stamp(at(secs, micros)), text, "{secs}.{micros:06}");
    }
    // Half a second before the epoch, below a microsecond: the microsecond before it.
    assert_eq!(
        stamp(UNIX_EPOCH - Duration::from_nanos(500)),
        "1969-12-31T23:59:59.999999Z"
    );
    // The thread's cached second is used only for that second.
    assert_eq!(stamp(at(60, 1)), "1970-01-01T00:01:00.000001Z");
    assert_eq!(stamp(at(60, 2)), "1970-01-01T00:01:00.000002Z");
    assert_eq!(stamp(at(61, 2)), "1970-01-01T00:01:01.000002Z");
}
