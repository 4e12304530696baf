//! Fedora CoreOS tracking in a fleet: two servers sharing one etcd store, one fixture
//! stream (signed with a throwaway key). Only the server that holds the `fcos` election
//! tracks the stream; the profile it switches to is written to the shared store and served
//! by both; when the leader dies, the other takes over.

#![cfg(feature = "etcd")]

mod common;

#[allow(unused_imports)]
#[path = "../../kindling-fcos/tests/common/mod.rs"]
mod fixture;

use std::time::{Duration, Instant};

use common::{Scratch, Server, request};
use fixture::{Fixture, Release, TestKey, publish};
use kindling_testkit::etcd::EtcdCluster;

fn start(
    scratch: &Scratch,
    cluster: &EtcdCluster,
    fx: &Fixture,
    keyring: &std::path::Path,
) -> Server {
    let data = scratch.root.join("data");
    std::fs::create_dir_all(data.join("assets")).unwrap();
    let config = format!(
        "[store]\nbackend = \"etcd\"\nendpoints = {:?}\nprefix = \"/fleet-fcos/\"\n\
         [fcos]\nstreams = [\"stable\"]\nbase_url = \"{}\"\nkeyring = \"{}\"\n\
         server_url = \"http://10.0.2.2:8080\"\ninterval_secs = 2\n",
        cluster.endpoints(),
        fx.base_url(),
        keyring.display()
    );
    Server::start_with(&data, &scratch.root, &config, &[], |_| {})
}

/// Whether `/metrics` says this server leads the `fcos` election.
fn leads(server: &Server) -> bool {
    request(server.admin, "GET", "/metrics", &[], b"")
        .map(|r| {
            String::from_utf8_lossy(&r.body).contains("kindling_store_leader{election=\"fcos\"} 1")
        })
        .unwrap_or(false)
}

fn until(what: &str, servers: &[&Server], ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !ok() {
        if Instant::now() > deadline {
            let logs: Vec<String> = servers.iter().map(|s| s.log_text()).collect();
            panic!("{what}: not within 90 s\n{}", logs.join("\n-----\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn one_server_tracks_the_stream_and_both_serve_its_profile() {
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    let fx = Fixture::start();
    let key = TestKey::generate("Fedora CoreOS test key <test@kindling.invalid>");
    let (sa, sb) = (Scratch::new("fleet-fcos-a"), Scratch::new("fleet-fcos-b"));
    let keyring = key.write_keyring(&sa.root.join("keys"));
    let rel = Release::new("43.20261101.3.0", 10_000);
    publish(&fx, &rel, &key);
    cluster.put(
        "/fleet-fcos/groups/fcos.json",
        br#"{"id":"fcos","profile":"fedora-coreos-stable"}"#,
    );

    let a = start(&sa, &cluster, &fx, &keyring);
    let b = start(&sb, &cluster, &fx, &keyring);
    until("one of them leads", &[&a, &b], || leads(&a) || leads(&b));
    assert!(!(leads(&a) && leads(&b)), "both lead");
    // The leader's profile reaches etcd, and both serve it.
    until("the profile is in etcd", &[&a, &b], || {
        cluster
            .get("/fleet-fcos/profiles/fedora-coreos-stable.json")
            .is_some()
    });
    let kernel = format!(
        "/assets/fedora-coreos/stable/{}/{}",
        rel.release, rel.kernel.0
    );
    for s in [&a, &b] {
        until("the profile is served", &[&a, &b], || {
            request(s.addr, "GET", "/ipxe?mac=52:54:00:00:00:01", &[], b"").is_ok_and(|r| {
                r.status == 200 && String::from_utf8_lossy(&r.body).contains(&kernel)
            })
        });
    }
    // Only the leader fetched the stream.
    let (leader, follower, follower_scratch) = if leads(&a) { (a, b, &sb) } else { (b, a, &sa) };
    assert!(
        !follower_scratch
            .root
            .join("data/assets/fedora-coreos/stable")
            .join(&rel.release)
            .exists(),
        "the follower downloaded the release"
    );
    // The leader dies (SIGKILL, no resignation): after its lease expires the other leads.
    drop(leader);
    until("the follower takes over", &[&follower], || leads(&follower));
}
