//! Full DHCP mode through the real binary: `kindling serve` with `[dhcp] mode = "full"` in a
//! network namespace hands busybox udhcpc (in another namespace) an address; the lease is
//! in `/api/v1/leases`, written to `<state dir>/dhcp-leases`, and still there after the
//! server is killed with SIGKILL and started again; a group whose metadata has `ip` fixes its
//! machine's address, from the start or once a reload brought the group. Both namespaces and the server (by PID)
//! are removed even when the test fails. Needs root; skipped with a message otherwise.

mod common;

use common::netns::{Netns, Proc, admin_get, can_run, have, serve_in};

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const SERVER_IP: &str = "192.168.214.1";
const CLIENT_MAC: &str = "02:4b:14:00:00:02";
/// A machine whose group's metadata fixes its address.
const RESERVED_MAC: &str = "02:4b:14:00:00:03";
/// A machine whose group is written while the server runs.
const LATER_MAC: &str = "02:4b:14:00:00:04";

const CONFIG: &str = "[dhcp]
enabled = true
interfaces = [\"s0\"]
mode = \"full\"
ping_check = false
[[dhcp.subnets]]
network = \"192.168.214.0/24\"
pools = [\"192.168.214.50-192.168.214.60\"]
router = \"192.168.214.1\"
lease_secs = 900
";

fn start_server(ns: &Netns, work: &Path) -> (Proc, PathBuf) {
    for d in ["data/groups", "data/profiles", "state"] {
        std::fs::create_dir_all(work.join(d)).unwrap();
    }
    std::fs::write(
        work.join("data/profiles/p.json"),
        r#"{"id":"p","boot":{"kernel":"/assets/k","initrd":["/assets/i"]}}"#,
    )
    .unwrap();
    std::fs::write(
        work.join("data/groups/web1.json"),
        format!(
            r#"{{"id":"web1","profile":"p","selector":{{"mac":"{RESERVED_MAC}"}},"metadata":{{"ip":"192.168.214.77","hostname":"web1"}}}}"#
        ),
    )
    .unwrap();
    let log = work.join("kindling.log");
    let http = format!("{SERVER_IP}:8080");
    let extra = ["--http-listen", &http, "--admin-listen", "127.0.0.1:8082"];
    (serve_in(ns, work, CONFIG, &extra, &log), log)
}

/// `/api/v1/leases` once the server answers (up to 60 s).
fn leases(ns: &Netns, server: &mut Proc, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(st)) = server.child.try_wait() {
            panic!(
                "kindling exited with {st}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Ok((200, body)) = ns.run(|| admin_get("/api/v1/leases")) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "kindling did not answer: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The address of `mac`'s lease in the `/api/v1/leases` response ("" when it has none).
fn leased_ip(response: &str, mac: &str) -> String {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["leases"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["mac"] == mac)
        .and_then(|l| l["ip"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// busybox udhcpc in `c`: DORA, then quit (-q) with the lease; -n: fail if none.
fn udhcpc(c: &Netns) -> bool {
    c.cmd("busybox")
        .args([
            "udhcpc",
            "-i",
            "c0",
            "-q",
            "-n",
            "-t",
            "10",
            "-s",
            "/bin/true",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn serve_in_full_mode_leases_an_address_and_keeps_it_through_kill_9() {
    if !can_run("serve_in_full_mode_leases_an_address_and_keeps_it_through_kill_9") {
        return;
    }
    if !have("busybox") {
        eprintln!("skipping: busybox missing");
        return;
    }
    let s = Netns::new("s");
    let c = Netns::new("c");
    s.veth("s0", "c0", &c);
    s.ip(&["addr", "add", &format!("{SERVER_IP}/24"), "dev", "s0"]);
    s.ip(&["link", "set", "s0", "up"]);
    c.ip(&["link", "set", "c0", "address", CLIENT_MAC]);
    c.ip(&["link", "set", "c0", "up"]);
    let work = kindling_testkit::tempdir("dhcp-full-serve");
    let (mut server, log) = start_server(&s, work.path());
    assert!(
        !leases(&s, &mut server, &log).contains(CLIENT_MAC),
        "no lease yet"
    );

    assert!(
        udhcpc(&c),
        "udhcpc got no lease: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let body = leases(&s, &mut server, &log);
    assert!(body.contains(CLIENT_MAC), "{body}");
    assert!(body.contains("\"ip\": \"192.168.214.50\""), "{body}");
    assert!(body.contains("\"state\": \"bound\""), "{body}");
    assert!(
        body.contains("\"expires_at\": \"20"),
        "a date, not an epoch: {body}"
    );
    let file = std::fs::read_to_string(work.path().join("state/dhcp-leases")).unwrap();
    assert!(
        file.starts_with("# kindling-leases v1\n")
            && file.contains("192.168.214.50 02:4b:14:00:00:02 bound"),
        "{file}"
    );

    // The machine of group web1 gets the address in its metadata (and its host name).
    c.ip(&["link", "set", "c0", "address", RESERVED_MAC]);
    assert!(udhcpc(&c), "udhcpc got no lease for {RESERVED_MAC}");
    let body = leases(&s, &mut server, &log);
    assert_eq!(leased_ip(&body, RESERVED_MAC), "192.168.214.77", "{body}");

    // A group written while the server runs: once the reload is logged, DHCP knows it.
    std::fs::write(
        work.path().join("data/groups/web2.json"),
        format!(
            r#"{{"id":"web2","profile":"p","selector":{{"mac":"{LATER_MAC}"}},"metadata":{{"ip":"192.168.214.88"}}}}"#
        ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("1 file(s) changed")
    {
        assert!(Instant::now() < deadline, "no reload logged");
        std::thread::sleep(Duration::from_millis(100));
    }
    c.ip(&["link", "set", "c0", "address", LATER_MAC]);
    assert!(udhcpc(&c), "udhcpc got no lease for {LATER_MAC}");
    let body = leases(&s, &mut server, &log);
    assert_eq!(leased_ip(&body, LATER_MAC), "192.168.214.88", "{body}");

    // SIGKILL, start again from the same state directory: the lease is still there.
    let st = std::process::Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    drop(server);
    let (mut server, log) = start_server(&s, work.path());
    let body = leases(&s, &mut server, &log);
    assert!(body.contains(CLIENT_MAC), "after kill -9: {body}");
    assert!(body.contains("\"ip\": \"192.168.214.50\""), "{body}");
    drop(server);
}
