//! Server behaviour on 127.0.0.1 with a raw client: traversal refusals, WRQ,
//! busy limit, single-port mode, overrides and iPXE defaults, EDK2-style tsize
//! probe, malformed datagrams, the observer hook and custom file sources.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Raw, Server, TempDir, config, have, pattern, tempdir, wait_for};
use kindling_tftp::packet::{ErrorCode, Packet};
use kindling_tftp::{FileSource, Opened, Outcome, Refusal, TftpError, TftpObserver};

/// root/ with ok.txt, sub/ok2.txt, in-root symlink, symlinks leaving the root;
/// secret.txt next to (outside) the root.
fn layout() -> (TempDir, PathBuf) {
    let top = tempdir("tftp-trav");
    let root = top.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("ok.txt"), b"hello").unwrap();
    std::fs::write(root.join("sub/ok2.txt"), b"hello2").unwrap();
    std::fs::write(top.path().join("secret.txt"), b"SECRET").unwrap();
    symlink("/etc/passwd", root.join("link_passwd")).unwrap();
    symlink("/etc", root.join("link_etc")).unwrap();
    symlink("../secret.txt", root.join("link_rel_out")).unwrap();
    symlink("ok.txt", root.join("link_in")).unwrap();
    symlink("sub", root.join("link_sub")).unwrap();
    (top, root)
}

#[test]
fn traversal_attempts_are_refused() {
    let (top, root) = layout();
    let srv = Server::start(config(&root));
    let raw = Raw::new(srv.addr);
    let root_s = root.display().to_string();
    let long = "a".repeat(3000);
    let deep = format!("{}etc/passwd", "../".repeat(300));
    let abs_root = format!("{root_s}/../secret.txt");
    // (name, expected error code)
    let attempts: Vec<(&str, u16)> = vec![
        ("../secret.txt", 2),
        ("..\\secret.txt", 2),
        ("/../secret.txt", 2),
        ("sub/../../secret.txt", 2),
        ("sub\\..\\..\\secret.txt", 2),
        ("./../secret.txt", 2),
        ("//etc/passwd", 2),
        ("\\\\etc\\passwd", 2),
        ("/etc/passwd", 1),
        ("%2e%2e/secret.txt", 1),
        ("%2e%2e%2fsecret.txt", 1),
        ("..%2fsecret.txt", 1),
        ("....//secret.txt", 1),
        ("link_passwd", 2),
        ("link_etc/passwd", 2),
        ("link_rel_out", 2),
        ("sub", 2),
        ("link_sub", 2),
        (long.as_str(), 2),
        (deep.as_str(), 2),
        (abs_root.as_str(), 2),
        ("C:\\secret.txt", 1),
        ("~/secret.txt", 1),
        ("sub/ok2.txt/..", 2),
    ];
    for (name, code) in &attempts {
        raw.rrq(name, &[]);
        let (p, _) = raw
            .recv()
            .unwrap_or_else(|| panic!("no answer for {name:?}"));
        match p {
            Packet::Error { code: c, .. } => {
                assert_eq!(c.as_u16(), *code, "wrong code for {name:?}")
            }
            other => panic!("{name:?} was not refused: {other:?}"),
        }
    }
    // NUL inside the name: the name ends at the NUL and the rest is not a valid
    // mode, so the datagram is dropped without any answer (counted as malformed).
    raw.set_timeout(Duration::from_millis(700));
    raw.rrq_bytes(b"ok.txt\0../../secret.txt", &[]);
    assert!(raw.recv().is_none(), "NUL name answered");
    // Not UTF-8: dropped likewise.
    raw.rrq_bytes(b"\xff\xfe../secret.txt", &[]);
    assert!(raw.recv().is_none(), "non-UTF-8 name answered");
    raw.set_timeout(Duration::from_secs(3));

    // Positive controls: the same server serves legitimate names.
    assert_eq!(raw.get("ok.txt").unwrap(), b"hello");
    assert_eq!(raw.get("/ok.txt").unwrap(), b"hello");
    assert_eq!(raw.get("sub\\ok2.txt").unwrap(), b"hello2");
    assert_eq!(raw.get("link_in").unwrap(), b"hello");
    assert_eq!(raw.get("link_sub/ok2.txt").unwrap(), b"hello2");

    let st = srv.settled(5);
    let refused = attempts.len() as u64;
    assert_eq!(st.not_found + st.access_violations, refused, "{st:?}");
    assert_eq!(st.malformed, 2);
    assert_eq!(st.transfers_ok, 5);
    assert!(attempts.len() >= 15);
    drop(top);
}

#[test]
fn wrq_is_refused() {
    let (_top, root) = layout();
    let srv = Server::start(config(&root));
    let raw = Raw::new(srv.addr);
    let mut p = vec![0u8, 2];
    p.extend_from_slice(b"upload.bin\0octet\0");
    raw.send_to(&p, srv.addr);
    let (pkt, _) = raw.recv().unwrap();
    assert!(
        matches!(
            pkt,
            Packet::Error {
                code: ErrorCode::AccessViolation,
                ..
            }
        ),
        "{pkt:?}"
    );
    assert!(!root.join("upload.bin").exists());
    assert_eq!(srv.stats.snapshot().wrq_refused, 1);
    if have("busybox") {
        let local = root.join("ok.txt");
        let st = std::process::Command::new("busybox")
            .args(["tftp", "-p", "-r", "put.txt", "-l"])
            .arg(&local)
            .args(["127.0.0.1", &srv.addr.port().to_string()])
            .output()
            .unwrap();
        assert!(!st.status.success());
        assert!(!root.join("put.txt").exists());
    }
}

#[test]
fn busy_when_max_transfers_reached() {
    let (_top, root) = layout();
    std::fs::write(root.join("big"), pattern(10_000, 1)).unwrap();
    let mut c = config(&root);
    c.max_transfers = 1;
    let srv = Server::start(c);
    let first = Raw::new(srv.addr);
    first.rrq("big", &[]);
    let (p, tid) = first.recv().unwrap();
    assert!(matches!(p, Packet::Data { block: 1, .. }));
    let second = Raw::new(srv.addr);
    second.rrq("ok.txt", &[]);
    // Dropped, not refused: firmware ends the boot on an ERROR but sends its RRQ again.
    wait_for(&srv, |s| s.busy >= 1);
    second.set_timeout(Duration::from_millis(300));
    assert!(second.recv().is_none(), "no answer while full");
    assert_eq!(srv.stats.snapshot().busy, 1);
    second.set_timeout(Duration::from_secs(3));
    // Abort the first transfer; the slot frees up.
    first.send_to(
        &kindling_tftp::packet::encode_error(ErrorCode::NotDefined, "bye"),
        tid,
    );
    srv.settled(1);
    assert_eq!(second.get("ok.txt").unwrap(), b"hello");
}

#[test]
fn single_port_mode_serves_from_listening_port() {
    let (_top, root) = layout();
    std::fs::write(root.join("big"), pattern(100_000, 3)).unwrap();
    let mut c = config(&root);
    c.single_port = true;
    let srv = Server::start(c);
    let raw = Raw::new(srv.addr);
    raw.rrq("big", &[("blksize", "1024"), ("windowsize", "4")]);
    let (p, from) = raw.recv().unwrap();
    assert_eq!(from, srv.addr, "answer must come from the listening port");
    assert!(matches!(p, Packet::Oack { .. }));
    raw.send_to(&Packet::Ack { block: 0 }.encode(), from);
    let mut got = Vec::new();
    let mut last = 0u16;
    loop {
        let (p, from) = raw.recv().unwrap();
        assert_eq!(from, srv.addr);
        let Packet::Data { block, data } = p else {
            panic!("{p:?}")
        };
        assert_eq!(block, last.wrapping_add(1));
        last = block;
        let short = data.len() < 1024;
        got.extend_from_slice(&data);
        if short || block % 4 == 0 {
            raw.send_to(&Packet::Ack { block }.encode(), from);
        }
        if short {
            break;
        }
    }
    assert!(got == pattern(100_000, 3));
    // Real clients too, concurrently.
    if have("busybox") && have("curl") {
        let out = tempdir("tftp-sp");
        let port = srv.addr.port().to_string();
        let o1 = out.path().join("a");
        let o2 = out.path().join("b");
        let mut c1 = std::process::Command::new("busybox")
            .args(["tftp", "-g", "-b", "1468", "-r", "big", "-l"])
            .arg(&o1)
            .args(["127.0.0.1", &port])
            .spawn()
            .unwrap();
        let s2 = std::process::Command::new("curl")
            .args(["-sS", "-o"])
            .arg(&o2)
            .arg(format!("tftp://127.0.0.1:{port}/big"))
            .status()
            .unwrap();
        assert!(c1.wait().unwrap().success());
        assert!(s2.success());
        assert!(std::fs::read(&o1).unwrap() == pattern(100_000, 3));
        assert!(std::fs::read(&o2).unwrap() == pattern(100_000, 3));
    } else {
        eprintln!("SKIP: busybox or curl missing for the single-port real-client part");
    }
}

#[test]
fn overrides_and_ipxe_defaults() {
    let (top, root) = layout();
    // An override that is a symlink pointing outside the root is trusted.
    let outside = top.path().join("custom-ipxe.efi");
    std::fs::write(&outside, b"custom build").unwrap();
    let link = top.path().join("ipxe-link.efi");
    symlink(&outside, &link).unwrap();
    let ipxe = tempdir("tftp-ipxe");
    std::fs::write(ipxe.path().join("undionly.kpxe"), b"undionly").unwrap();
    std::fs::write(ipxe.path().join("snponly.efi"), b"snp").unwrap();
    std::fs::write(ipxe.path().join("other.rom"), b"no").unwrap();
    std::fs::write(root.join("snponly.efi"), b"root snp").unwrap();
    let mut c = config(&root);
    c.files.insert("ipxe.efi".into(), link);
    c.files.insert("/boot/x.bin".into(), outside.clone());
    c.ipxe_dir = ipxe.path().to_path_buf();
    let srv = Server::start(c);
    let raw = Raw::new(srv.addr);
    assert_eq!(raw.get("ipxe.efi").unwrap(), b"custom build");
    assert_eq!(raw.get("/ipxe.efi").unwrap(), b"custom build");
    assert_eq!(raw.get("boot/x.bin").unwrap(), b"custom build");
    assert_eq!(raw.get("undionly.kpxe").unwrap(), b"undionly");
    // The root wins over the iPXE directory.
    assert_eq!(raw.get("snponly.efi").unwrap(), b"root snp");
    // Only the known iPXE names come from ipxe_dir.
    assert_eq!(raw.get("other.rom").unwrap_err().0, 1);
}

#[test]
fn debian_ipxe_package_files_are_served() {
    let dir = std::path::Path::new("/usr/lib/ipxe");
    if !dir.join("undionly.kpxe").exists() {
        eprintln!("SKIP: Debian ipxe package not installed");
        return;
    }
    let c = kindling_tftp::TftpConfig {
        max_blksize: 65464,
        ..Default::default()
    };
    let srv = Server::start(c);
    let raw = Raw::new(srv.addr);
    for name in kindling_tftp::source::IPXE_FILES {
        let p = dir.join(name);
        match std::fs::read(&p) {
            Ok(want) => assert!(raw.get(name).unwrap() == want, "{name}"),
            Err(_) => assert!(raw.get(name).is_err()),
        }
    }
}

/// Records every observer call as a line.
#[derive(Default)]
struct Rec(Mutex<Vec<String>>);

impl TftpObserver for Rec {
    fn transfer_started(&self, _peer: SocketAddr, file: &str, size: Option<u64>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("start {file} {size:?}"));
    }
    fn transfer_finished(
        &self,
        _peer: SocketAddr,
        file: &str,
        bytes: u64,
        _d: Duration,
        outcome: &Outcome,
    ) {
        self.0
            .lock()
            .unwrap()
            .push(format!("end {file} {bytes} {outcome:?}"));
    }
    fn request_refused(&self, _peer: SocketAddr, file: &str, kind: Refusal, reason: &str) {
        self.0
            .lock()
            .unwrap()
            .push(format!("refused {file} {kind}: {reason}"));
    }
}

#[test]
fn refusals_reach_the_observer_with_the_server_side_reason() {
    let (_top, root) = layout();
    let rec = Arc::new(Rec::default());
    let mut c = config(&root);
    c.max_transfers = 1;
    let srv = Server::start_with(c, Some(rec.clone()), None);
    let raw = Raw::new(srv.addr);
    assert_eq!(raw.get("nope.efi").unwrap_err().0, 1);
    assert_eq!(raw.get("../secret.txt").unwrap_err().0, 2);
    let mut wrq = vec![0u8, 2];
    wrq.extend_from_slice(b"up.bin\0octet\0");
    raw.send_to(&wrq, srv.addr);
    assert!(matches!(raw.recv().unwrap().0, Packet::Error { .. }));
    // One transfer running (never acknowledged): the next request is busy. The server
    // frees a refused request's slot before the client hears the ERROR, so the ERRORs
    // received above mean the one slot is free now: no waiting, no retrying.
    std::fs::write(root.join("big"), pattern(200_000, 1)).unwrap();
    let holder = Raw::new(srv.addr);
    holder.rrq("big", &[]);
    let (first, _) = holder.recv().expect("no answer to the holder");
    assert!(
        matches!(first, Packet::Data { block: 1, .. }),
        "the slot of a refused request was still held: {first:?}; {:?}",
        rec.0.lock().unwrap()
    );
    let other = Raw::new(srv.addr);
    other.rrq("ok.txt", &[]);
    // Dropped unanswered (firmware retries an RRQ, but gives up on an ERROR).
    wait_for(&srv, |s| s.busy >= 1);
    assert_eq!(srv.stats.snapshot().busy, 1);
    let lines = rec.0.lock().unwrap().clone();
    let refused: Vec<&String> = lines.iter().filter(|l| l.starts_with("refused")).collect();
    assert_eq!(refused.len(), 4, "{lines:?}");
    assert!(
        refused[0].starts_with("refused nope.efi not_found: file not found: "),
        "{}",
        refused[0]
    );
    assert!(
        refused[1].starts_with("refused ../secret.txt access_violation: "),
        "{}",
        refused[1]
    );
    assert_eq!(
        refused[2],
        "refused up.bin write_request: write request (WRQ): the server is read-only"
    );
    assert_eq!(
        refused[3],
        "refused ok.txt busy: server busy (max_transfers transfers running): dropped, the client retries"
    );
    // The same four in the server's own counters (what /metrics shows).
    let counts: std::collections::BTreeMap<_, _> = srv.stats.refused_by_reason().collect();
    for reason in ["not_found", "access_violation", "write_request", "busy"] {
        assert_eq!(counts[reason], 1, "{reason}: {counts:?}");
    }
    assert_eq!(counts["mail_mode"], 0);
}

#[test]
fn tsize_probe_aborted_with_error_8_is_normal() {
    let (_top, root) = layout();
    let rec = Arc::new(Rec::default());
    let srv = Server::start_with(config(&root), Some(rec.clone()), None);
    let raw = Raw::new(srv.addr);
    raw.rrq("ok.txt", &[("tsize", "0"), ("blksize", "1468")]);
    let (p, tid) = raw.recv().unwrap();
    assert_eq!(
        p,
        Packet::Oack {
            options: vec![
                ("tsize".into(), "5".into()),
                ("blksize".into(), "1468".into())
            ]
        }
    );
    raw.send_to(
        &kindling_tftp::packet::encode_error(ErrorCode::OptionRefused, "User aborted the transfer"),
        tid,
    );
    srv.settled(1);
    // Then the real download.
    assert_eq!(raw.get("ok.txt").unwrap(), b"hello");
    let st = srv.settled(2);
    assert_eq!(st.transfers_ok, 2);
    assert_eq!(st.options_declined, 1);
    assert_eq!(st.transfers_failed, 0);
    let ev = rec.0.lock().unwrap().clone();
    assert_eq!(
        ev,
        vec![
            "start ok.txt Some(5)",
            "end ok.txt 0 OptionsDeclined",
            "start ok.txt Some(5)",
            "end ok.txt 5 Completed"
        ]
    );
}

#[test]
fn malformed_datagrams_are_dropped_and_counted() {
    let (_top, root) = layout();
    let srv = Server::start(config(&root));
    let raw = Raw::new(srv.addr);
    raw.set_timeout(Duration::from_millis(500));
    for junk in [
        &b""[..],
        b"\x00",
        b"\x00\x07abc",
        b"\x00\x01noterm",
        b"\x00\x01\x00octet\x00",
    ] {
        raw.send_to(junk, srv.addr);
    }
    // Stray ACK/DATA to the listener: dropped, counted as unexpected.
    raw.send_to(&Packet::Ack { block: 1 }.encode(), srv.addr);
    assert!(raw.recv().is_none());
    raw.set_timeout(Duration::from_secs(3));
    assert_eq!(raw.get("ok.txt").unwrap(), b"hello");
    let st = srv.settled(1);
    assert_eq!(st.malformed, 5, "{st:?}");
    assert_eq!(st.unexpected, 1, "{st:?}");
}

#[test]
fn custom_file_source() {
    struct Gen;
    impl FileSource for Gen {
        fn open(&self, name: &str, peer: SocketAddr) -> Result<Opened, TftpError> {
            if name == "hello.ipxe" {
                let body = format!("#!ipxe\necho hello {}\n", peer.ip()).into_bytes();
                Ok(Opened {
                    size: Some(body.len() as u64),
                    reader: Box::new(body),
                    origin: "generated".into(),
                })
            } else {
                Err(TftpError::NotFound(name.into()))
            }
        }
    }
    let top = tempdir("tftp-gen");
    let srv = Server::start_with(config(top.path()), None, Some(Arc::new(Gen)));
    let raw = Raw::new(srv.addr);
    assert_eq!(
        raw.get("hello.ipxe").unwrap(),
        b"#!ipxe\necho hello 127.0.0.1\n"
    );
    assert_eq!(raw.get("nope").unwrap_err().0, 1);
}

#[test]
fn duplicate_acks_do_not_duplicate_windows_over_udp() {
    let (_top, root) = layout();
    std::fs::write(root.join("w"), pattern(8 * 100, 9)).unwrap();
    // No retransmission may blur the count, however slow this machine: a long timeout.
    let mut c = config(&root);
    c.timeout = 60.0;
    let srv = Server::start(c);
    let raw = Raw::new(srv.addr);
    raw.rrq("w", &[("blksize", "100"), ("windowsize", "4")]);
    let (_, tid) = raw.recv().unwrap();
    raw.send_to(&Packet::Ack { block: 0 }.encode(), tid);
    for b in 1..=4u16 {
        let (p, _) = raw.recv().unwrap();
        assert!(matches!(p, Packet::Data { block, .. } if block == b));
    }
    // ACK 4 three times: exactly one new window (5..=8), then silence (the count of
    // packets sent, at the end, proves it).
    for _ in 0..3 {
        raw.send_to(&Packet::Ack { block: 4 }.encode(), tid);
    }
    for b in 5..=8u16 {
        let (p, _) = raw.recv().unwrap();
        assert!(
            matches!(p, Packet::Data { block, .. } if block == b),
            "{p:?}"
        );
    }
    raw.send_to(&Packet::Ack { block: 8 }.encode(), tid);
    let (p, _) = raw.recv().unwrap();
    assert!(
        matches!(p, Packet::Data { block: 9, ref data } if data.is_empty()),
        "a window was sent twice: {p:?}"
    );
    raw.send_to(&Packet::Ack { block: 9 }.encode(), tid);
    let st = srv.settled(1);
    assert_eq!(st.transfers_ok, 1);
    assert_eq!(st.stale_acks, 2);
    assert_eq!(st.retransmits, 0, "{st:?}");
    // OACK, DATA 1..=8 once each, the empty DATA 9.
    assert_eq!(st.packets_sent, 10, "a window was sent twice: {st:?}");
}

#[test]
fn silent_client_times_out_after_retries() {
    let (_top, root) = layout();
    std::fs::write(root.join("big"), pattern(10_000, 5)).unwrap();
    let mut c = config(&root);
    c.timeout = 0.05;
    c.retries = 2;
    let srv = Server::start(c);
    let raw = Raw::new(srv.addr);
    raw.rrq("big", &[]);
    // DATA 1, two retransmissions of it, then ERROR "timed out"; we never ACK.
    let mut datas = 0;
    loop {
        let (p, _) = raw.recv().expect("server went silent without an error");
        match p {
            Packet::Data { block: 1, .. } => datas += 1,
            Packet::Error { code, message } => {
                assert_eq!(code, ErrorCode::NotDefined);
                assert_eq!(message, "timed out");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(datas, 3);
    let st = srv.settled(1);
    assert_eq!(st.timeouts, 1, "{st:?}");
    assert_eq!(st.transfers_failed, 1);
    assert_eq!(st.retransmits, 2);
}

#[test]
fn shutdown_stops_running_transfers() {
    let (_top, root) = layout();
    std::fs::write(root.join("big"), pattern(10_000, 6)).unwrap();
    let srv = Server::start(config(&root));
    let raw = Raw::new(srv.addr);
    raw.rrq("big", &[]);
    let (p, _) = raw.recv().unwrap();
    assert!(matches!(p, Packet::Data { block: 1, .. }));
    let stats = srv.stats.clone();
    drop(srv); // cancels and joins the server thread: run() must return
    let (p, _) = raw.recv().unwrap();
    assert!(
        matches!(p, Packet::Error { ref message, .. } if message.contains("shutting down")),
        "{p:?}"
    );
    assert_eq!(stats.snapshot().transfers_failed, 1);
}
