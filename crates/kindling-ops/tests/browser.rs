//! The dashboard in a real headless Chromium (Debian's `chromium`), driven over the
//! Chrome DevTools Protocol from Rust (tungstenite websocket client): the page loads
//! with no console errors, the machine table shows a machine fed through the observers,
//! a live update arrives over server-sent events, and a screenshot is written to
//! `<target>/tmp/ui-screenshot.png` (or `$KINDLING_UI_SCREENSHOT`).
//!
//! Skipped, with a message, when chromium is not installed.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use kindling_dhcp::{Firmware, IgnoreReason};
use kindling_model::FcosTrack;
use kindling_ops::{AssetStatus, Ops, OpsConfig};
use kindling_tftp::Outcome;
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A tracker error with markup in it: shown as text, never as markup.
const FCOS_ERROR: &str = "http request to <http://127.0.0.1:9/streams/next.json> failed: <b>tcp connect error</b> & Connection refused";

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Kills the browser (by PID) even when the test fails.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Cdp {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
    session: Option<String>,
    /// Console errors, exceptions and error log entries seen so far.
    errors: Vec<String>,
    events: Vec<Value>,
}

impl Cdp {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "no answer to {method}");
            let v = self.read();
            let Some(v) = v else { continue };
            if v["id"].as_u64() == Some(id) {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
        }
    }

    /// One message (events are filed), or None on a read timeout.
    fn read(&mut self) -> Option<Value> {
        match self.ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v.get("method").is_some() {
                    self.note(&v);
                    self.events.push(v.clone());
                }
                Some(v)
            }
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("devtools connection: {e}"),
        }
    }

    fn note(&mut self, v: &Value) {
        let p = &v["params"];
        match v["method"].as_str().unwrap_or("") {
            "Runtime.consoleAPICalled" if p["type"] == "error" || p["type"] == "assert" => self
                .errors
                .push(format!("console.{}: {}", p["type"], p["args"])),
            "Runtime.exceptionThrown" => self
                .errors
                .push(format!("exception: {}", p["exceptionDetails"])),
            "Log.entryAdded" if p["entry"]["level"] == "error" => self
                .errors
                .push(format!("log: {} {}", p["entry"]["text"], p["entry"]["url"])),
            _ => {}
        }
    }

    fn wait_event(&mut self, method: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
                return self.events.remove(i);
            }
            assert!(Instant::now() < deadline, "no {method} within {timeout:?}");
            self.read();
        }
    }

    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is true.
    fn wait_true(&mut self, expr: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.eval(expr) != json!(true) {
            assert!(Instant::now() < deadline, "never true: {expr}");
            std::thread::sleep(Duration::from_millis(100));
            while self.read().is_some() {}
        }
    }

    fn navigate(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_event("Page.loadEventFired", Duration::from_secs(20));
    }
}

#[test]
fn dashboard_in_headless_chromium() {
    let Some(chrome) = chromium() else {
        eprintln!(
            "SKIPPED dashboard_in_headless_chromium: chromium is not installed (apt-get install -y chromium)"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let ops = Ops::in_memory(&OpsConfig {
        neighbour_lookup: false,
        ..OpsConfig::default()
    });
    let srv = rt.block_on(start_server(dir.path(), ops));
    let ops = srv.ops.clone();
    ops.metrics.set_ready();
    ops.metrics.set_cache_bytes(734_003_200);
    let streams = vec![
        FcosTrack {
            stream: "stable".into(),
            arch: "x86_64".into(),
            current: Some("42.20251012.3.0".into()),
            upstream: Some("42.20251012.3.0".into()),
            last_check: Some(1_764_000_000),
            last_success: Some(1_764_000_000),
            ..FcosTrack::default()
        },
        FcosTrack {
            stream: "next".into(),
            arch: "aarch64".into(),
            current: Some("43.20251020.1.0".into()),
            last_error: Some(FCOS_ERROR.into()),
            last_check: Some(1_764_000_000),
            failures: 4,
            consecutive_failures: 2,
            ..FcosTrack::default()
        },
    ];
    ops.metrics
        .set_fcos_source(std::sync::Arc::new(move || streams.clone()));
    ops.metrics.set_config_problems(vec![
        "groups/broken.json: expected value at line 3 column 1".into(),
    ]);
    ops.metrics.set_asset_status(vec![AssetStatus {
        name: "fedora-coreos stable x86_64".into(),
        detail: "kernel, initramfs, rootfs verified (sha256 + signature)".into(),
        ok: true,
    }]);
    // One machine boots through every stage (observers + real HTTP requests) ...
    let a = srv.addr;
    let adm = srv.admin;
    dhcp_discover(&ops, MAC, Firmware::BiosPxe, "undionly.kpxe");
    tftp(
        &ops,
        Ipv4Addr::LOCALHOST,
        "undionly.kpxe",
        70_000,
        Outcome::Completed,
    );
    for p in [
        "/boot.ipxe",
        "/ipxe?mac=52-54-00-12-34-56",
        "/assets/fcos/live-k",
        "/assets/fcos/live-i.img",
        "/assets/fcos/live-r.img",
        "/ignition?mac=52:54:00:12:34:56",
    ] {
        assert_eq!(get(a, p).0, 200, "{p}");
    }
    // ... and one is refused by a rule.
    dhcp_discover(&ops, [0x52, 0x54, 0, 0, 0, 7], Firmware::UefiPxe, "");
    dhcp_ignored(&ops, [0x52, 0x54, 0, 0, 0, 7], IgnoreReason::RuleIgnore);

    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(&chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1500,900",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chromium");
    let stderr = child.stderr.take().unwrap();
    let _browser = Browser(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let ws_url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("chromium printed no DevTools URL within 60 s");
    let (ws, _) = tungstenite::connect(ws_url.as_str()).expect("devtools websocket");
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    let mut cdp = Cdp {
        ws,
        next: 0,
        session: None,
        errors: Vec::new(),
        events: Vec::new(),
    };
    let target = cdp.call("Target.createTarget", json!({ "url": "about:blank" }));
    let attached = cdp.call(
        "Target.attachToTarget",
        json!({ "targetId": target["targetId"], "flatten": true }),
    );
    cdp.session = Some(attached["sessionId"].as_str().unwrap().to_string());
    cdp.call("Page.enable", json!({}));
    cdp.call("Runtime.enable", json!({}));
    cdp.call("Log.enable", json!({}));

    // The machine table, server-rendered.
    cdp.navigate(&format!("http://{adm}/ui/"));
    assert_eq!(
        cdp.eval("document.querySelector('#m-525400123456 td.stage').textContent"),
        json!("ignition")
    );
    assert_eq!(
        cdp.eval("document.querySelectorAll('#m-525400123456 ol.stages li.reached').length"),
        json!(7)
    );
    assert_eq!(
        cdp.eval("document.querySelector('#m-525400000007 td.err').textContent"),
        json!("DISCOVER not answered: rule_ignore")
    );
    assert_eq!(
        cdp.eval("document.querySelector('#config li').textContent"),
        json!("groups/broken.json: expected value at line 3 column 1")
    );

    // The failing Fedora CoreOS stream, prominently, its error as text.
    assert_eq!(
        cdp.eval("document.querySelector('#fcos-alert li[data-stream=next] code').textContent"),
        json!(FCOS_ERROR)
    );
    assert_eq!(
        cdp.eval("document.querySelectorAll('#fcos-alert li').length"),
        json!(1)
    );
    assert_eq!(
        cdp.eval("document.querySelectorAll('#fcos-alert b').length"),
        json!(1),
        "the error's <b> is text"
    );
    let alert = cdp.eval("document.querySelector('#fcos-alert li').textContent");
    let alert = alert.as_str().unwrap_or_default();
    assert!(
        alert.contains("next (aarch64)")
            && alert.contains("2 consecutive failed check(s) (4 since start)")
            && alert.contains("last success never"),
        "{alert}"
    );
    let card = cdp.eval("document.querySelector('#fcos tbody').textContent");
    let card = card.as_str().unwrap_or_default();
    assert!(
        card.contains("stable (x86_64)") && card.contains("42.20251012.3.0"),
        "{card}"
    );

    // A live update: the event stream connects, then a new machine appears without a reload.
    cdp.wait_true(
        "document.getElementById('live').textContent === 'live'",
        Duration::from_secs(15),
    );
    cdp.eval("window.__notReloaded = true");
    // The new machine is one the lifecycle store discovered: its live row says so, as the
    // page would (the script shows rows the server renders, it draws none of its own).
    let state = tempfile::tempdir().unwrap();
    let (machines, _) = kindling_model::Machines::open(state.path(), 100, true).unwrap();
    let new = kindling_model::MacAddr([0x52, 0x54, 0, 0xab, 0xcd, 0xef]);
    machines.discovered(new, None, ["", "", "", ""]);
    ops.set_machines(std::sync::Arc::new(machines));
    dhcp_discover(
        &ops,
        [0x52, 0x54, 0, 0xab, 0xcd, 0xef],
        Firmware::UefiHttp,
        "http://10.99.0.1:8080/tftp/ipxe.efi",
    );
    cdp.wait_true(
        "document.getElementById('m-525400abcdef') !== null",
        Duration::from_secs(15),
    );
    assert_eq!(cdp.eval("window.__notReloaded === true"), json!(true));
    assert_eq!(
        cdp.eval("document.querySelector('#m-525400abcdef td.stage').textContent"),
        json!("dhcp")
    );
    assert_eq!(
        cdp.eval("document.querySelector('#machines tbody tr').id"),
        json!("m-525400abcdef")
    );
    assert_eq!(
        cdp.eval("document.querySelector('#m-525400abcdef span.lifecycle').textContent"),
        json!("discovered")
    );

    let shot = cdp.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let out = std::env::var_os("KINDLING_UI_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshot.png"));
    std::fs::write(&out, &png).unwrap();
    eprintln!("dashboard screenshot: {}", out.display());

    // The timeline page of the booted machine, refreshed live.
    cdp.navigate(&format!("http://{adm}/ui/machines/52-54-00-12-34-56"));
    assert_eq!(
        cdp.eval("document.querySelectorAll('#timeline table.timeline tbody tr').length"),
        json!(9)
    );
    cdp.wait_true(
        "document.getElementById('live').textContent === 'live'",
        Duration::from_secs(15),
    );
    // The same request again is counted on its row (x2), and arrives live.
    assert_eq!(get(a, "/ignition?mac=52:54:00:12:34:56").0, 200);
    cdp.wait_true(
        "document.querySelectorAll('#timeline table.timeline tbody tr').length === 9 && document.querySelector('#timeline b.repeats') !== null && document.querySelector('#timeline b.repeats').textContent === '\\u00d72'",
        Duration::from_secs(15),
    );
    // A new kind of request adds a row, live.
    assert_eq!(get(a, "/metadata?mac=52:54:00:12:34:56").0, 200);
    cdp.wait_true(
        "document.querySelectorAll('#timeline table.timeline tbody tr').length === 10",
        Duration::from_secs(15),
    );
    let shot = cdp.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    std::fs::write(out.with_file_name("ui-timeline-screenshot.png"), &png).unwrap();

    while cdp.read().is_some() {}
    assert!(cdp.errors.is_empty(), "console errors: {:#?}", cdp.errors);

    ops.shutdown();
    srv.cancel.cancel();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), srv.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    });
}
