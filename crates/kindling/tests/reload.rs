//! Reload under load (issue 2): groups are added, changed, deleted and one is
//! made invalid while clients keep requesting. New answers must appear within
//! one second, no request for an untouched group may fail, and the invalid
//! file's last good version must stay in force.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{Server, layout, try_request, write_atomic};

fn mac(i: usize) -> String {
    format!("52:54:00:00:{:02x}:{:02x}", i / 256, i % 256)
}

fn hexhyp(i: usize) -> String {
    mac(i).replace(':', "-")
}

fn group(i: usize, profile: usize) -> String {
    format!(
        r#"{{"id":"g{i}","profile":"p{profile}","selector":{{"mac":"{}"}}}}"#,
        mac(i)
    )
}

fn script(profile: usize) -> String {
    format!("#!ipxe\nkernel /assets/k{profile} console=ttyS0\ninitrd /assets/i{profile}\nboot\n")
}

/// Polls `/ipxe` for group `i` until `check` accepts the response; returns how long it took.
fn wait_for(port: u16, i: usize, check: impl Fn(u16, &str) -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        if let Ok(r) = try_request(port, "GET", &format!("/ipxe?mac={}", hexhyp(i)), &[])
            && check(r.status, &r.text())
        {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "change for group {i} never became visible"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn reload_under_load() {
    let tmp = kindling_testkit::tempdir("reload");
    let data = tmp.path().join("data");
    layout(&data);
    for p in 0..10 {
        std::fs::write(
            data.join(format!("profiles/p{p}.json")),
            format!(
                r#"{{"id":"p{p}","boot":{{"kernel":"/assets/k{p}","initrd":["/assets/i{p}"],"args":["console=ttyS0"]}}}}"#
            ),
        )
        .unwrap();
    }
    const N: usize = 200;
    for i in 0..N {
        std::fs::write(data.join(format!("groups/g{i}.json")), group(i, i % 10)).unwrap();
    }
    let server = Server::start(&data, &[]);
    let port = server.port;

    // Groups 0..100 are never touched: every request for them must succeed.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for t in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        clients.push(std::thread::spawn(move || {
            let mut n = t;
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let i = n % 100;
                n += 7;
                match try_request(port, "GET", &format!("/ipxe?mac={}", hexhyp(i)), &[]) {
                    Ok(r) if r.status == 200 && r.text() == script(i % 10) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        if errors.len() < 5 {
                            errors.push(format!("group {i}: {other:?}"));
                        }
                    }
                }
            }
            errors
        }));
    }
    std::thread::sleep(Duration::from_millis(300));

    // Added: a new group becomes visible.
    let added = N + 1;
    write_atomic(
        &data.join(format!("groups/g{added}.json")),
        &group(added, 3),
    );
    let t_add = wait_for(port, added, |s, b| s == 200 && b == script(3));

    // Changed: group 150 moves from p0 to p7 (written in place, not atomically).
    std::fs::write(data.join("groups/g150.json"), group(150, 7)).unwrap();
    let t_change = wait_for(port, 150, |s, b| s == 200 && b == script(7));

    // Deleted: group 160 disappears.
    std::fs::remove_file(data.join("groups/g160.json")).unwrap();
    let t_delete = wait_for(port, 160, |s, _| s == 404);

    // Invalid: group 170 is broken; its last good version (p0) stays in force.
    write_atomic(
        &data.join("groups/g170.json"),
        r#"{"id":"g170","profile":"p9","selector":{"mac":"#,
    );
    std::thread::sleep(Duration::from_millis(1200));
    let r = try_request(port, "GET", &format!("/ipxe?mac={}", hexhyp(170)), &[]).unwrap();
    assert_eq!(
        (r.status, r.text()),
        (200, script(0)),
        "last good version of g170 must stay"
    );
    assert!(
        server.log_has("groups/g170.json") && server.log_has("line 1, column"),
        "the invalid file must be reported with its position; log:\n{}",
        server.log_text()
    );
    // ...and a fix is picked up.
    write_atomic(&data.join("groups/g170.json"), &group(170, 9));
    let t_fix = wait_for(port, 170, |s, b| s == 200 && b == script(9));

    // A burst: 50 groups changed at once all become visible together.
    for i in 100..150 {
        write_atomic(&data.join(format!("groups/g{i}.json")), &group(i, 5));
    }
    let t_burst = (100..150)
        .map(|i| wait_for(port, i, |s, b| s == 200 && b == script(5)))
        .max()
        .unwrap();

    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for c in clients {
        errors.extend(c.join().unwrap());
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "reload visible after: add {t_add:?}, change {t_change:?}, delete {t_delete:?}, fix {t_fix:?}, burst of 50 {t_burst:?}; requests ok {ok}, failed {failed}"
    );
    assert_eq!(
        failed, 0,
        "requests for untouched groups failed: {errors:?}"
    );
    assert!(ok > 100, "the load generator did not run ({ok} requests)");
    for (what, t) in [
        ("add", t_add),
        ("change", t_change),
        ("delete", t_delete),
        ("fix", t_fix),
        ("burst", t_burst),
    ] {
        assert!(
            t < Duration::from_secs(1),
            "{what} took {t:?} to become visible"
        );
    }
}

#[test]
fn sighup_reloads_without_watching() {
    let tmp = kindling_testkit::tempdir("sighup");
    let data = tmp.path().join("data");
    layout(&data);
    std::fs::write(
        data.join("profiles/p1.json"),
        r#"{"id":"p1","boot":{"kernel":"/k1"}}"#,
    )
    .unwrap();
    let server = Server::start(&data, &["--no-watch"]);
    std::fs::write(data.join("groups/a.json"), r#"{"id":"a","profile":"p1"}"#).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.get("/ipxe").status,
        404,
        "no watcher: not visible before SIGHUP"
    );
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let t0 = Instant::now();
    loop {
        let r = server.get("/ipxe");
        if r.status == 200 {
            assert_eq!(r.text(), "#!ipxe\nkernel /k1\nboot\n");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "SIGHUP did not reload"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
