//! The download primitive against a tiny HTTP server on loopback: a whole body, a
//! truncated one (kept for resuming), resume with Range (and a server that ignores
//! it), a wrong digest (the part file removed or kept, never renamed into place).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use kindling_fetch::{
    BodyError, ClientOptions, DownloadError, Expect, Limits, Mismatch, OnMismatch, Part, client,
    download, part_path, sha256_hex,
};

/// How the server answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// 200, or 206 for `Range: bytes=N-`.
    Ranges,
    /// 200 with the whole body, whatever the Range.
    IgnoreRange,
    /// The full Content-Length, then only the first `n` bytes and a close.
    CutAt(usize),
    /// The full Content-Length, the first `n` bytes, then nothing for 5 s.
    StallAfter(usize),
}

struct Server {
    url: String,
    mode: Arc<Mutex<Mode>>,
    /// The Range header of each request ("" when none).
    ranges: Arc<Mutex<Vec<String>>>,
}

fn serve(body: Vec<u8>, mode: Mode) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/file.img", l.local_addr().unwrap());
    let mode = Arc::new(Mutex::new(mode));
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let (m, r) = (mode.clone(), ranges.clone());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let mode = *m.lock().unwrap();
            answer(s, &body, mode, &r);
        }
    });
    Server { url, mode, ranges }
}

fn answer(mut s: TcpStream, body: &[u8], mode: Mode, ranges: &Mutex<Vec<String>>) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut range = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("range:") {
            range = v.trim().to_string();
        }
    }
    ranges.lock().unwrap().push(range.clone());
    let from = range
        .strip_prefix("bytes=")
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<usize>().ok());
    let len = body.len();
    let (head, part) = match (mode, from) {
        (Mode::Ranges, Some(f)) if f >= len => {
            let _ = write!(
                s,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return;
        }
        (Mode::Ranges, Some(f)) => (
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {f}-{}/{len}\r\nContent-Length: {}\r\n",
                len - 1,
                len - f
            ),
            &body[f..],
        ),
        (Mode::CutAt(n) | Mode::StallAfter(n), _) => (
            format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n"),
            &body[..n],
        ),
        _ => (
            format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n"),
            body,
        ),
    };
    let _ = write!(s, "{head}Connection: close\r\n\r\n");
    for c in part.chunks(64 << 10) {
        if s.write_all(c).is_err() {
            return;
        }
    }
    if let Mode::StallAfter(_) = mode {
        std::thread::sleep(std::time::Duration::from_secs(5));
    }
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn opts() -> ClientOptions {
    ClientOptions::default()
}

fn expect(body: &[u8]) -> Expect {
    Expect {
        sha256: Some(sha256_hex(body)),
        len: Some(body.len() as u64),
    }
}

async fn get(
    srv: &Server,
    dest: &Path,
    want: &Expect,
    on_mismatch: OnMismatch,
) -> Result<kindling_fetch::Finished, DownloadError> {
    let c = client(&opts()).unwrap();
    let mut seen = Vec::new();
    let r = download(
        &c,
        srv.url.parse().unwrap(),
        dest,
        want,
        &Limits::default(),
        on_mismatch,
        |n| seen.push(n),
    )
    .await;
    // The hook sees the part file grow, chunk by chunk.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    r
}

#[tokio::test]
async fn a_whole_body_is_hashed_synced_and_renamed() {
    let body = data(1 << 20);
    let srv = serve(body.clone(), Mode::Ranges);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("file.img");
    let f = get(&srv, &dest, &expect(&body), OnMismatch::Remove)
        .await
        .unwrap();
    assert_eq!(f.len, body.len() as u64);
    assert_eq!(f.sha256, sha256_hex(&body));
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert!(!part_path(&dest).exists());
    assert_eq!(*srv.ranges.lock().unwrap(), vec![String::new()]);
}

#[tokio::test]
async fn a_truncated_body_is_kept_as_part_and_resumed() {
    let body = data(300_000);
    let srv = serve(body.clone(), Mode::CutAt(100_000));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("file.img");
    let e = get(&srv, &dest, &expect(&body), OnMismatch::Remove)
        .await
        .unwrap_err();
    let got = match &e {
        DownloadError::Body(BodyError::Truncated { got, want }) => {
            assert_eq!(*want, 300_000);
            *got
        }
        // hyper may see the close as an incomplete message instead.
        DownloadError::Body(BodyError::Transport { got, .. }) => *got,
        e => panic!("{e:?}"),
    };
    assert_eq!(got, 100_000);
    assert!(!dest.exists());
    assert_eq!(
        std::fs::read(part_path(&dest)).unwrap(),
        body[..100_000].to_vec()
    );

    // The next attempt asks for the rest only.
    *srv.mode.lock().unwrap() = Mode::Ranges;
    let f = get(&srv, &dest, &expect(&body), OnMismatch::Remove)
        .await
        .unwrap();
    assert_eq!(f.sha256, sha256_hex(&body));
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(srv.ranges.lock().unwrap().last().unwrap(), "bytes=100000-");
    assert!(!part_path(&dest).exists());
}

#[tokio::test]
async fn a_server_ignoring_range_starts_the_part_over() {
    let body = data(200_000);
    let srv = serve(body.clone(), Mode::IgnoreRange);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("file.img");
    std::fs::write(part_path(&dest), &body[..5000]).unwrap();
    let f = get(&srv, &dest, &expect(&body), OnMismatch::Remove)
        .await
        .unwrap();
    assert_eq!(f.len, 200_000);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(*srv.ranges.lock().unwrap(), vec!["bytes=5000-".to_string()]);
}

#[tokio::test]
async fn a_complete_part_is_confirmed_by_416() {
    let body = data(70_000);
    let srv = serve(body.clone(), Mode::Ranges);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("file.img");
    std::fs::write(part_path(&dest), &body).unwrap();
    let f = get(&srv, &dest, &expect(&body), OnMismatch::Remove)
        .await
        .unwrap();
    assert_eq!(f.sha256, sha256_hex(&body));
    assert_eq!(std::fs::read(&dest).unwrap(), body);
}

#[tokio::test]
async fn a_wrong_digest_is_never_renamed_into_place() {
    let body = data(150_000);
    let srv = serve(body.clone(), Mode::Ranges);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("file.img");
    let wrong = Expect {
        sha256: Some(sha256_hex(b"something else")),
        len: None,
    };

    // Removed...
    let e = get(&srv, &dest, &wrong, OnMismatch::Remove)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, DownloadError::Mismatch(Mismatch::Sha256 { actual, .. }) if *actual == sha256_hex(&body)),
        "{e:?}"
    );
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    assert!(!dest.exists());
    assert!(!part_path(&dest).exists());

    // ... or kept, as the caller says; never in place.
    let e = get(&srv, &dest, &wrong, OnMismatch::Keep)
        .await
        .unwrap_err();
    assert!(matches!(e, DownloadError::Mismatch(_)), "{e:?}");
    assert!(!dest.exists());
    assert_eq!(std::fs::read(part_path(&dest)).unwrap(), body);

    // A wrong size is a mismatch too.
    let short = Expect {
        sha256: None,
        len: Some(1),
    };
    let e = get(&srv, &dest, &short, OnMismatch::Remove)
        .await
        .unwrap_err();
    assert!(
        matches!(e, DownloadError::Mismatch(Mismatch::Len { .. })),
        "{e:?}"
    );
    assert!(!dest.exists());
}

#[tokio::test]
async fn the_part_limit_removes_the_part() {
    let body = data(300_000);
    let srv = serve(body, Mode::Ranges);
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("x.part");
    let mut p = Part::create(&part).await.unwrap();
    let c = client(&opts()).unwrap();
    let mut resp = c.get(&srv.url).send().await.unwrap();
    let limits = Limits {
        max_len: Some(100_000),
        idle: None,
    };
    let e = p.write_body(&mut resp, &limits, |_| {}).await.unwrap_err();
    assert!(matches!(e, BodyError::TooLarge { limit: 100_000 }), "{e:?}");
    assert!(!part.exists());
}

#[tokio::test]
async fn a_stalled_body_stops_at_the_idle_limit_and_keeps_the_part() {
    let body = data(200_000);
    let srv = serve(body.clone(), Mode::StallAfter(70_000));
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("x.part");
    let mut p = Part::create(&part).await.unwrap();
    let c = client(&opts()).unwrap();
    let mut resp = c.get(&srv.url).send().await.unwrap();
    let limits = Limits {
        max_len: None,
        idle: Some(std::time::Duration::from_secs(1)),
    };
    let e = p.write_body(&mut resp, &limits, |_| {}).await.unwrap_err();
    assert!(matches!(e, BodyError::Idle { got: 70_000, .. }), "{e:?}");
    assert_eq!(std::fs::read(&part).unwrap(), body[..70_000].to_vec());
    // The next attempt resumes after what is there.
    let p = Part::resume(&part).await.unwrap();
    assert_eq!(p.len(), 70_000);
    assert_eq!(p.sha256_so_far(), sha256_hex(&body[..70_000]));
}

#[tokio::test]
async fn a_refused_connection_says_so() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let c = client(&opts()).unwrap();
    let e = c
        .get(format!("http://127.0.0.1:{port}/x"))
        .send()
        .await
        .unwrap_err();
    let mut text = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        text.push_str(&format!(": {s}"));
        src = s.source();
    }
    assert!(
        text.to_ascii_lowercase().contains("connection refused"),
        "{text}"
    );
}
