//! Safe on a shared LAN (issue 13), over real UDP sockets on loopback: the root is
//! confined by the kernel even while names are swapped for symlinks, and one host that
//! grabs transfer slots with `timeout=255` and never acknowledges cannot lock out
//! another machine. Uses only the default limits, so these tests also run against a
//! server without them (where they fail).

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Raw, Server, config, pattern, tempdir};
use kindling_tftp::packet::Packet;

/// Atomically exchange two directory entries (renameat2 RENAME_EXCHANGE).
fn exchange(a: &Path, b: &Path) {
    let a = CString::new(a.as_os_str().as_bytes()).unwrap();
    let b = CString::new(b.as_os_str().as_bytes()).unwrap();
    // SAFETY: two valid NUL-terminated paths.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(rc, 0, "renameat2: {}", std::io::Error::last_os_error());
}

/// While one thread keeps swapping `d` (a directory in the root <-> a symlink to a
/// directory outside) and `g` (a regular file <-> a symlink to a file outside), eight
/// clients fetch `d/f` and `g` 20,000 times in all. Not one byte of the outside
/// files may arrive. (A check of the path followed by a separate open serves the
/// outside file when `d` flips between the two.)
#[test]
fn symlink_swap_race_never_leaks_outside_bytes() {
    const INSIDE: u8 = b'i';
    const OUTSIDE: u8 = b'X';
    const REQUESTS: usize = 20_000;
    const THREADS: usize = 8;
    let top = tempdir("tftp-race");
    let root = top.path().join("root");
    let outside = top.path().join("outside");
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("d/f"), vec![INSIDE; 300]).unwrap();
    std::fs::write(root.join("g"), vec![INSIDE; 200]).unwrap();
    std::fs::write(outside.join("f"), vec![OUTSIDE; 400]).unwrap();
    symlink(&outside, root.join("d_alt")).unwrap();
    symlink(outside.join("f"), root.join("g_alt")).unwrap();

    let srv = Server::start(config(&root));
    let stop = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicU64::new(0));
    let flipper = {
        let (stop, flips, root) = (stop.clone(), flips.clone(), root.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                exchange(&root.join("d"), &root.join("d_alt"));
                exchange(&root.join("g"), &root.join("g_alt"));
                flips.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let addr = srv.addr;
    let clients: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                // 100 source addresses per thread (127.0.1+t.x): the default
                // per-address request rate limit never applies.
                let socks: Vec<Raw> = (0..100)
                    .map(|k| Raw::bound(&format!("127.0.{}.{}:0", t + 1, k + 1), addr))
                    .collect();
                let (mut ok, mut refused, mut leaked) = (0u64, 0u64, 0u64);
                for i in 0..REQUESTS / THREADS {
                    let raw = &socks[i % socks.len()];
                    let name = if i % 2 == 0 { "d/f" } else { "g" };
                    match raw.get(name) {
                        Ok(bytes) => {
                            leaked += bytes.iter().filter(|&&b| b == OUTSIDE).count() as u64;
                            assert!(bytes.iter().all(|&b| b == INSIDE || b == OUTSIDE));
                            ok += 1;
                        }
                        Err((code, msg)) => {
                            assert!(code == 1 || code == 2, "{code} {msg}");
                            refused += 1;
                        }
                    }
                }
                (ok, refused, leaked)
            })
        })
        .collect();
    let (mut ok, mut refused, mut leaked) = (0, 0, 0);
    let mut panicked = None;
    for c in clients {
        match c.join() {
            Ok((o, r, l)) => {
                ok += o;
                refused += r;
                leaked += l;
            }
            Err(p) => panicked = Some(p),
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    if let Some(p) = panicked {
        std::panic::resume_unwind(p);
    }
    let flips = flips.load(Ordering::Relaxed);
    eprintln!(
        "{} requests: {ok} served, {refused} refused, {leaked} outside bytes; {flips} swaps",
        ok + refused
    );
    assert_eq!(ok + refused, REQUESTS as u64);
    assert_eq!(leaked, 0, "bytes from outside the root were served");
    // Both states were seen: the race was really run.
    assert!(ok > 0 && refused > 0, "ok {ok} refused {refused}");
    assert!(flips > 100, "{flips}");
}

/// A client asking for `timeout=255` does not get it: the option is left out (RFC 2349
/// lets the server ignore it), so with no other option DATA 1 comes at once.
#[test]
fn client_timeout_option_is_capped() {
    let top = tempdir("tftp-tocap");
    std::fs::write(top.path().join("ok.txt"), b"hello").unwrap();
    let srv = Server::start(config(top.path()));
    let raw = Raw::new(srv.addr);
    raw.rrq("ok.txt", &[("timeout", "255")]);
    let (p, _) = raw.recv().expect("no answer");
    assert!(
        matches!(p, Packet::Data { block: 1, .. }),
        "timeout=255 was accepted: {p:?}"
    );
    raw.rrq("ok.txt", &[("timeout", "3")]);
    let (p, _) = raw.recv().expect("no answer");
    assert_eq!(
        p,
        Packet::Oack {
            options: vec![("timeout".into(), "3".into())]
        }
    );
}

/// Fetch `name` as a new machine would: on an ERROR "busy" ask again, for up to 10 s.
fn fetch_within_10s(client: &Raw, name: &str) -> Result<Vec<u8>, Vec<String>> {
    let until = Instant::now() + Duration::from_secs(10);
    let mut errors = Vec::new();
    while Instant::now() < until {
        match client.get(name) {
            Ok(bytes) => return Ok(bytes),
            Err((code, msg)) => errors.push(format!("{code} {msg}")),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(errors)
}

/// One host sends 64 RRQs with `timeout=255` and never acknowledges. Another machine
/// (127.0.0.2) must still be served within 10 s, with the default configuration.
#[test]
fn one_host_holding_slots_does_not_lock_out_another() {
    let top = tempdir("tftp-lockout");
    std::fs::write(top.path().join("big"), pattern(1_000_000, 7)).unwrap();
    std::fs::write(top.path().join("ok.txt"), b"hello").unwrap();
    let srv = Server::start(config(top.path()));
    let attacker = Raw::bound("127.0.0.1:0", srv.addr);
    for _ in 0..64 {
        attacker.rrq("big", &[("timeout", "255"), ("blksize", "1468")]);
    }
    // Let the server take them all in (answers are never acknowledged).
    attacker.set_timeout(Duration::from_millis(500));
    let mut answers = 0;
    while attacker.recv().is_some() && answers < 10_000 {
        answers += 1;
    }
    assert!(answers > 0, "the attacker got no answer at all");
    let victim = Raw::bound("127.0.0.2:0", srv.addr);
    let got = fetch_within_10s(&victim, "ok.txt");
    let st = srv.stats.snapshot();
    assert_eq!(
        got.as_deref().map_err(|e| e.join("; ")),
        Ok(&b"hello"[..]),
        "{st:?}"
    );
    drop(attacker);
}
