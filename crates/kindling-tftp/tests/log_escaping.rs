//! Log injection (issue 13): client-chosen text (file names, modes, option names, ERROR
//! messages) never writes a forged line or a raw escape byte into the log, in the text
//! or the JSON format (set up like the binary's `init_logging`). Own test binary: it
//! installs the global subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Raw, Server, config, tempdir};
use kindling_tftp::packet::{ErrorCode, Packet, encode_error};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

const EVIL: &str = "a\nFORGED line\x1b[31m";

#[test]
fn client_text_is_escaped_in_text_and_json_logs() {
    let text = Buf::default();
    let json = Buf::default();
    // As `init_logging` in crates/kindling/src/main.rs: text without ANSI colours,
    // JSON with the event's fields flattened.
    let subscriber = tracing_subscriber::registry()
        .with(EnvFilter::new("debug"))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(text.clone()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(json.clone()),
        );
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let top = tempdir("tftp-logs");
    let served = "ok\x1b]0;title\x07\nFORGED served";
    std::fs::write(top.path().join(served), b"hello").unwrap();
    std::fs::write(top.path().join("big"), common::pattern(100_000, 2)).unwrap();
    let srv = Server::start(config(top.path()));
    let raw = Raw::new(srv.addr);
    // Not found (refusal line, span with the name).
    assert_eq!(raw.get(EVIL).unwrap_err().0, 1);
    // WRQ (refusal line).
    let mut wrq = vec![0u8, 2];
    wrq.extend_from_slice(EVIL.as_bytes());
    wrq.extend_from_slice(b"\0octet\0");
    raw.send_to(&wrq, srv.addr);
    assert!(matches!(raw.recv().unwrap().0, Packet::Error { .. }));
    // A file whose name carries control bytes is served (start/finish lines).
    assert_eq!(raw.get(served).unwrap(), b"hello");
    // Unknown mode with control bytes: malformed (debug line with the decoding error).
    let mut bad_mode = vec![0u8, 1];
    bad_mode.extend_from_slice(b"ok.txt\0oct\nFORGED mode\x1b[0m\0");
    raw.send_to(&bad_mode, srv.addr);
    // Option names with control bytes; the client then aborts with a hostile message.
    raw.rrq_bytes(
        b"big",
        &[("x\nFORGED option\x1b[1m", "1"), ("blksize", "512")],
    );
    let (p, tid) = raw.recv().unwrap();
    assert!(matches!(p, Packet::Oack { .. }), "{p:?}");
    raw.send_to(
        &encode_error(ErrorCode::NotDefined, "bye\nFORGED error\x1b[0m"),
        tid,
    );
    let st = srv.settled(2);
    assert_eq!(st.malformed, 1, "{st:?}");
    // Dropping the server waits for its thread, which waits for every transfer task:
    // every log line is written by then.
    drop(srv);

    let text = String::from_utf8(text.0.lock().unwrap().clone()).unwrap();
    let json = String::from_utf8(json.0.lock().unwrap().clone()).unwrap();
    eprintln!("--- text ---\n{text}--- json ---\n{json}");
    for (format, out) in [("text", &text), ("json", &json)] {
        assert!(!out.contains('\x1b'), "raw ESC in the {format} log");
        assert!(!out.contains('\x07'), "raw BEL in the {format} log");
        for line in out.lines() {
            assert!(
                !line.starts_with("FORGED"),
                "forged line in the {format} log: {line:?}"
            );
            let ok = match format {
                "text" => line.starts_with(|c: char| c.is_ascii_digit()),
                _ => line.starts_with('{') && line.ends_with('}'),
            };
            assert!(ok, "not a {format} log line: {line:?}");
        }
    }
    // The names are there, escaped and readable.
    for needle in [
        r"a\nFORGED line\x1b[31m",
        r"ok\x1b]0;title\x07\nFORGED served",
        r"FORGED error\x1b[0m",
    ] {
        assert!(text.contains(needle), "{needle} not in the text log");
    }
    assert!(text.contains("FORGED mode"), "the bad mode was not logged");
}
