//! Admission limits over real sockets on loopback: the per-address request rate limit,
//! the per-address transfer limit, and eviction of idle transfers for a new client.

mod common;

use std::time::{Duration, Instant};

use common::{Raw, Server, TempDir, config, pattern, tempdir, wait_for, wait_for_within};
use kindling_tftp::packet::Packet;

fn root() -> TempDir {
    let top = tempdir("tftp-limits");
    std::fs::write(top.path().join("ok.txt"), b"hello").unwrap();
    std::fs::write(top.path().join("big"), pattern(1_000_000, 4)).unwrap();
    top
}

/// A flood of RRQs from one address with a bucket of 10 and 1 per second: at most 10
/// plus one per second of the test are answered, the rest are dropped unanswered and
/// counted; another address is still served. The flood is sent in batches of 10, each
/// once the server has counted the previous one (a datagram the kernel drops on a busy
/// machine is tolerated: the wait is bounded), until 300 were dropped by the limit.
#[test]
fn request_flood_from_one_address_is_dropped_beyond_the_bucket() {
    let top = root();
    let mut c = config(top.path());
    c.rate_limit = 1.0;
    c.rate_burst = 10;
    let srv = Server::start(c);
    let started = Instant::now();
    let flood = Raw::bound("127.0.0.1:0", srv.addr);
    let mut sent = 0u64;
    let st = loop {
        for _ in 0..10 {
            flood.rrq("nope", &[]);
        }
        sent += 10;
        let st = wait_for_within(&srv, Duration::from_secs(2), |s| {
            s.requests + s.rate_limited >= sent
        });
        if st.rate_limited >= 300 || sent >= 5_000 {
            break st;
        }
    };
    assert!(st.rate_limited >= 300, "{st:?} after {sent} sent");
    // Every datagram sent has been counted (a bounded wait: one the kernel dropped never
    // is) and every request the server took has been refused (ERROR 1, or "too many
    // transfers" while the address held 8 slots; counted before the ERROR is sent);
    // then that many answers arrive, each within the read timeout, and not one more:
    // dropped requests get nothing.
    let st = wait_for(&srv, |s| {
        s.requests + s.rate_limited >= sent && s.not_found + s.client_limit >= s.requests
    });
    assert_eq!(st.not_found + st.client_limit, st.requests, "{st:?}");
    let elapsed = started.elapsed().as_secs();
    assert!(st.requests <= 10 + elapsed + 1, "{st:?} in {elapsed} s");
    let mut answers = 0;
    while answers < st.requests && flood.recv().is_some() {
        answers += 1;
    }
    assert_eq!(answers, st.requests, "{st:?}");
    flood.set_timeout(Duration::from_millis(300));
    assert!(flood.recv().is_none(), "{:?}", srv.stats.snapshot());
    // Another address is served.
    let other = Raw::bound("127.0.0.2:0", srv.addr);
    assert_eq!(other.get("ok.txt").unwrap(), b"hello");
}

/// The ninth transfer from one address is refused (default max_transfers_per_client = 8).
#[test]
fn transfers_per_address_are_limited() {
    let top = root();
    let srv = Server::start(config(top.path()));
    let hog = Raw::bound("127.0.0.1:0", srv.addr);
    for _ in 0..8 {
        hog.rrq("big", &[]);
        assert!(matches!(
            hog.recv().unwrap().0,
            Packet::Data { block: 1, .. }
        ));
    }
    hog.rrq("big", &[]);
    // The next answer to the hog is the refusal (or a retransmitted DATA 1 first).
    let refusal = (0..50).find_map(|_| match hog.recv() {
        Some((Packet::Error { message, .. }, _)) => Some(message),
        _ => None,
    });
    assert_eq!(
        refusal.as_deref(),
        Some("Too many transfers from your address, try again later")
    );
    assert_eq!(srv.stats.snapshot().client_limit, 1);
    let other = Raw::bound("127.0.0.2:0", srv.addr);
    assert_eq!(other.get("ok.txt").unwrap(), b"hello");
}

/// The server is full of one address's transfers that are never acknowledged (the
/// per-address limit raised to allow it): a new address evicts one and is served
/// within 20 s (its requests dropped until a transfer has idled 1 s); the evicted client
/// is told so.
#[test]
fn a_full_server_evicts_an_idle_transfer_for_a_new_address() {
    let top = root();
    let mut c = config(top.path());
    c.max_transfers = 16;
    c.max_transfers_per_client = 64;
    let srv = Server::start(c);
    let hog = Raw::bound("127.0.0.1:0", srv.addr);
    for _ in 0..16 {
        hog.rrq("big", &[("timeout", "255")]);
    }
    let st = wait_for(&srv, |s| s.requests >= 16);
    assert_eq!(st.requests, 16, "{st:?}");
    let newcomer = Raw::bound("127.0.0.2:0", srv.addr);
    let until = Instant::now() + Duration::from_secs(20);
    let mut got = None;
    while got.is_none() && Instant::now() < until {
        match newcomer.get("ok.txt") {
            Ok(b) => got = Some(b),
            // Not evictable yet: the request is dropped (no ERROR), as firmware retries.
            Err((_, msg)) => assert_eq!(msg, "no answer"),
        }
    }
    assert_eq!(got.as_deref(), Some(&b"hello"[..]));
    let st = srv.stats.snapshot();
    assert!(st.evicted >= 1, "{st:?}");
    // The evicted transfer told its client.
    hog.set_timeout(Duration::from_secs(3));
    let told = (0..500).find_map(|_| match hog.recv() {
        Some((Packet::Error { message, .. }, _)) => Some(message),
        Some(_) => None,
        None => Some(String::new()),
    });
    assert_eq!(told.as_deref(), Some("Server busy, transfer stopped"));
    let st = srv.settled(2);
    assert!(st.transfers_failed >= 1, "{st:?}");
}
