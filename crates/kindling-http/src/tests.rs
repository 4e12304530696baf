use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kindling_model::DataDir;

use super::*;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALLOWED: &str = "52:54:00:00:00:01";

/// Allows only `ALLOWED` from 127.0.0.1.
struct FakeBinding;

impl MachineBinding for FakeBinding {
    fn check(&self, mac: &str, peer: std::net::IpAddr) -> Result<(), String> {
        if mac == ALLOWED && peer == std::net::IpAddr::from([127, 0, 0, 1]) {
            Ok(())
        } else {
            Err(format!("{peer} did not boot {mac}"))
        }
    }
}

/// Keeps (path, status, reason) of every request, and (path, bytes, complete).
#[derive(Default)]
struct Seen(
    Mutex<Vec<(String, u16, Option<String>)>>,
    Mutex<Vec<(String, u64, bool)>>,
);

impl RequestObserver for Seen {
    fn request(&self, r: &RequestRecord<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((r.path.to_string(), r.status, r.reason.map(str::to_string)));
        self.1
            .lock()
            .unwrap()
            .push((r.path.to_string(), r.bytes, r.complete));
    }
}

fn data_dir(tag: &str) -> kindling_testkit::TempDir {
    let tmp = kindling_testkit::tempdir(&format!("http-{tag}"));
    let root = tmp.path();
    let dd = DataDir::new(root);
    dd.ensure_layout().unwrap();
    let w = |p: &str, s: &str| std::fs::write(root.join(p), s).unwrap();
    w(
        "profiles/p.json",
        r#"{"id":"p","boot":{"kernel":"/k"},"ignition_id":"m.ign","generic_id":"g.tmpl","cloud_id":"c.tmpl"}"#,
    );
    w("ignition/m.ign", r#"{"ignition":{"version":"3.4.0"}}"#);
    w("generic/g.tmpl", "generic file\n");
    w("cloud/c.tmpl", "#cloud-config\n");
    w(
        "groups/by-mac.json",
        &format!(
            r#"{{"id":"m","profile":"p","selector":{{"mac":"{ALLOWED}"}},"metadata":{{"k":"v"}}}}"#
        ),
    );
    w(
        "groups/by-uuid.json",
        r#"{"id":"u","profile":"p","selector":{"uuid":"u1"}}"#,
    );
    w(
        "groups/other.json",
        r#"{"id":"o","profile":"p","selector":{"mac":"52:54:00:00:00:02"}}"#,
    );
    std::fs::create_dir_all(root.join("assets/sub/site")).unwrap();
    w("assets/sub/a.txt", "a\n");
    w("assets/sub/site/index.html", "<html>index</html>\n");
    tmp
}

async fn start(
    root: &Path,
    configure: impl FnOnce(&mut Shared),
) -> (SocketAddr, Arc<Seen>, CancelOnDrop) {
    let dd = DataDir::new(root);
    let snapshot = kindling_model::Loader::new(dd.clone()).load();
    assert!(snapshot.problems.is_empty(), "{:?}", snapshot.problems);
    let mut shared = Shared::new(dd, snapshot);
    let seen = Arc::new(Seen::default());
    shared.observer = Some(seen.clone());
    configure(&mut shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(serve(listener, Arc::new(shared), cancel.clone()));
    (addr, seen, CancelOnDrop(cancel))
}

struct CancelOnDrop(tokio_util::sync::CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// One HTTP/1.1 request over a real socket: (status, body).
async fn get(addr: SocketAddr, target: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut raw))
        .await
        .expect("response within 60 s")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

fn reason_of(seen: &Seen, path_query: &str) -> Option<String> {
    let path = path_query.split('?').next().unwrap();
    seen.0
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(p, _, _)| p == path)
        .and_then(|(_, _, r)| r.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_refuses_strangers_and_requests_without_mac() {
    let tmp = data_dir("binding");
    let (addr, seen, _stop) = start(tmp.path(), |s| s.binding = Some(Arc::new(FakeBinding))).await;
    for ep in ["/ignition", "/generic", "/cloud", "/metadata"] {
        // The machine that booted from this address: served.
        let (status, body) = get(addr, &format!("{ep}?mac=52-54-00-00-00-01")).await;
        assert_eq!(status, 200, "{ep}: {body}");
        // Another MAC: refused, with the binding's reason in the log.
        let target = format!("{ep}?mac=52:54:00:00:00:02");
        let (status, body) = get(addr, &target).await;
        assert_eq!((status, body.as_str()), (403, "403 Forbidden\n"), "{ep}");
        let reason = reason_of(&seen, &target).unwrap();
        assert_eq!(
            reason,
            "ignition binding: 127.0.0.1 did not boot 52:54:00:00:00:02"
        );
        // No MAC (a uuid selector): refused while binding is on.
        let (status, _) = get(addr, &format!("{ep}?uuid=u1")).await;
        assert_eq!(status, 403, "{ep}");
        let reason = reason_of(&seen, ep).unwrap();
        assert!(reason.contains("carries no mac label"), "{reason}");
        // A second, differently cased MAC key cannot smuggle a stranger in.
        let (status, _) = get(addr, &format!("{ep}?mac={ALLOWED}&MAC=52:54:00:00:00:02")).await;
        assert_eq!(status, 403, "{ep}");
    }
    // Boot scripts are not per-machine secrets: unaffected.
    assert_eq!(get(addr, "/ipxe?mac=52:54:00:00:00:02").await.0, 200);
    assert_eq!(get(addr, "/ipxe?uuid=u1").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_binding_matchbox_answers_anyone() {
    let tmp = data_dir("nobinding");
    let (addr, _seen, _stop) = start(tmp.path(), |_| {}).await;
    for ep in ["/ignition", "/generic", "/cloud", "/metadata"] {
        assert_eq!(
            get(addr, &format!("{ep}?mac=52:54:00:00:00:02")).await.0,
            200
        );
        assert_eq!(get(addr, &format!("{ep}?uuid=u1")).await.0, 200);
    }
}

#[test]
fn hidden_assets() {
    for hidden in [
        ".env",
        "a/.git/config",
        "fedora-coreos/stable/.partial/",
        "fedora-coreos/stable/.partial/42.1/k",
        "fedora-coreos/stable/.lock",
        "fedora-coreos/stable/state.json",
        "fedora-coreos/stable-aarch64/state.json",
        "fedora-coreos/stable/.state.json.7.tmp",
    ] {
        assert!(hidden_asset(hidden), "{hidden}");
    }
    for served in [
        "",
        "fedora-coreos/",
        "fedora-coreos/stable/",
        "fedora-coreos/stable/42.1/release.json",
        "fedora-coreos/stable/42.1/k.sig",
        "state.json",
        "other/stable/state.json",
        "a..b/c",
    ] {
        assert!(!hidden_asset(served), "{served}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asset_listings_are_off_by_default() {
    let tmp = data_dir("listings");
    let (addr, seen, _stop) = start(tmp.path(), |_| {}).await;
    for dir in ["/assets/", "/assets/sub/"] {
        assert_eq!(get(addr, dir).await.0, 404, "{dir}");
        let reason = reason_of(&seen, dir).unwrap();
        assert!(
            reason.contains("directory listings are disabled"),
            "{reason}"
        );
    }
    // Files and index.html are still served.
    assert_eq!(get(addr, "/assets/sub/a.txt").await, (200, "a\n".into()));
    assert_eq!(
        get(addr, "/assets/sub/site/").await,
        (200, "<html>index</html>\n".into())
    );
    drop(_stop);

    let (addr, _seen, _stop) = start(tmp.path(), |s| s.asset_listings = true).await;
    let (status, body) = get(addr, "/assets/sub/").await;
    assert_eq!(status, 200);
    assert!(body.contains("<a href=\"a.txt\">a.txt</a>"), "{body}");
    assert!(body.contains("<a href=\"site/\">site/</a>"), "{body}");
}

/// Answers `/snap` with the generation and group count of the snapshot the
/// request carries.
struct SnapEcho;

impl Extension for SnapEcho {
    fn name(&self) -> crate::Endpoint {
        crate::Endpoint::Menu
    }

    fn handle<'a>(
        &'a self,
        req: &'a ExtRequest<'a>,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send + 'a>>> {
        if req.path != "/snap" {
            return None;
        }
        let text = match req.snapshot {
            Some(s) => format!("{} {}", s.generation, s.index.groups().len()),
            None => "none".to_string(),
        };
        Some(Box::pin(async move {
            Reply::new(hyper::StatusCode::OK, "text/plain", text)
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extensions_see_the_current_snapshot() {
    let tmp = data_dir("snapshot");
    let want = kindling_model::Loader::new(DataDir::new(tmp.path())).load();
    let (addr, _seen, _stop) = start(tmp.path(), |s| s.extensions = vec![Arc::new(SnapEcho)]).await;
    let (status, body) = get(addr, "/snap").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        format!("{} {}", want.generation, want.index.groups().len())
    );
}

// ---------------------------------------------------------------------------------------
// The boot listener's own HTTP/1.1 (src/conn.rs), over a real socket.

/// Reads one response (head and Content-Length body) from `s`, which may hold more.
async fn read_response(s: &mut tokio::net::TcpStream, head_only: bool) -> (String, Vec<u8>) {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut byte))
            .await
            .expect("a response head within 60 s")
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed inside a head: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; if head_only { 0 } else { len }];
    tokio::time::timeout(Duration::from_secs(60), s.read_exact(&mut body))
        .await
        .expect("a body within 60 s")
        .unwrap();
    (head, body)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_whole_ranged_and_head_on_one_pipelined_connection() {
    let tmp = data_dir("wire-files");
    let big = pattern(3 << 20);
    std::fs::write(tmp.path().join("assets/big.bin"), &big).unwrap();
    let (addr, seen, _stop) = start(tmp.path(), |_| {}).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Four requests in one write: answered in order on the same connection.
    s.write_all(
        b"GET /assets/big.bin HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /assets/big.bin HTTP/1.1\r\nRange: bytes=1000000-1999999\r\n\r\n\
          HEAD /assets/big.bin HTTP/1.1\r\n\r\n\
          GET /ipxe?mac=52:54:00:00:00:01 HTTP/1.1\r\n\r\n",
    )
    .await
    .unwrap();
    let (head, body) = read_response(&mut s, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("accept-ranges: bytes\r\n"), "{head}");
    assert!(head.contains("last-modified: "), "{head}");
    assert!(head.contains("date: "), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert!(body == big, "the whole file, byte for byte");
    let (head, body) = read_response(&mut s, false).await;
    assert!(
        head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!(
            "content-range: bytes 1000000-1999999/{}\r\n",
            big.len()
        )),
        "{head}"
    );
    assert!(
        body == big[1_000_000..2_000_000],
        "the range, byte for byte"
    );
    let (head, _) = read_response(&mut s, true).await;
    assert!(
        head.contains(&format!("content-length: {}\r\n", big.len())),
        "{head}"
    );
    let (head, body) = read_response(&mut s, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(String::from_utf8_lossy(&body).starts_with("#!ipxe"));
    let sent: Vec<_> = seen.1.lock().unwrap().clone();
    let big_len = big.len() as u64;
    assert_eq!(
        sent[..3],
        [
            ("/assets/big.bin".to_string(), big_len, true),
            ("/assets/big.bin".to_string(), 1_000_000, true),
            ("/assets/big.bin".to_string(), 0, true),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_file_is_a_download_cut_short() {
    let tmp = data_dir("wire-cut");
    std::fs::write(tmp.path().join("assets/big.bin"), pattern(64 << 20)).unwrap();
    let (addr, seen, _stop) = start(tmp.path(), |_| {}).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /assets/big.bin HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut some = vec![0u8; 64 * 1024];
    s.read_exact(&mut some).await.unwrap();
    drop(s);
    // Reported once the server notices (its next write fails).
    let report = loop {
        if let Some(r) = seen.1.lock().unwrap().first().cloned() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(report.0, "/assets/big.bin");
    assert!(!report.2, "not complete: {report:?}");
    assert!(report.1 < 64 << 20, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_heads_are_answered_then_closed_and_small_bodies_skipped() {
    let tmp = data_dir("wire-bad");
    let (addr, _seen, _stop) = start(tmp.path(), |_| {}).await;
    let answer_then_close = |req: Vec<u8>| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&req).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut raw))
            .await
            .expect("closed within 60 s")
            .unwrap();
        String::from_utf8_lossy(&raw).into_owned()
    };
    // A TLS ClientHello on the plain port, and a head over the size limit.
    let r = answer_then_close(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec()).await;
    assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
    assert!(r.contains("connection: close\r\n"), "{r}");
    let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 70 * 1024));
    let r = answer_then_close(huge).await;
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    // HTTP/1.0 without keep-alive: one answer, then the server closes.
    let r = answer_then_close(b"GET /boot.ipxe HTTP/1.0\r\n\r\n".to_vec()).await;
    assert!(
        r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with(kindling_render::BOOTSTRAP_IPXE),
        "{r}"
    );
    // A small request body is read and dropped; the next request on the connection is
    // answered. A chunked one is not read: answered, then closed.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /boot.ipxe HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /healthz HTTP/1.1\r\n\r\n",
    )
    .await
    .unwrap();
    let (head, _) = read_response(&mut s, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let (head, body) = read_response(&mut s, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, b"ok\n");
    let r = answer_then_close(
        b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            .to_vec(),
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 200 OK\r\n") && r.contains("connection: close\r\n"),
        "{r}"
    );
}

/// A hundred opens at once run at most `OPENS_AT_ONCE` at a time, and all of them finish.
/// (Without the bound the blocking pool runs all of them together.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_opens_are_bounded() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let calls: Vec<_> = (0..100)
        .map(|i| {
            let (running, most) = (running.clone(), most.clone());
            tokio::spawn(crate::assets::off_thread(move || {
                let now = running.fetch_add(1, SeqCst) + 1;
                most.fetch_max(now, SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, SeqCst);
                i
            }))
        })
        .collect();
    let mut done = 0;
    for c in calls {
        c.await.unwrap().unwrap();
        done += 1;
    }
    assert_eq!(done, 100);
    let most = most.load(SeqCst);
    assert!(
        (1..=crate::assets::OPENS_AT_ONCE).contains(&most),
        "{most} ran at once"
    );
}
