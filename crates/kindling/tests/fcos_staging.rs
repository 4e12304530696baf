//! `kindling fcos` keeps its staging and state inside `assets/` (the final
//! rename stays on one filesystem); none of it is served over `/assets/` nor
//! listed, with directory listings off (the default) or on. A real server
//! over real sockets, on a stream directory laid out as a pull leaves it
//! when interrupted.

mod common;

use std::fs;
use std::path::Path;

use common::{Scratch, Server, request};

const STREAM: &str = "assets/fedora-coreos/stable";
const OLD: &str = "42.20251001.3.0";
const NEW: &str = "42.20251015.3.0";

fn kernel(release: &str) -> String {
    format!("fedora-coreos-{release}-live-kernel.x86_64")
}

fn write(data: &Path, rel: &str, body: &str) {
    let p = data.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

/// A data directory with a served release, a pull's staging left behind,
/// the lock, the state, a temporary file of an atomic write, and dotfiles.
fn layout(data: &Path) {
    for d in ["groups", "profiles", "ignition", "assets"] {
        fs::create_dir_all(data.join(d)).unwrap();
    }
    write(data, &format!("{STREAM}/{OLD}/{}", kernel(OLD)), "kernel\n");
    write(data, &format!("{STREAM}/{OLD}/release.json"), "{}\n");
    write(
        data,
        &format!("{STREAM}/state.json"),
        "{\"current\":\"x\"}\n",
    );
    write(data, &format!("{STREAM}/.lock"), "");
    write(data, &format!("{STREAM}/.state.json.4242.tmp"), "{}\n");
    let staging = format!("{STREAM}/.partial/{NEW}");
    write(data, &format!("{staging}/{}", kernel(NEW)), "truncated");
    write(data, &format!("{staging}/{}.sig", kernel(NEW)), "sig");
    write(data, &format!("{staging}/{}.part", kernel(NEW)), "half");
    write(
        data,
        &format!("{staging}/index.html"),
        "<html>staged</html>\n",
    );
    write(data, "assets/.env", "SECRET=1\n");
    write(data, "assets/site/.git/config", "[core]\n");
    write(data, "assets/site/a.txt", "a\n");
}

/// Every way of naming something internal: plain, without or with a
/// trailing slash, percent-encoded, through `index.html`.
fn hidden_targets() -> Vec<String> {
    let staging = format!("/{STREAM}/.partial/{NEW}");
    vec![
        format!("/{STREAM}/.partial"),
        format!("/{STREAM}/.partial/"),
        format!("{staging}/"),
        format!("{staging}/{}", kernel(NEW)),
        format!("{staging}/{}.sig", kernel(NEW)),
        format!("{staging}/{}.part", kernel(NEW)),
        format!("{staging}/index.html"),
        format!("/{STREAM}/%2epartial/{NEW}/{}", kernel(NEW)),
        format!("/{STREAM}/.lock"),
        format!("/{STREAM}/state.json"),
        format!("/{STREAM}/%73tate.json"),
        format!("/{STREAM}/.state.json.4242.tmp"),
        "/assets/.env".into(),
        "/assets/site/.git/config".into(),
        "/assets/site/.git/".into(),
    ]
}

fn status(server: &Server, target: &str) -> u16 {
    request(server.addr, "GET", target, &[], b"")
        .unwrap_or_else(|e| panic!("{target}: {e}"))
        .status
}

fn body(server: &Server, target: &str) -> (u16, String) {
    let r = request(server.addr, "GET", target, &[], b"").unwrap();
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

fn check(config: &str, listings: bool) {
    let scratch = Scratch::new(if listings { "fcos-lst" } else { "fcos-nolst" });
    let data = scratch.root.join("data");
    layout(&data);
    let server = Server::start_with(&data, &scratch.root, config, &[], |_| {});

    for t in hidden_targets() {
        assert_eq!(status(&server, &t), 404, "{t}");
        let r = request(server.addr, "HEAD", &t, &[], b"").unwrap();
        assert_eq!(r.status, 404, "HEAD {t}");
    }
    // An unclean path is redirected to its clean form, which is refused too.
    let r = request(
        server.addr,
        "GET",
        &format!("/{STREAM}/{OLD}/../.lock"),
        &[],
        b"",
    )
    .unwrap();
    let loc = r
        .header("location")
        .unwrap()
        .unwrap_or_default()
        .to_string();
    assert_eq!(loc, format!("/{STREAM}/.lock"));
    assert_eq!(status(&server, &loc), 404);

    // What a profile points at, and the release's record, are served.
    assert_eq!(
        body(&server, &format!("/{STREAM}/{OLD}/{}", kernel(OLD))),
        (200, "kernel\n".into())
    );
    assert_eq!(
        body(&server, &format!("/{STREAM}/{OLD}/release.json")),
        (200, "{}\n".into())
    );
    assert_eq!(body(&server, "/assets/site/a.txt"), (200, "a\n".into()));

    let dirs = [
        "/assets/".to_string(),
        "/assets/fedora-coreos/".into(),
        format!("/{STREAM}/"),
        "/assets/site/".into(),
    ];
    for d in &dirs {
        let (s, text) = body(&server, d);
        if !listings {
            assert_eq!(s, 404, "{d}");
            continue;
        }
        assert_eq!(s, 200, "{d}");
        for never in [".partial", ".lock", "state.json", ".env", ".git", ".tmp"] {
            assert!(!text.contains(never), "{d} lists {never}:\n{text}");
        }
    }
    if listings {
        let (_, text) = body(&server, &format!("/{STREAM}/"));
        assert!(text.contains(&format!("{OLD}/")), "{text}");
        let (_, text) = body(&server, "/assets/");
        assert!(
            text.contains("fedora-coreos/") && text.contains("site/"),
            "{text}"
        );
        let (_, text) = body(&server, "/assets/site/");
        assert!(text.contains("a.txt"), "{text}");
    }
}

#[test]
fn staging_and_state_are_never_served_listings_off() {
    check("", false);
}

#[test]
fn staging_and_state_are_never_served_listings_on() {
    check("[http]\nasset_listings = true\n", true);
}
