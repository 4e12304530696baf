//! Opt-in Ignition binding (`[http] ignition_binding = true`): `/ignition?mac=` is answered
//! only to the address that MAC boots from. The real binary runs inside one network
//! namespace, the client inside another with a known MAC, joined by a veth pair; both
//! namespaces are made by the test and removed (with the server, by PID) even when it fails.
//! Needs root; skipped with a message otherwise.

mod common;

use common::netns::{Netns, Proc, can_run, http_get, serve_in};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SERVER_IP: &str = "192.168.213.1";
const CLIENT_IP: &str = "192.168.213.2";
const CLIENT_MAC: &str = "02:4b:13:00:00:02";
const OTHER_MAC: &str = "02:4b:13:00:00:99";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

struct Lab {
    server_ns: Netns,
    client_ns: Netns,
}

fn lab() -> Lab {
    let s = Netns::new("s");
    let c = Netns::new("c");
    s.veth("s0", "c0", &c);
    s.ip(&["addr", "add", &format!("{SERVER_IP}/24"), "dev", "s0"]);
    s.ip(&["link", "set", "s0", "up"]);
    c.ip(&["link", "set", "c0", "address", CLIENT_MAC]);
    c.ip(&["addr", "add", &format!("{CLIENT_IP}/24"), "dev", "c0"]);
    c.ip(&["link", "set", "c0", "up"]);
    Lab {
        server_ns: s,
        client_ns: c,
    }
}

/// A data directory where every MAC gets the same Ignition (a default group).
fn data_dir(root: &Path) {
    for d in ["groups", "profiles", "ignition", "assets"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("groups/default.json"),
        r#"{"id":"default","profile":"p"}"#,
    )
    .unwrap();
    std::fs::write(
        root.join("profiles/p.json"),
        r#"{"id":"p","ignition_id":"node.ign"}"#,
    )
    .unwrap();
    std::fs::write(
        root.join("ignition/node.ign"),
        r#"{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core"}]}}"#,
    )
    .unwrap();
}

fn start_server(lab: &Lab, work: &Path, config: &str) -> (Proc, PathBuf) {
    let data = work.join("data");
    data_dir(&data);
    let log = work.join(format!(
        "kindling-{}.log",
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let http = format!("{SERVER_IP}:8080");
    let extra = ["--http-listen", &http, "--admin-listen", ""];
    (serve_in(&lab.server_ns, work, config, &extra, &log), log)
}

fn get(path: &str) -> Result<(u16, String), String> {
    http_get(format!("{SERVER_IP}:8080").parse().unwrap(), path)
}

fn wait_up(child: &mut Proc, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(st)) = child.child.try_wait() {
            panic!(
                "kindling exited with {st}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if matches!(get("/"), Ok((200, _))) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "kindling did not answer: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ignition_is_answered_only_to_the_address_the_mac_boots_from() {
    if !can_run("ignition_is_answered_only_to_the_address_the_mac_boots_from") {
        return;
    }
    let lab = lab();
    let work = kindling_testkit::tempdir("binding-on");
    let (mut server, log) = start_server(&lab, work.path(), "[http]\nignition_binding = true\n");
    let (own, other, dashes) = lab.client_ns.run(|| {
        wait_up(&mut server, &log);
        (
            get(&format!("/ignition?mac={CLIENT_MAC}")),
            get(&format!("/ignition?mac={OTHER_MAC}")),
            get(&format!("/ignition?mac={}", CLIENT_MAC.replace(':', "-"))),
        )
    });
    let (st, body) = own.unwrap();
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"users\""), "{body}");
    let (st, body) = other.unwrap();
    assert_eq!(st, 403, "{body}");
    assert!(!body.contains("\"users\""), "{body}");
    assert_eq!(dashes.unwrap().0, 200, "any MAC spelling of its own MAC");
    // The log is written by a background thread: wait for the line (bounded), never
    // assume it is already there.
    let want = format!("{CLIENT_IP} is {CLIENT_MAC} in the neighbour table, not {OTHER_MAC}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut text = String::new();
    while std::time::Instant::now() < deadline {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(&want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(text.contains(&want), "the reason is logged: {text}");
    drop(server);
}

#[test]
fn without_binding_every_mac_is_answered() {
    if !can_run("without_binding_every_mac_is_answered") {
        return;
    }
    let lab = lab();
    let work = kindling_testkit::tempdir("binding-off");
    let (mut server, log) = start_server(&lab, work.path(), "");
    let (own, other) = lab.client_ns.run(|| {
        wait_up(&mut server, &log);
        (
            get(&format!("/ignition?mac={CLIENT_MAC}")),
            get(&format!("/ignition?mac={OTHER_MAC}")),
        )
    });
    assert_eq!(own.unwrap().0, 200);
    assert_eq!(other.unwrap().0, 200, "matchbox-compatible by default");
    drop(server);
}
