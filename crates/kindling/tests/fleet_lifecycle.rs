//! Machine lifecycle in a fleet: two servers sharing one etcd store (Debian's
//! etcd-server, started by the test on loopback). An install marked done through one
//! server is answered with a local boot by the other, a re-arm through the other is seen
//! by the first, and a machine discovered by one is listed by both.

#![cfg(feature = "etcd")]

mod common;

use std::time::{Duration, Instant};

use common::{Response, Scratch, Server, request};
use kindling_testkit::etcd::EtcdCluster;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const MAC: &str = "52:54:00:00:00:31";

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

fn start(scratch: &Scratch, cluster: &EtcdCluster, prefix: &str) -> Server {
    let data = scratch.root.join("data");
    std::fs::create_dir_all(data.join("assets")).unwrap();
    let token = scratch.root.join("admin.token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let config = format!(
        "[admin]\ntoken_file = \"{}\"\n[store]\nbackend = \"etcd\"\nendpoints = {:?}\nprefix = \"{prefix}\"\n",
        token.display(),
        cluster.endpoints()
    );
    Server::start_with(&data, &scratch.root, &config, &[], |_| {})
}

fn admin(server: &Server, method: &str, path: &str, body: &[u8]) -> Response {
    let auth = [("Authorization".into(), format!("Bearer {TOKEN}"))];
    request(server.admin, method, path, &auth, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn get(server: &Server, path: &str) -> Response {
    request(server.addr, "GET", path, &[], b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn is_install(r: &Response) -> bool {
    r.status == 200 && text(r).contains("kernel /assets/installer/vmlinuz")
}

fn is_local(r: &Response) -> bool {
    r.status == 200 && text(r).starts_with("#!ipxe\necho Kindling: ") && !text(r).contains("kernel")
}

/// Polls `what` on `server` until `ok` (60 s at most: the other server learns through
/// etcd's watch).
fn eventually(server: &Server, path: &str, what: &str, ok: impl Fn(&Response) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = get(server, path);
        if ok(&r) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {path} answered {} {}\n{}",
            r.status,
            text(&r),
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn put(server: &Server, path: &str, body: &str) {
    let r = admin(server, "PUT", path, body.as_bytes());
    assert!(
        r.status == 200 || r.status == 201,
        "{path}: {} {}",
        r.status,
        text(&r)
    );
}

#[test]
fn install_state_set_through_one_server_is_honoured_by_the_other() {
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    let prefix = "/fleet-lifecycle/";
    let (sa, sb) = (Scratch::new("fleet-a"), Scratch::new("fleet-b"));
    let a = start(&sa, &cluster, prefix);
    let b = start(&sb, &cluster, prefix);

    put(
        &a,
        "/api/v1/profiles/installer",
        r#"{"id":"installer","boot":{"kernel":"/assets/installer/vmlinuz","args":["x"]},"install_once":{"done":"operator"}}"#,
    );
    put(
        &a,
        "/api/v1/groups/n31",
        &format!(r#"{{"id":"n31","profile":"installer","selector":{{"mac":"{MAC}"}}}}"#),
    );
    let ipxe = format!("/ipxe?mac={MAC}");
    assert!(is_install(&get(&a, &ipxe)));
    eventually(&b, &ipxe, "B serves the install", is_install);

    // Marked installed through A: B answers a local boot.
    let r = admin(
        &a,
        "POST",
        &format!("/api/v1/lifecycle/{MAC}/installed"),
        b"",
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(is_local(&get(&a, &ipxe)), "{}", text(&get(&a, &ipxe)));
    eventually(&b, &ipxe, "B answers the local boot", is_local);
    assert!(
        cluster
            .get(&format!("{prefix}machines/52-54-00-00-00-31.json"))
            .is_some_and(|v| String::from_utf8_lossy(&v).contains("operator")),
        "the record is in etcd"
    );

    // Re-armed through B: A installs again.
    let r = admin(
        &b,
        "POST",
        &format!("/api/v1/lifecycle/{MAC}/reinstall"),
        b"",
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(is_install(&get(&b, &ipxe)));
    eventually(&a, &ipxe, "A installs again", is_install);

    // Timelines stay per server; `kindling machines --server A,B` merges them.
    let token = sa.root.join("admin.token");
    let show = |servers: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"))
            .args([
                "machines",
                "show",
                MAC,
                "--json",
                "--server",
                servers,
                "--token-file",
            ])
            .arg(&token)
            .env_remove("KINDLING_SERVER")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["timeline"].as_array().unwrap().len()
    };
    let (only_a, only_b) = (
        show(&format!("http://{}", a.admin)),
        show(&format!("http://{}", b.admin)),
    );
    let both = show(&format!("http://{},http://{}", a.admin, b.admin));
    assert!(only_a >= 1 && only_b >= 1, "{only_a} {only_b}");
    assert_eq!(both, only_a + only_b);

    // A machine no group selects, seen by A, is listed as discovered by B.
    let unknown = "52:54:00:00:00:99";
    assert_eq!(get(&a, &format!("/ipxe?mac={unknown}")).status, 404);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = admin(&b, "GET", "/api/v1/lifecycle", b"");
        if text(&r).contains(unknown) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never listed {unknown}: {}",
            text(&r)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_template_written_through_a_server_is_served_by_it_at_once() {
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    let sa = Scratch::new("fleet-template");
    let a = start(&sa, &cluster, "/fleet-template/");
    put(
        &a,
        "/api/v1/profiles/p",
        r#"{"id":"p","ignition_id":"n.ign","boot":{"kernel":"/assets/k"}}"#,
    );
    put(
        &a,
        "/api/v1/groups/n",
        r#"{"id":"n","profile":"p","selector":{"mac":"52:54:00:00:00:32"}}"#,
    );
    for version in ["3.3.0", "3.4.0"] {
        let body = format!(r#"{{"ignition":{{"version":"{version}"}}}}"#);
        put(&a, "/api/v1/ignition/n.ign", &body);
        // The write returned: this server's snapshot holds it (no polling).
        let r = get(&a, "/ignition?mac=52:54:00:00:00:32");
        assert_eq!(r.status, 200, "{}", text(&r));
        assert!(text(&r).contains(version), "{}", text(&r));
    }
}
