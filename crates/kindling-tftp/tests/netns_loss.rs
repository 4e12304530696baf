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

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{TempDir, have, pattern};

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Deletes the namespaces (and so the veth pair) on drop, also on panic.
struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Kills a child by PID on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    for b in ["ip", "nft"] {
        if !have(b) {
            return Some(format!("{b} not installed"));
        }
    }
    if Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        return Some("`ip netns` unavailable".into());
    }
    None
}

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

fn setup(tag: &str) -> Result<(Netns, String, String), String> {
    let pid = std::process::id();
    let s = format!("kindling-tftp-{tag}s-{pid}");
    let c = format!("kindling-tftp-{tag}c-{pid}");
    let guard = Netns(vec![]);
    let mut guard = guard;
    sh(&["ip", "netns", "add", &s])?;
    guard.0.push(s.clone());
    sh(&["ip", "netns", "add", &c])?;
    guard.0.push(c.clone());
    let vs = format!("kt{tag}s{pid}");
    let vc = format!("kt{tag}c{pid}");
    sh(&[
        "ip", "link", "add", &vs, "netns", &s, "type", "veth", "peer", "name", &vc, "netns", &c,
    ])?;
    sh(&[
        "ip",
        "-n",
        &s,
        "addr",
        "add",
        &format!("{SRV_IP}/24"),
        "dev",
        &vs,
    ])?;
    sh(&["ip", "-n", &c, "addr", "add", "10.199.0.2/24", "dev", &vc])?;
    for (ns, dev) in [(&s, &vs), (&c, &vc)] {
        sh(&["ip", "-n", ns, "link", "set", dev, "up"])?;
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
    }
    Ok((guard, s, c))
}

fn add_loss(ns: &str) -> Result<(), String> {
    let nft = |rest: &[&str]| {
        let mut a = vec!["ip", "netns", "exec", ns, "nft"];
        a.extend_from_slice(rest);
        sh(&a)
    };
    nft(&["add", "table", "inet", "loss"])?;
    nft(&[
        "add",
        "chain",
        "inet",
        "loss",
        "in",
        "{ type filter hook input priority 0; }",
    ])?;
    nft(&[
        "add",
        "chain",
        "inet",
        "loss",
        "out",
        "{ type filter hook output priority 0; }",
    ])?;
    for chain in ["in", "out"] {
        nft(&[
            "add", "rule", "inet", "loss", chain, "meta", "l4proto", "udp", "numgen", "random",
            "mod", "10", "==", "0", "counter", "drop",
        ])?;
    }
    Ok(())
}

fn start_server(ns: &str, root: &Path) -> (Proc, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(example("tftpd"))
        .args(["--listen", &format!("{SRV_IP}:69"), "--root"])
        .arg(root)
        .args([
            "--timeout",
            "0.01",
            "--retries",
            "60",
            "--max-windowsize",
            "16",
            "--stats",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("listening on"),
        "server did not start: {line:?}"
    );
    (Proc(child), out)
}

/// Stop the server with SIGINT and return its final stats line.
fn stop_server(mut p: Proc, mut out: BufReader<std::process::ChildStdout>) -> String {
    // SAFETY: plain kill(2) on our own child's PID.
    unsafe {
        libc::kill(p.0.id() as libc::pid_t, libc::SIGINT);
    }
    let _ = p.0.wait();
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    rest
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
    if let Some(r) = skip_reason() {
        eprintln!("SKIP: netns loss test: {r}");
        return;
    }
    let (_ns, s, c) = setup("l").expect("netns setup");
    add_loss(&s).expect("nft loss rules");
    let dir = TempDir::new("loss");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let want = pattern(64 << 20, 64);
    std::fs::write(root.join("big64"), &want).unwrap();
    let small = pattern(1 << 20, 1);
    std::fs::write(root.join("small1m"), &small).unwrap();
    let (srv, srv_out) = start_server(&s, &root);

    let out = dir.path().join("big64.out");
    let res = Command::new("timeout")
        .args(["600", "ip", "netns", "exec", &c])
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
        let res = Command::new("timeout")
            .args([
                "600", "ip", "netns", "exec", &c, "busybox", "tftp", "-g", "-b", "1468", "-r",
                "small1m", "-l",
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
    let rules = Command::new("ip")
        .args(["netns", "exec", &s, "nft", "list", "table", "inet", "loss"])
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

    let stats = stop_server(srv, srv_out);
    eprintln!("server: {}", stats.trim());
    assert!(stat(&stats, "retransmits") > 0, "{stats}");
    assert_eq!(stat(&stats, "requests"), 2, "{stats}");
}
