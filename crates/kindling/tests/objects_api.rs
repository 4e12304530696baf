//! The REST objects API on the admin listener (`/api/v1/{groups,profiles,ignition,
//! generic}`): ETags and preconditions, the loader's own checks before anything is
//! written, credentials required, and writes that survive SIGKILL whole. The real binary
//! on loopback.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{Response, Scratch, Server, request};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn data_dir(root: &Path) {
    for d in ["groups", "profiles", "ignition", "generic", "assets"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
}

fn start(scratch: &Scratch, extra_config: &str) -> Server {
    let data = scratch.root.join("data");
    data_dir(&data);
    let token = scratch.root.join("admin.token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let config = format!(
        "[admin]\ntoken_file = \"{}\"\nmax_connections_per_client = 64\n{extra_config}",
        token.display()
    );
    Server::start_with(&data, &scratch.root, &config, &[], |_| {})
}

fn call(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut h: Vec<(String, String)> = vec![("Authorization".into(), format!("Bearer {TOKEN}"))];
    h.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    request(server.admin, method, path, &h, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

fn etag(r: &Response) -> String {
    r.header("etag")
        .unwrap()
        .unwrap_or_else(|| panic!("no ETag: {}", text(r)))
        .to_string()
}

const PROFILE: &str = r#"{"id":"worker","boot":{"kernel":"/assets/k","initrd":["/assets/i"],"args":["console=ttyS0"]}}"#;

fn group(id: &str, mac: &str, note: &str) -> String {
    format!(
        r#"{{"id":"{id}","profile":"worker","selector":{{"mac":"{mac}"}},"metadata":{{"note":"{note}"}}}}"#
    )
}

fn put_profile(server: &Server) {
    let r = call(
        server,
        "PUT",
        "/api/v1/profiles/worker",
        &[],
        PROFILE.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
}

#[test]
fn etags_preconditions_and_the_loaders_checks() {
    let scratch = Scratch::new("objects-api");
    let server = start(&scratch, "");
    put_profile(&server);
    let v1 = group("node1", "52:54:00:00:00:01", "first");
    let r = call(
        &server,
        "PUT",
        "/api/v1/groups/node1",
        &[("If-None-Match", "*")],
        v1.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let t1 = etag(&r);
    // Served at once: the write returned after the snapshot held it.
    let ipxe = request(server.addr, "GET", "/ipxe?mac=52:54:00:00:00:01", &[], b"").unwrap();
    assert_eq!(ipxe.status, 200);
    assert!(String::from_utf8_lossy(&ipxe.body).contains("kernel /assets/k"));
    // Read back with the same tag.
    let r = call(&server, "GET", "/api/v1/groups/node1", &[], b"");
    assert_eq!((r.status, etag(&r)), (200, t1.clone()));
    assert_eq!(r.body, v1.as_bytes());
    // Create-only again: refused, with the current tag.
    let r = call(
        &server,
        "PUT",
        "/api/v1/groups/node1",
        &[("If-None-Match", "*")],
        v1.as_bytes(),
    );
    assert_eq!((r.status, etag(&r)), (412, t1.clone()), "{}", text(&r));
    // Two editors read t1; the first write wins, the second is refused, nothing lost.
    let v2 = group("node1", "52:54:00:00:00:01", "second");
    let v3 = group("node1", "52:54:00:00:00:01", "third");
    let r = call(
        &server,
        "PUT",
        "/api/v1/groups/node1",
        &[("If-Match", &t1)],
        v2.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let t2 = etag(&r);
    assert_ne!(t1, t2);
    let r = call(
        &server,
        "PUT",
        "/api/v1/groups/node1",
        &[("If-Match", &t1)],
        v3.as_bytes(),
    );
    assert_eq!((r.status, etag(&r)), (412, t2.clone()), "{}", text(&r));
    let on_disk = std::fs::read_to_string(scratch.root.join("data/groups/node1.json")).unwrap();
    assert_eq!(on_disk, v2);
    // What the loader would refuse is refused with its reason, and not written.
    let r = call(
        &server,
        "PUT",
        "/api/v1/groups/broken",
        &[],
        b"{\"id\": \"broken\",\n  \"profile\": }",
    );
    assert_eq!(r.status, 400, "{}", text(&r));
    assert!(text(&r).contains("line 2"), "{}", text(&r));
    let r = call(
        &server,
        "PUT",
        "/api/v1/groups/badmac",
        &[],
        group("badmac", "52:54:zz", "x").as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", text(&r));
    assert!(text(&r).contains("mac"), "{}", text(&r));
    let r = call(&server, "PUT", "/api/v1/groups/other", &[], v1.as_bytes());
    assert_eq!(
        r.status,
        400,
        "the body's id is not the path's: {}",
        text(&r)
    );
    // A name that climbs is cleaned into another path (a redirect) or refused.
    let r = call(
        &server,
        "PUT",
        "/api/v1/ignition/..%2Fprofiles%2Fevil.json",
        &[],
        b"{}",
    );
    assert!(
        matches!(r.status, 301 | 400 | 404),
        "{} {}",
        r.status,
        text(&r)
    );
    let r = call(&server, "PUT", "/api/v1/ignition/.hidden", &[], b"{}");
    assert_eq!(r.status, 400, "{}", text(&r));
    for f in ["broken.json", "badmac.json", "other.json"] {
        assert!(
            !scratch.root.join("data/groups").join(f).exists(),
            "{f} was written"
        );
    }
    assert!(!scratch.root.join("data/profiles/evil.json").exists());
    assert!(
        !text(&r).contains(&*scratch.root.to_string_lossy()),
        "a server path in {}",
        text(&r)
    );
    // Templates as they are; lists.
    let butane = b"variant: fcos\nversion: 1.5.0\n";
    let r = call(&server, "PUT", "/api/v1/ignition/node.yaml", &[], butane);
    assert_eq!(r.status, 201, "{}", text(&r));
    let r = call(&server, "GET", "/api/v1/ignition/node.yaml", &[], b"");
    assert_eq!(r.body, butane);
    let r = call(&server, "GET", "/api/v1/groups", &[], b"");
    assert_eq!(text(&r).trim(), r#"["node1"]"#);
    // Deletes: a stale tag is refused; then gone; then 404.
    let r = call(
        &server,
        "DELETE",
        "/api/v1/groups/node1",
        &[("If-Match", &t1)],
        b"",
    );
    assert_eq!(r.status, 412, "{}", text(&r));
    let r = call(
        &server,
        "DELETE",
        "/api/v1/groups/node1",
        &[("If-Match", &t2)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let r = call(&server, "DELETE", "/api/v1/groups/node1", &[], b"");
    assert_eq!(r.status, 404, "{}", text(&r));
    let ipxe = request(server.addr, "GET", "/ipxe?mac=52:54:00:00:00:01", &[], b"").unwrap();
    assert_eq!(ipxe.status, 404);
    // Credentials: none, a wrong one.
    let r = request(server.admin, "GET", "/api/v1/groups", &[], b"").unwrap();
    assert_eq!(r.status, 401);
    let wrong = vec![(
        "Authorization".to_string(),
        "Bearer nope-nope-nope-nope".to_string(),
    )];
    let r = request(
        server.admin,
        "PUT",
        "/api/v1/groups/x",
        &wrong,
        group("x", "52:54:00:00:00:09", "x").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert!(!scratch.root.join("data/groups/x.json").exists());
    // Not on the boot listener.
    let r = request(server.addr, "GET", "/api/v1/groups", &[], b"").unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn without_admin_credentials_the_objects_api_refuses_everything() {
    let scratch = Scratch::new("objects-api-open");
    let data = scratch.root.join("data");
    data_dir(&data);
    let server = Server::start(&data, &scratch.root);
    let r = request(server.admin, "GET", "/api/v1/groups", &[], b"").unwrap();
    assert_eq!(r.status, 403, "{}", text(&r));
    let r = request(
        server.admin,
        "PUT",
        "/api/v1/groups/g",
        &[],
        group("g", "52:54:00:00:00:01", "x").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 403, "{}", text(&r));
    assert!(!data.join("groups/g.json").exists());
    // The read-only operator endpoints stay open on loopback.
    let r = request(server.admin, "GET", "/api/v1/machines", &[], b"").unwrap();
    assert_eq!(r.status, 200);
}

/// 1,000 concurrent writes (32 writers), the server killed with SIGKILL once half were
/// acknowledged: every file left is whole (parses as a group), and every acknowledged
/// write is on disk with the bytes that were acknowledged.
#[test]
fn sigkill_during_1000_concurrent_writes_leaves_no_partial_file_and_loses_no_acknowledged_write() {
    const WRITES: usize = 1000;
    const WRITERS: usize = 32;
    let scratch = Scratch::new("objects-api-kill");
    let mut server = start(&scratch, "");
    put_profile(&server);
    let next = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let (admin, pid) = (server.admin, server.pid());
    // Bodies of a few KiB, so that a write is more than one page.
    let padding = "x".repeat(6000);
    let threads: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (next, acked, padding) = (next.clone(), acked.clone(), padding.clone());
            std::thread::spawn(move || {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= WRITES {
                        return;
                    }
                    let id = format!("g{n:04}");
                    let body = group(
                        &id,
                        &format!("52:54:00:00:{:02x}:{:02x}", n / 256, n % 256),
                        &padding,
                    );
                    let h = vec![("Authorization".to_string(), format!("Bearer {TOKEN}"))];
                    // After the kill, requests fail: those writes were never acknowledged.
                    if let Ok(r) = request(
                        admin,
                        "PUT",
                        &format!("/api/v1/groups/{id}"),
                        &h,
                        body.as_bytes(),
                    ) && r.status == 201
                    {
                        acked.lock().unwrap().insert(id, body);
                    }
                }
            })
        })
        .collect();
    // Kill once half the writes are acknowledged (a count, not a time).
    // If the server failed, the writers run out of writes first: then the assertion
    // below fails instead of this loop waiting forever.
    while acked.lock().unwrap().len() < WRITES / 2 && !threads.iter().all(|t| t.is_finished()) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(
        acked.lock().unwrap().len() >= WRITES / 2,
        "the writers finished with only {} writes acknowledged: {}",
        acked.lock().unwrap().len(),
        server.log_text()
    );
    // SAFETY: kill(2) on the child's pid, which this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    for t in threads {
        t.join().unwrap();
    }
    server.wait_exit();
    let acked = acked.lock().unwrap().clone();
    let groups = scratch.root.join("data/groups");
    let (mut whole, mut temporaries) = (0, 0);
    for e in std::fs::read_dir(&groups).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        if name.starts_with('.') {
            // An interrupted write's temporary file: never read by the loader.
            assert!(name.ends_with(".tmp"), "{name}");
            temporaries += 1;
            continue;
        }
        let id = name.strip_suffix(".json").unwrap();
        kindling_model::Group::parse(id, &bytes)
            .unwrap_or_else(|e| panic!("{name} is not a whole group ({} bytes): {e}", bytes.len()));
        whole += 1;
    }
    let mut lost = Vec::new();
    for (id, body) in &acked {
        match std::fs::read(groups.join(format!("{id}.json"))) {
            Ok(b) if b == body.as_bytes() => {}
            _ => lost.push(id.clone()),
        }
    }
    println!(
        "SIGKILL after {} of {WRITES} writes acknowledged: {whole} whole files, 0 partial, {temporaries} temporary files left, {} acknowledged writes missing",
        acked.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged writes missing: {lost:?}");
    assert!(acked.len() >= WRITES / 2);
    // A restarted server sweeps the temporaries and loads every whole file.
    let data = scratch.root.join("data");
    drop(server);
    let again = start_on(&scratch, &data);
    for id in acked.keys().take(20) {
        let r = call(&again, "GET", &format!("/api/v1/groups/{id}"), &[], b"");
        assert_eq!(r.status, 200, "{id}");
    }
    let left: Vec<_> = std::fs::read_dir(&groups)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporary files not swept: {left:?}");
}

fn start_on(scratch: &Scratch, data: &Path) -> Server {
    let token = scratch.root.join("admin.token");
    let config = format!("[admin]\ntoken_file = \"{}\"\n", token.display());
    Server::start_with(data, &scratch.root, &config, &[], |_| {})
}

fn kindling(args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut c = Command::new(env!("CARGO_BIN_EXE_kindling"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KINDLING_") {
            c.env_remove(k);
        }
    }
    let mut child = c
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

#[test]
fn object_commands_through_the_server_and_directly() {
    let scratch = Scratch::new("objects-cli");
    let server = start(&scratch, "");
    let admin = format!("http://{}", server.admin);
    let token = scratch.root.join("admin.token");
    let remote = |extra: &[&str], stdin: &[u8]| {
        let mut a = vec![
            extra[0],
            "--server",
            &admin,
            "--token-file",
            token.to_str().unwrap(),
        ];
        a.extend_from_slice(&extra[1..]);
        kindling(&a, stdin)
    };
    let (ok, tag, err) = remote(&["profile", "put", "worker"], PROFILE.as_bytes());
    assert!(ok, "{err}");
    assert!(err.contains("created profile worker"), "{err}");
    let g = group("node7", "52:54:00:00:00:07", "cli");
    let (ok, tag1, err) = remote(&["group", "put", "node7", "--create"], g.as_bytes());
    assert!(ok, "{err}");
    assert_ne!(tag.trim(), tag1.trim());
    // --create again: refused by the server.
    let (ok, _, err) = remote(&["group", "put", "node7", "--create"], g.as_bytes());
    assert!(!ok && err.contains("412"), "{err}");
    let (ok, out, _) = remote(&["group", "ls"], b"");
    assert!(ok);
    assert_eq!(out, "node7\n");
    let (ok, out, err) = remote(&["group", "get", "node7"], b"");
    assert!(ok);
    assert_eq!(out, g);
    assert!(err.contains(tag1.trim()), "{err}");
    let ipxe = request(server.addr, "GET", "/ipxe?mac=52:54:00:00:00:07", &[], b"").unwrap();
    assert_eq!(ipxe.status, 200);
    // A wrong token, a stale tag.
    let bad = scratch.root.join("bad.token");
    std::fs::write(&bad, "ffffffffffffffffffffffffffffffff\n").unwrap();
    let (ok, _, err) = kindling(
        &[
            "group",
            "--server",
            &admin,
            "--token-file",
            bad.to_str().unwrap(),
            "ls",
        ],
        b"",
    );
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = remote(&["group", "rm", "node7", "--if-match", tag.trim()], b"");
    assert!(!ok && err.contains("412"), "{err}");
    let (ok, _, err) = remote(&["group", "rm", "node7", "--if-match", tag1.trim()], b"");
    assert!(ok, "{err}");
    // Directly in the data directory (no server): the same checks.
    let data = scratch.root.join("data");
    let d = data.to_str().unwrap();
    let (ok, _, err) = kindling(
        &["--data-dir", d, "ignition", "put", "node.ign"],
        b"{\"ignition\":{\"version\":\"3.4.0\"}}",
    );
    assert!(ok, "{err}");
    assert!(data.join("ignition/node.ign").exists());
    let (ok, _, err) = kindling(
        &["--data-dir", d, "group", "put", "bad"],
        b"{\"id\":\"bad\",\"profile\":\"p\",\"selector\":{\"mac\":\"nope\"}}",
    );
    assert!(!ok && err.contains("mac"), "{err}");
    assert!(!data.join("groups/bad.json").exists());
    let (ok, out, _) = kindling(&["--data-dir", d, "ignition", "ls"], b"");
    assert!(ok);
    assert_eq!(out, "node.ign\n");
    let (ok, _, err) = kindling(&["--data-dir", d, "ignition", "rm", "node.ign"], b"");
    assert!(ok, "{err}");
    let (ok, _, err) = kindling(&["--data-dir", d, "ignition", "rm", "node.ign"], b"");
    assert!(!ok && err.contains("not found"), "{err}");
}
