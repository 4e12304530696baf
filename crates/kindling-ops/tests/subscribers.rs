//! Event-stream subscribers are bounded (issue 13, item 8): at most `max_subscribers`
//! streams (more get 503), and a subscriber that does not read is dropped once its queue
//! overflows, instead of holding memory forever. Real sockets on the admin listener;
//! outcomes are counted with generous bounds, never timed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use kindling_ops::{Ops, OpsConfig};
use kindling_timeline::{Endpoint, Event};

fn ops(max: usize, queue: usize) -> std::sync::Arc<Ops> {
    Ops::in_memory(&OpsConfig {
        neighbour_lookup: false,
        max_subscribers: max,
        subscriber_queue: queue,
        ..OpsConfig::default()
    })
}

/// Sends the event-stream request and returns the socket with the status read.
fn subscribe(addr: SocketAddr) -> (u16, BufReader<TcpStream>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /api/v1/events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    (status, r)
}

/// Waits (bounded) until `f` holds.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_beyond_the_cap_get_503() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let srv = start_server(dir.path(), ops(3, 32)).await;
    let adm = srv.admin;
    let mut open = Vec::new();
    for _ in 0..3 {
        let (st, r) = tokio::task::spawn_blocking(move || subscribe(adm))
            .await
            .unwrap();
        assert_eq!(st, 200);
        open.push(r);
    }
    let o = srv.ops.clone();
    eventually("3 subscribers", || o.open_subscribers() == 3).await;
    let (st, mut r) = tokio::task::spawn_blocking(move || subscribe(adm))
        .await
        .unwrap();
    assert_eq!(st, 503, "the 4th subscriber is refused");
    let mut rest = String::new();
    let _ = r.read_to_string(&mut rest);
    assert!(rest.contains("too many event-stream subscribers"), "{rest}");
    assert!(
        rest.to_ascii_lowercase().contains("retry-after: 10"),
        "{rest}"
    );
    let (_, _, metrics) = aget(adm, "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    assert!(
        metrics.contains("kindling_events_subscribers_refused_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kindling_events_subscribers 3"),
        "{metrics}"
    );
    // A place freed is a place taken again.
    drop(open.pop());
    let o = srv.ops.clone();
    eventually("a subscriber leaves", || o.open_subscribers() == 2).await;
    let (st, _r) = tokio::task::spawn_blocking(move || subscribe(adm))
        .await
        .unwrap();
    assert_eq!(st, 200);
    srv.ops.shutdown();
    srv.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_does_not_read_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let srv = start_server(dir.path(), ops(4, 4)).await;
    let adm = srv.admin;
    // A small receive buffer so that the kernel holds little on the client's side.
    let stalled = tokio::task::spawn_blocking(move || {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        sock.connect(&adm.into()).unwrap();
        let mut s: TcpStream = sock.into();
        write!(s, "GET /api/v1/events HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        s
    })
    .await
    .unwrap();
    let o = srv.ops.clone();
    eventually("the subscriber is counted", || o.open_subscribers() == 1).await;

    // Events of ~16 KiB each until the subscriber is dropped, at most 20,000 (~320 MB
    // generated in total, never held): its queue (4) and the socket buffers fill first.
    let big = "x".repeat(16 * 1024);
    let mut sent = 0;
    while srv.ops.open_subscribers() > 0 && sent < 20_000 {
        for _ in 0..50 {
            let mut ev = Event::http_request(1, "GET", &format!("/{big}"), Endpoint::Ipxe, 200);
            ev.mac = kindling_model::MacAddr::parse(MAC_STR).ok();
            ev.ip = "127.0.0.1".parse().ok();
            srv.ops.record(ev);
            sent += 1;
        }
        srv.ops.flush();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let o = srv.ops.clone();
    eventually("the stalled subscriber is dropped", || {
        o.open_subscribers() == 0
    })
    .await;
    let (_, _, metrics) = aget(adm, "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    let dropped = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("kindling_events_subscribers_dropped_total{reason=\"overflow\"} ")
        })
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert_eq!(dropped, 1, "{metrics}");
    assert!(
        metrics.contains("kindling_events_subscribers 0"),
        "{metrics}"
    );
    // Its place is free again.
    let (st, _r) = tokio::task::spawn_blocking(move || subscribe(adm))
        .await
        .unwrap();
    assert_eq!(st, 200);
    drop(stalled);
    srv.ops.shutdown();
    srv.cancel.cancel();
}
