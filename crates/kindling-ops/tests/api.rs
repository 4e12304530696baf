//! The JSON API, /metrics, /readyz and the event stream through a real kindling-http
//! server on 127.0.0.1:0 with the ops observer and extensions registered.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use common::*;
use kindling_dhcp::Firmware;
use kindling_ops::{Ops, OpsConfig};
use kindling_tftp::Outcome;
use serde_json::Value;

fn ops() -> std::sync::Arc<Ops> {
    Ops::in_memory(&OpsConfig {
        neighbour_lookup: false,
        ..OpsConfig::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_api_shapes_after_a_boot() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let srv = start_server(dir.path(), ops()).await;
    let a = srv.addr;
    let adm = srv.admin;

    // Not ready until the lead says so.
    assert_eq!(aget(a, "/readyz").await.0, 503);
    srv.ops.metrics.set_ready();
    assert_eq!(aget(a, "/readyz").await.0, 200);

    // Firmware DHCP, TFTP from 127.0.0.1 (not yet tied), then iPXE over HTTP.
    dhcp_discover(&srv.ops, MAC, Firmware::BiosPxe, "undionly.kpxe");
    tftp(
        &srv.ops,
        Ipv4Addr::LOCALHOST,
        "undionly.kpxe",
        70_000,
        Outcome::Completed,
    );
    assert_eq!(aget(a, "/boot.ipxe").await.0, 200);
    assert_eq!(aget(a, "/ipxe?mac=52-54-00-12-34-56").await.0, 200);
    assert_eq!(aget(a, "/assets/fcos/live-k").await.0, 200);
    assert_eq!(aget(a, "/assets/fcos/live-i.img").await.0, 200);
    assert_eq!(aget(a, "/assets/fcos/live-r.img").await.0, 200);
    assert_eq!(aget(a, "/ignition?mac=52:54:00:12:34:56").await.0, 200);

    let (st, h, body) = aget(adm, "/api/v1/machines").await;
    assert_eq!(st, 200);
    assert_eq!(header(&h, "content-type"), Some("application/json"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    let list = v["machines"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    let m = &list[0];
    assert_eq!(m["mac"], MAC_STR);
    assert_eq!(m["ip"], "127.0.0.1");
    assert_eq!(m["arch"], "7 (efi-x64)");
    assert_eq!(m["firmware"], "bios_pxe");
    assert_eq!(m["group"], "node1");
    assert_eq!(m["profile"], "fcos");
    assert_eq!(m["last_stage"], "ignition");
    assert_eq!(m["last_error"], Value::Null);
    assert!(m["last_seen"].as_u64().unwrap() > 1_700_000_000_000);
    assert!(m["last_seen_at"].as_str().unwrap().ends_with('Z'));

    // Any MAC form is accepted.
    for form in [
        "52:54:00:12:34:56",
        "52-54-00-12-34-56",
        "5254.0012.3456",
        "52:54:00:12:34:56".to_uppercase().as_str(),
    ] {
        let (st, _, body) = aget(adm, &format!("/api/v1/machines/{form}")).await;
        assert_eq!(st, 200, "{form}");
        let d: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(d["mac"], MAC_STR);
        let boots = d["timeline"].as_array().unwrap();
        assert_eq!(boots.len(), 1);
        let stages: Vec<&str> = boots[0]["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ok"] == true)
            .filter_map(|e| e["stage"].as_str())
            .collect();
        assert_eq!(
            stages,
            [
                "dhcp", "dhcp", "tftp", "script", "script", "kernel", "initrd", "rootfs",
                "ignition"
            ]
        );
        let kernel = &boots[0]["events"][5];
        assert_eq!(kernel["bytes"], 3000);
        assert_eq!(kernel["status"], 200);
        assert!(kernel["duration_ms"].as_f64().is_some());
    }
    assert_eq!(aget(adm, "/api/v1/machines/not-a-mac").await.0, 400);
    let (st, _, body) = aget(adm, "/api/v1/machines/52:54:00:99:99:99").await;
    assert_eq!(st, 404);
    assert!(String::from_utf8_lossy(&body).contains("no boot events"));

    // A failing boot: unknown MAC asks for Ignition, 404 with its reason.
    assert_eq!(aget(a, "/ipxe?mac=52:54:00:00:00:07").await.0, 404);
    let (_, _, body) = aget(adm, "/api/v1/machines/52:54:00:00:00:07").await;
    let d: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(d["last_stage"], Value::Null);
    assert_eq!(d["last_error"]["stage"], "script");
    assert!(
        d["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("no group matched")
    );

    // /metrics over HTTP, parsed, with the requests above counted.
    let (st, h, body) = aget(adm, "/metrics").await;
    assert_eq!(st, 200);
    assert!(
        header(&h, "content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(body).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let get = |name: &str, k: &str, v: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(k) == Some(v))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(x) => x,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        get("kindling_http_requests_total", "endpoint", "assets"),
        Some(3.0)
    );
    assert_eq!(
        get("kindling_asset_bytes_served_total", "kind", "kernel"),
        Some(3000.0)
    );
    assert_eq!(
        get("kindling_asset_bytes_served_total", "kind", "initrd"),
        Some(5000.0)
    );
    assert_eq!(
        get("kindling_asset_bytes_served_total", "kind", "rootfs"),
        Some(7000.0)
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "kindling_http_requests_total"
                && s.labels.get("endpoint") == Some("ipxe")
                && s.labels.get("status") == Some("404"))
    );
    assert_eq!(get("kindling_reloads_total", "x", "y"), None);

    // The dashboard is complete HTML without JavaScript.
    let (st, h, body) = aget(adm, "/ui/").await;
    assert_eq!(st, 200);
    assert_eq!(header(&h, "content-type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(body).unwrap();
    let row = html
        .lines()
        .find(|l| l.starts_with("<tr id=\"m-525400123456\""))
        .expect("machine row");
    assert!(row.contains("<td class=\"stage\">ignition</td>"), "{row}");
    assert!(row.contains(">node1<") && row.contains(">fcos<"), "{row}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from outside"
    );
    let (st, _, body) = aget(adm, "/ui/machines/52-54-00-12-34-56").await;
    assert_eq!(st, 200);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("GET /assets/fcos/live-r.img")
    );
    assert_eq!(aget(adm, "/ui").await.0, 301);
    assert_eq!(aget(adm, "/ui/app.js").await.0, 200);

    let (st, _, body) = aget(adm, "/api/v1/status").await;
    assert_eq!(st, 200);
    let s: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(s["ready"], true);
    assert!(s["config_problems"].as_array().unwrap().is_empty());
    assert_eq!(s["fcos"], serde_json::json!([]));

    // The Fedora CoreOS tracker's status, per stream and architecture.
    let streams = vec![kindling_model::FcosTrack {
        stream: "stable".into(),
        arch: "x86_64".into(),
        current: Some("42.20251012.3.0".into()),
        upstream: None,
        last_error: Some("http request failed: <Connection refused>".into()),
        last_check: Some(1_764_000_000),
        last_success: None,
        failures: 2,
        consecutive_failures: 2,
        switches: 1,
    }];
    srv.ops
        .metrics
        .set_fcos_source(std::sync::Arc::new(move || streams.clone()));
    let (_, _, body) = aget(adm, "/api/v1/status").await;
    let s: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        s["fcos"],
        serde_json::json!([{
            "stream": "stable",
            "arch": "x86_64",
            "current": "42.20251012.3.0",
            "upstream": null,
            "last_error": "http request failed: <Connection refused>",
            "last_check": 1_764_000_000u64,
            "last_success": null,
            "failures": 2,
            "consecutive_failures": 2,
            "switches": 1,
        }])
    );
    let (_, _, page) = aget(adm, "/ui/").await;
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("id=\"fcos-alert\"")
            && page.contains("http request failed: &lt;Connection refused&gt;"),
        "{page}"
    );

    srv.ops.shutdown();
    srv.cancel.cancel();
    srv.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_delivers_updates_and_ends_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let srv = start_server(dir.path(), ops()).await;
    let a = srv.addr;
    let adm = srv.admin;
    let reader = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(adm).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET /api/v1/events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let mut lines = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            lines.push(line.trim_end().to_string());
            if line.starts_with("data: ") {
                break;
            }
        }
        lines
    });
    // Wait for the subscriber (up to 30 s), then make an event.
    for _ in 0..3000 {
        if srv.ops.open_subscribers() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(aget(a, "/ipxe?mac=52:54:00:12:34:56").await.0, 200);
    let lines = reader.await.unwrap();
    assert!(
        lines.first().unwrap().starts_with("HTTP/1.1 200"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.eq_ignore_ascii_case("content-type: text/event-stream"))
    );
    assert!(lines.iter().any(|l| l == "event: machine"), "{lines:?}");
    let data = lines.last().unwrap().strip_prefix("data: ").unwrap();
    let u: Value = serde_json::from_str(data).unwrap();
    assert_eq!(u["machine"]["mac"], MAC_STR);
    assert_eq!(u["event"]["endpoint"], "ipxe");
    assert_eq!(u["machine"]["last_stage"], "script");

    // Shutdown ends open streams, so the server drains promptly.
    srv.ops.shutdown();
    srv.cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), srv.task)
        .await
        .expect("server stopped within 5 s")
        .unwrap()
        .unwrap();
}

/// A kernel download the client abandons is a failed kernel step (with how far it got);
/// a later complete download clears it. Large bodies are reported when they end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_short_is_a_failed_step() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    const KERNEL: usize = 16 << 20;
    std::fs::write(dir.path().join("assets/fcos/live-k"), vec![b'k'; KERNEL]).unwrap();
    let srv = start_server(dir.path(), ops()).await;
    let a = srv.addr;
    let adm = srv.admin;
    assert_eq!(aget(a, "/ipxe?mac=52-54-00-12-34-56").await.0, 200);

    // Read the head and about 200 KiB, then reset the connection.
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut s = TcpStream::connect(a).unwrap();
        write!(s, "GET /assets/fcos/live-k HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut got = vec![0u8; 200 * 1024];
        s.read_exact(&mut got).unwrap();
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    })
    .await
    .unwrap();

    let detail = |srv: &Server| srv.ops.machine(MAC_STR).unwrap();
    let mut waited = 0;
    let kernel = loop {
        let d = detail(&srv);
        let ev = d
            .timeline
            .last()
            .unwrap()
            .events
            .iter()
            .rev()
            .find(|e| e.path() == Some("/assets/fcos/live-k"))
            .cloned();
        if let Some(ev) = ev {
            break (d, ev);
        }
        waited += 1;
        assert!(waited < 200, "no kernel event after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (d, ev) = kernel;
    assert!(!ev.ok, "{ev:?}");
    let sent = ev.bytes().unwrap();
    assert!(sent < KERNEL as u64, "{ev:?}");
    let reason = ev.reason.as_ref().unwrap().to_string();
    assert!(
        reason.starts_with("download cut short after ")
            && reason.ends_with(" of 16.0 MiB: the client closed the connection"),
        "{reason}"
    );
    let err = d.summary.last_error.unwrap();
    assert_eq!(err.stage, Some(kindling_timeline::Stage::Kernel));
    assert!(
        err.message.contains("download cut short"),
        "{}",
        err.message
    );
    let (_, _, metrics) = aget(adm, "/metrics").await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("kindling_http_downloads_cut_total{endpoint=\"assets\"} 1"),
        "{metrics}"
    );

    // The retry goes through: the boot is past its kernel again.
    let (st, _, body) = aget(a, "/assets/fcos/live-k").await;
    assert_eq!((st, body.len()), (200, KERNEL));
    let mut waited = 0;
    loop {
        let d = detail(&srv);
        if d.summary.last_error.is_none() {
            let ev = d.timeline.last().unwrap().events.back().unwrap().clone();
            assert!(ev.ok, "{ev:?}");
            assert_eq!(ev.bytes(), Some(KERNEL as u64));
            break;
        }
        waited += 1;
        assert!(
            waited < 200,
            "error not cleared: {:?}",
            d.summary.last_error
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    srv.cancel.cancel();
}

/// The dashboard's live rows: the rows of the machines named, in that order, as the page
/// renders them; unknown machines and what is no MAC left out; at most 128 a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_rows_fragment() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let srv = start_server(dir.path(), ops()).await;
    let adm = srv.admin;
    let macs: Vec<[u8; 6]> = (0..200u8).map(|i| [0x52, 0x54, 0, 0, 1, i]).collect();
    for m in &macs {
        dhcp_discover(&srv.ops, *m, Firmware::BiosPxe, "undionly.kpxe");
    }
    let rows = |q: String| async move {
        let (st, h, body) = aget(adm, &format!("/ui/?fragment=rows&{q}")).await;
        assert_eq!(st, 200);
        assert_eq!(header(&h, "content-type"), Some("text/html; charset=utf-8"));
        let body = String::from_utf8(body).unwrap();
        let ids: Vec<String> = body
            .split("<tr id=\"")
            .skip(1)
            .map(|r| r.split('"').next().unwrap().to_string())
            .collect();
        (body, ids)
    };
    // Order kept; percent-encoded and dashed forms; an unknown MAC and a non-MAC left out.
    let (body, ids) = rows(
        "mac=52%3A54%3A00%3A00%3A01%3A07&mac=52:54:00:00:01:03&mac=52-54-00-00-01-05\
         &mac=52:54:00:99:99:99&mac=%3Cscript%3E"
            .into(),
    )
    .await;
    assert_eq!(ids, ["m-525400000107", "m-525400000103", "m-525400000105"]);
    assert!(!body.contains("<script"), "{body}");
    // The same row as the page's.
    let (_, _, page) = aget(adm, "/ui/").await;
    let page = String::from_utf8(page).unwrap();
    let row = body.lines().next().unwrap();
    assert!(page.contains(row), "{row} not on the page");
    // At most 128 machines a request.
    let all: Vec<String> = macs
        .iter()
        .map(|m| format!("mac=52:54:00:00:01:{:02x}", m[5]))
        .collect();
    assert_eq!(rows(all.join("&")).await.1.len(), 128);
    // Nothing named: nothing.
    assert_eq!(rows("mac=".into()).await.1.len(), 0);
}
