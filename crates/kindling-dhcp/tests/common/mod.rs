//! Network-namespace test harness: namespaces, veth pairs, processes and sockets that are
//! cleaned up by Drop guards even when a test panics. Everything runs inside namespaces the
//! test creates (names contain "kindling"); nothing touches the host's interfaces.
//!
//! * `kindling_testkit`: namespaces, processes in them, sockets in them, temporary
//!   directories;
//! * `pkt`: the client packet builder (shared with the unit tests in `src/tests.rs`);
//! * `reply`: collecting and reading replies;
//! * `capture`: what went over a link;
//! * `vm`: what a QEMU firmware test needs before it boots;
//! * `dora`: full-mode client messages and the hook script of real clients;
//! * `http`: a stand-in HTTP service (script and files) for the firmware tests;
//! * here: the standard [`Lab`], Kindling and dnsmasq processes.
#![allow(dead_code)]

mod capture;
mod dora;
mod http;
mod pkt;
mod reply;
mod vm;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

// Every test binary takes what it needs from here; not every one uses every part.
#[allow(unused_imports)]
pub use capture::*;
#[allow(unused_imports)]
pub use dora::*;
#[allow(unused_imports)]
pub use http::*;
#[allow(unused_imports)]
pub use kindling_testkit::{Netns, Proc, TempDir, can_run, have};
pub use pkt::*;
#[allow(unused_imports)]
pub use reply::*;
#[allow(unused_imports)]
pub use vm::*;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The standard lab: server namespace S (s0 = 192.168.77.1/24) and client namespace C
/// (c0 = 192.168.77.2/24, plus 10.55.0.1/24 playing a relay's subnet, routed from S).
pub struct Lab {
    pub tmp: TempDir,
    pub s: Netns,
    pub c: Netns,
}

pub const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
/// The client's address, also the lease of [`Pkt`]'s 4011 REQUESTs.
pub const CLIENT: Ipv4Addr = LEASE;
pub const RELAY: Ipv4Addr = Ipv4Addr::new(10, 55, 0, 1);

impl Lab {
    pub fn new() -> Self {
        let tmp = kindling_testkit::tempdir("dhcp");
        let s = Netns::new("s");
        let c = Netns::new("c");
        s.veth("s0", "c0", &c);
        s.ip(&["addr", "add", "192.168.77.1/24", "dev", "s0"]);
        s.ip(&["link", "set", "s0", "up"]);
        c.ip(&["addr", "add", "192.168.77.2/24", "dev", "c0"]);
        c.ip(&["addr", "add", "10.55.0.1/24", "dev", "c0"]);
        c.ip(&["link", "set", "c0", "up"]);
        s.ip(&["route", "add", "10.55.0.0/24", "via", "192.168.77.2"]);
        Self { tmp, s, c }
    }
}

/// Path of the `proxydhcp` example next to this test binary.
pub fn example_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join("examples").join("proxydhcp");
    assert!(
        p.exists(),
        "{} missing: run `cargo test` (it builds examples)",
        p.display()
    );
    p
}

/// Kindling's proxy DHCP (the example binary) running in `ns`.
pub struct Kindling {
    pub proc: Proc,
    pub stats: PathBuf,
}

impl Kindling {
    pub fn start(ns: &Netns, tmp: &TempDir, dhcp_toml: &str) -> Result<Self, String> {
        Self::start_with(ns, tmp, dhcp_toml, &[])
    }

    /// Like `start`, with extra command-line arguments (e.g. `--log-format json`) and the
    /// log filter pinned to `info`.
    pub fn start_with(
        ns: &Netns,
        tmp: &TempDir,
        dhcp_toml: &str,
        extra: &[&str],
    ) -> Result<Self, String> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let cfg = tmp.path().join(format!("kindling-{n}.toml"));
        std::fs::write(&cfg, format!("[dhcp]\n{dhcp_toml}")).unwrap();
        let stats = tmp.path().join(format!("stats-{n}.json"));
        let mut cmd = ns.cmd(example_bin().to_str().unwrap());
        cmd.arg(&cfg)
            .arg("--stats-file")
            .arg(&stats)
            .arg("--events")
            .args(extra);
        if !extra.is_empty() {
            cmd.env("RUST_LOG", "info");
        }
        let proc = Proc::spawn(cmd);
        proc.wait_for("READY", false, Duration::from_secs(10))?;
        Ok(Self { proc, stats })
    }

    /// Stops the server and returns its counters.
    pub fn stop(mut self) -> serde_json::Value {
        let st = self.proc.terminate();
        assert!(st.is_some_and(|s| s.success()), "proxydhcp exit: {st:?}");
        let text = std::fs::read_to_string(&self.stats).expect("stats file");
        serde_json::from_str(&text).unwrap()
    }

    /// Observer events printed so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.proc
            .lines
            .try_iter()
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }
}

/// dnsmasq (Debian 2.90) running in `ns` as the behavioural oracle.
pub struct Dnsmasq {
    pub proc: Proc,
}

impl Dnsmasq {
    pub fn start(ns: &Netns, tmp: &TempDir, iface: &str, conf: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let cfg = tmp.path().join(format!("dnsmasq-{n}.conf"));
        std::fs::write(&cfg, conf).unwrap();
        let leases = tmp.path().join(format!("dnsmasq-{n}.leases"));
        let mut cmd = ns.cmd("dnsmasq");
        cmd.arg("--no-daemon")
            .arg("--port=0")
            .arg("--bind-interfaces")
            .arg(format!("--interface={iface}"))
            .arg(format!("--conf-file={}", cfg.display()))
            .arg(format!("--dhcp-leasefile={}", leases.display()))
            .arg("--pid-file=")
            .arg("--user=root")
            .arg("--log-dhcp")
            .arg("--log-facility=-");
        let proc = Proc::spawn(cmd);
        proc.wait_for("started", true, Duration::from_secs(10))
            .expect("dnsmasq started");
        // Give it a moment to finish binding 67/4011 after the banner.
        std::thread::sleep(Duration::from_millis(200));
        Self { proc }
    }
}
