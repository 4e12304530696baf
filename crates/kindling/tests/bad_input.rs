//! Bad input (issue 2): traversal attempts never return a byte from outside
//! the data directory, oversized requests get 4xx, malformed JSON is reported
//! with file, line and column.

mod support;

use std::os::unix::fs::symlink;

use kindling_testkit::TempDir;
use support::{Server, layout, request};

const SECRET: &str = "KINDLING-SECRET-7f3a9c";

fn setup() -> (TempDir, Server) {
    let tmp = kindling_testkit::tempdir("bad-input");
    let root = tmp.path();
    std::fs::write(root.join("secret"), SECRET).unwrap();
    std::fs::create_dir_all(root.join("outside")).unwrap();
    std::fs::write(root.join("outside/secret"), SECRET).unwrap();
    let data = root.join("data");
    layout(&data);
    std::fs::write(data.join("assets/kernel"), "kernel bytes").unwrap();
    std::fs::create_dir_all(data.join("assets/sub")).unwrap();
    symlink(root.join("secret"), data.join("assets/link-out")).unwrap();
    symlink(root.join("outside"), data.join("assets/dir-out")).unwrap();
    symlink(root.join("secret"), data.join("ignition/link-out.ign")).unwrap();
    symlink(root.join("secret"), data.join("generic/link-out")).unwrap();
    // Profiles whose file ids try to climb out.
    let evil = [
        ("esc-ign", r#""ignition_id":"../../secret""#),
        ("esc-ign-abs", r#""ignition_id":"/../../../secret""#),
        ("esc-ign-link", r#""ignition_id":"link-out.ign""#),
        ("esc-ign-enc", r#""ignition_id":"..%2f..%2fsecret""#),
        ("esc-gen", r#""generic_id":"../../outside/secret""#),
        ("esc-gen-link", r#""generic_id":"link-out""#),
        ("esc-cloud", r#""cloud_id":"../../../../../../secret""#),
        ("esc-ign-nul", r#""ignition_id":"x\u0000/../../secret""#),
    ];
    for (id, field) in evil {
        std::fs::write(
            data.join(format!("profiles/{id}.json")),
            format!(r#"{{"id":"{id}","boot":{{"kernel":"/k"}},{field}}}"#),
        )
        .unwrap();
        std::fs::write(
            data.join(format!("groups/{id}.json")),
            format!(r#"{{"id":"{id}","profile":"{id}","selector":{{"case":"{id}"}}}}"#),
        )
        .unwrap();
    }
    for (id, profile) in [
        ("esc-prof", "../../secret"),
        ("esc-prof2", "../../../outside/secret"),
        ("esc-prof3", "/etc/passwd"),
    ] {
        std::fs::write(
            data.join(format!("groups/{id}.json")),
            format!(r#"{{"id":"{id}","profile":"{profile}","selector":{{"case":"{id}"}}}}"#),
        )
        .unwrap();
    }
    let server = Server::start(&data, &[]);
    (tmp, server)
}

/// Follows up to 5 redirects the way a client would.
fn fetch(server: &Server, path: &str) -> support::Response {
    let mut target = path.to_string();
    for _ in 0..5 {
        let r = request(server.port, "GET", &target, &[]);
        if r.status == 301 {
            let loc = r.header("location").unwrap().to_string();
            target = if loc.starts_with('/') {
                loc
            } else {
                let base = &target[..target.rfind('/').unwrap() + 1];
                format!("{base}{loc}")
            };
            continue;
        }
        return r;
    }
    panic!("redirect loop for {path}");
}

#[test]
fn traversal_never_leaks() {
    let (_tmp, server) = setup();
    let attempts = [
        "/assets/../secret",
        "/assets/../../secret",
        "/assets/%2e%2e/%2e%2e/secret",
        "/assets/%2e%2e%2f%2e%2e%2fsecret",
        "/assets/..%2f..%2fsecret",
        "/assets/%252e%252e/%252e%252e/secret",
        "/assets/....//....//secret",
        "/assets/..\\..\\secret",
        "/assets/%5c..%5c..%5csecret",
        "/assets//../../secret",
        "/assets/link-out",
        "/assets/dir-out/secret",
        "/assets/dir-out/",
        "/assets/sub/../../secret",
        "/assets/%2Fetc%2Fpasswd",
        "/assets/%00../../secret",
        "/assets/kernel/../../../secret",
        "/ignition?case=esc-ign",
        "/ignition?case=esc-ign-abs",
        "/ignition?case=esc-ign-link",
        "/ignition?case=esc-ign-enc",
        "/ignition?case=esc-ign-nul",
        "/generic?case=esc-gen",
        "/generic?case=esc-gen-link",
        "/cloud?case=esc-cloud",
        "/ipxe?case=esc-prof",
        "/ipxe?case=esc-prof2",
        "/ipxe?case=esc-prof3",
        "/ignition?case=esc-prof",
        "/metadata?case=esc-prof&x=../../secret",
        "/../../secret",
        "/%2e%2e/%2e%2e/secret",
    ];
    assert!(attempts.len() >= 20);
    for a in attempts {
        let r = fetch(&server, a);
        assert!(
            !r.text().contains(SECRET),
            "{a} leaked the secret: {} {:?}",
            r.status,
            r.text()
        );
        assert!(
            r.status == 404 || r.status == 400 || r.status == 200,
            "{a}: status {}",
            r.status
        );
    }
    // The legitimate file next to them is still served.
    let ok = fetch(&server, "/assets/kernel");
    assert_eq!((ok.status, ok.text().as_str()), (200, "kernel bytes"));
    // Every refused escape is explained in the log.
    for reason in [
        "outside the assets directory",
        "leaves ignition/",
        "leaves profiles/",
    ] {
        assert!(server.log_has(reason), "{reason}: {}", server.log_text());
    }
}

#[test]
fn oversized_requests_get_4xx() {
    let (_tmp, server) = setup();
    let long_uri = format!("/ipxe?mac=52:54:00:12:34:56&x={}", "a".repeat(10_000));
    assert_eq!(request(server.port, "GET", &long_uri, &[]).status, 414);
    let huge_uri = format!("/ipxe?x={}", "a".repeat(200_000));
    let r = support::try_request(server.port, "GET", &huge_uri, &[]);
    assert!(
        matches!(r, Ok(ref r) if (400..500).contains(&r.status)),
        "{r:?}"
    );
    let big = "b".repeat(100_000);
    assert_eq!(
        request(server.port, "GET", "/", &[("X-Big", &big)]).status,
        431
    );
    let many: Vec<(String, String)> = (0..300).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = support::try_request(server.port, "GET", "/", &many);
    assert!(matches!(r, Ok(ref r) if r.status == 431), "{r:?}");
    // The server is still fine afterwards.
    assert_eq!(server.get("/").text(), "matchbox\n");
}

#[test]
fn malformed_json_is_reported_with_position() {
    let tmp = kindling_testkit::tempdir("bad-json");
    let data = tmp.path().join("data");
    layout(&data);
    std::fs::write(
        data.join("groups/broken.json"),
        "{\n  \"id\": \"b\",\n  \"profile\": \"p\"\n  \"selector\": {}\n}\n",
    )
    .unwrap();
    std::fs::write(
        data.join("groups/badmac.json"),
        r#"{"id":"m","profile":"p","selector":{"mac":"zz:zz"}}"#,
    )
    .unwrap();
    std::fs::write(
        data.join("profiles/p.json"),
        "{\"id\": \"p\", \"boot\": {\"kernel\": 5}}",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"))
        .args(["select", "--data-dir"])
        .arg(&data)
        .arg("mac=52:54:00:12:34:56")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("groups/broken.json: line 4, column 3"),
        "{text}"
    );
    assert!(
        text.contains("groups/badmac.json: selector mac: address zz:zz: invalid MAC address"),
        "{text}"
    );
    assert!(
        text.contains("profiles/p.json: field boot.kernel: expected string, found number"),
        "{text}"
    );
    // The server reports the same at start-up and keeps running.
    let server = Server::start(&data, &[]);
    assert!(
        server.log_has("groups/broken.json") && server.log_has("line 4, column 3"),
        "{}",
        server.log_text()
    );
    assert_eq!(server.get("/").status, 200);
}
