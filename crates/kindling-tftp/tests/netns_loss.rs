//! 64 MiB transfer under 10 % packet loss in both directions, inside two network
//! namespaces created by the test (veth pair, nftables `numgen random` drops on
//! the server side's input and output hooks). Needs root, `ip netns` and `nft`;
//! skipped with a message otherwise.
//!
//! The server is the crate's `tftpd` example, the windowed client the crate's
//! `tftpget` example (atftp 0.8's windowed client stalls for good once one of
//! its re-ACKs is lost, and curl negotiates a 6 s timeout, so neither suits
//! a loss test). busybox tftp (lock-step, a real client) fetches a smaller file
//! over the same lossy link.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{have, pattern, tempdir};
use kindling_testkit::{Netns, Proc, can_run};

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/netns_loss-xxxx -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        p.exists(),
        "{} missing: run through `cargo test` (it builds examples)",
        p.display()
    );
    p
}

const SRV_IP: &str = "10.199.0.1";

/// The server's namespace and the client's, joined by a veth pair.
fn setup() -> (Netns, Netns) {
    let s = Netns::new("tftp-s");
    let c = Netns::new("tftp-c");
    s.veth("ls0", "lc0", &c);
    s.ip(&["addr", "add", &format!("{SRV_IP}/24"), "dev", "ls0"]);
    c.ip(&["addr", "add", "10.199.0.2/24", "dev", "lc0"]);
    s.ip(&["link", "set", "ls0", "up"]);
    c.ip(&["link", "set", "lc0", "up"]);
    (s, c)
}

fn add_loss(ns: &Netns) {
    ns.exec(&["nft", "add", "table", "inet", "loss"]);
    for (chain, hook) in [("in", "input"), ("out", "output")] {
        ns.exec(&[
            "nft",
            "add",
            "chain",
            "inet",
            "loss",
            chain,
            &format!("{{ type filter hook {hook} priority 0; }}"),
        ]);
        ns.exec(&[
            "nft", "add", "rule", "inet", "loss", chain, "meta", "l4proto", "udp", "numgen",
            "random", "mod", "10", "==", "0", "counter", "drop",
        ]);
    }
}

fn start_server(ns: &Netns, root: &Path) -> Proc {
    let mut cmd = ns.cmd(example("tftpd").to_str().unwrap());
    cmd.args(["--listen", &format!("{SRV_IP}:69"), "--root"])
        .arg(root)
        .args([
            "--timeout",
            "0.01",
            "--retries",
            "60",
            "--max-windowsize",
            "16",
            "--stats",
        ]);
    let p = Proc::spawn(cmd);
    p.wait_for("listening on", false, Duration::from_secs(60))
        .expect("server did not start");
    p
}

/// Stop the server (SIGTERM) and return what it printed at exit (its final stats).
fn stop_server(mut p: Proc) -> String {
    p.terminate();
    p.rest_of_output(Duration::from_secs(60)).join("\n")
}

fn stat(line: &str, key: &str) -> u64 {
    line.split(&format!("{key}: "))
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn sixty_four_mib_under_ten_percent_loss() {
    const TEST: &str = "sixty_four_mib_under_ten_percent_loss";
    if !can_run(TEST) {
        return;
    }
    if !have("nft") {
        eprintln!("SKIP {TEST}: nft not installed");
        return;
    }
    let (s, c) = setup();
    add_loss(&s);
    let dir = tempdir("tftp-loss");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let want = pattern(64 << 20, 64);
    std::fs::write(root.join("big64"), &want).unwrap();
    let small = pattern(1 << 20, 1);
    std::fs::write(root.join("small1m"), &small).unwrap();
    let srv = start_server(&s, &root);

    let out = dir.path().join("big64.out");
    let res = c
        .cmd("timeout")
        .arg("600")
        .arg(example("tftpget"))
        .arg(format!("{SRV_IP}:69"))
        .arg("big64")
        .arg(&out)
        .args([
            "--blksize",
            "1468",
            "--windowsize",
            "16",
            "--timeout-ms",
            "50",
            "--retries",
            "200",
        ])
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "windowed client failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    eprintln!(
        "tftpget 64 MiB under loss: {}",
        String::from_utf8_lossy(&res.stdout).trim()
    );
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "64 MiB content differs");
    drop(got);

    if have("busybox") {
        let out2 = dir.path().join("small.out");
        let res = c
            .cmd("timeout")
            .args([
                "600", "busybox", "tftp", "-g", "-b", "1468", "-r", "small1m", "-l",
            ])
            .arg(&out2)
            .args([SRV_IP, "69"])
            .output()
            .unwrap();
        assert!(
            res.status.success(),
            "busybox failed: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        assert!(
            std::fs::read(&out2).unwrap() == small,
            "busybox content differs"
        );
    } else {
        eprintln!("SKIP: busybox part (not installed)");
    }

    // The nft counters prove packets were really dropped in both directions.
    let rules = s
        .cmd("nft")
        .args(["list", "table", "inet", "loss"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout).to_string();
    let drops: Vec<u64> = rules
        .lines()
        .filter_map(|l| l.split("packets ").nth(1))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    eprintln!("nft drop counters (in, out): {drops:?}");
    assert_eq!(drops.len(), 2);
    assert!(
        drops.iter().all(|&d| d > 100),
        "loss rules did not drop: {rules}"
    );

    let stats = stop_server(srv);
    eprintln!("server: {}", stats.trim());
    assert!(stat(&stats, "retransmits") > 0, "{stats}");
    assert_eq!(stat(&stats, "requests"), 2, "{stats}");
}
