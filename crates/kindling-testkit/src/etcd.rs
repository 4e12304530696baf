//! A real etcd cluster on loopback for tests: N members (the Debian `etcd-server`
//! package's /usr/bin/etcd) with their data directories in a temporary directory,
//! killed and restarted one by one or all together, and `etcdctl` (the `etcd-client`
//! package) to write and read behind the back of the code under test. All members are
//! killed by PID on drop, also when the test panics.
//!
//! Ports: free loopback ports below the kernel's ephemeral range, so that a port of a
//! killed member is not handed to some outgoing connection before the member restarts
//! on it (a member's peer URL cannot change across restarts).

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Proc;

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";

/// How long a start or restart may take before the test fails with the members' logs.
const DEADLINE: Duration = Duration::from_secs(30);

/// A member's lines of log shown when the cluster fails to come up.
const LOG_TAIL: usize = 40;

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

/// A running etcd cluster on 127.0.0.1; see the module's documentation.
pub struct EtcdCluster {
    // Dropped in this order: the members (already killed by `Drop`), then the directory.
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
    dir: crate::TempDir,
}

impl EtcdCluster {
    /// Starts a new cluster of `members` members and waits (up to 30 s, else panics with
    /// the members' logs) until each answers `/health` with `{"health":"true"}`.
    /// `None`, with a message on stderr, when etcd or etcdctl is not installed.
    pub fn start(members: usize) -> Option<EtcdCluster> {
        assert!(members > 0, "an etcd cluster has at least one member");
        for bin in [ETCD, ETCDCTL] {
            if !Path::new(bin).is_file() {
                eprintln!(
                    "{bin} not found (Debian packages etcd-server and etcd-client, \
                     scripts/install-deps); skipping"
                );
                return None;
            }
        }
        // A port picked free may be taken by someone else before etcd binds it: then a
        // member exits at once ("address already in use") and the cluster is started
        // again on other ports.
        let mut attempt = 1;
        loop {
            let mut c = EtcdCluster::new(members);
            for i in 0..members {
                c.spawn(i, "new");
            }
            match c.wait_healthy(&(0..members).collect::<Vec<_>>()) {
                Ok(()) => return Some(c),
                Err(why) if attempt < 3 && why.contains("address already in use") => {
                    eprintln!("etcd cluster: {why}; starting again on other ports");
                    attempt += 1;
                }
                Err(why) => panic!("etcd cluster did not come up: {why}"),
            }
        }
    }

    fn new(members: usize) -> EtcdCluster {
        let dir = crate::tempdir("etcd");
        let ports = free_ports(2 * members);
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let token = format!(
            "kindling-{}-{}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed),
            RandomState::new().hash_one(0u8) & 0xffff_ffff
        );
        let members: Vec<Member> = (0..members)
            .map(|i| {
                let name = format!("e{}", i + 1);
                Member {
                    data_dir: dir.path().join(&name),
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    client_port: ports[2 * i],
                    peer_port: ports[2 * i + 1],
                    proc: None,
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        EtcdCluster {
            members,
            initial_cluster,
            token,
            dir,
        }
    }

    /// Spawns member `i` (not running) with `--initial-cluster-state state`; its stdout
    /// and stderr are appended to its log file.
    fn spawn(&mut self, i: usize, state: &str) {
        let m = &self.members[i];
        assert!(m.proc.is_none(), "etcd member {i} is already running");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("open the etcd member's log file");
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let mut cmd = Command::new(ETCD);
        // etcd takes every ETCD_* variable as a flag, and refuses one that a flag repeats.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token])
            .args(["--logger", "zap", "--log-level", "warn"])
            // Tests compact by hand.
            .args(["--auto-compaction-retention", "0"])
            // Quick elections after a kill.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {ETCD}: {e}"));
        self.members[i].proc = Some(Proc::adopt(child));
    }

    /// Polls until each member of `which` answers `/health` with true, or one of them
    /// has exited, or the deadline passes; the error carries the members' logs.
    fn wait_healthy(&mut self, which: &[usize]) -> Result<(), String> {
        let deadline = Instant::now() + DEADLINE;
        let mut pending: Vec<usize> = which.to_vec();
        loop {
            for &i in which {
                if let Some(p) = self.members[i].proc.as_mut()
                    && let Ok(Some(st)) = p.child.try_wait()
                {
                    return Err(format!("etcd member {i} exited ({st}); {}", self.logs()));
                }
            }
            pending.retain(|&i| !healthy(self.members[i].client_port));
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "members {pending:?} not healthy after {DEADLINE:?}; {}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls until member `i` accepts connections on its client port.
    fn wait_listening(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + DEADLINE;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.members[i].client_port));
        loop {
            if let Some(p) = self.members[i].proc.as_mut()
                && let Ok(Some(st)) = p.child.try_wait()
            {
                return Err(format!("etcd member {i} exited ({st}); {}", self.logs()));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "member {i} not listening after {DEADLINE:?}; {}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of each member's log.
    fn logs(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL)..];
            out.push_str(&format!(
                "\n--- {} (client {}, peer {}), last {} lines of {}:\n{}",
                m.name,
                m.client_port,
                m.peer_port,
                tail.len(),
                m.log.display(),
                tail.join("\n")
            ));
        }
        out
    }

    /// `http://127.0.0.1:C` for each member, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// `http://127.0.0.1:C`, member `i`'s client URL.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    /// The temporary directory holding the members' data directories (`eN`) and logs
    /// (`eN.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether member `i` is running (started and not killed since).
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].proc.is_some()
    }

    /// Kills member `i` with SIGKILL (by PID) and reaps it (nothing when not running).
    /// When the members left running make a quorum, waits (up to 30 s, else panics with
    /// the logs) until each of them answers `/health` with true: a write sent before
    /// the others notice that the leader is gone is lost with it and hangs until the
    /// client's deadline ("etcdserver: request timed out").
    pub fn kill(&mut self, i: usize) {
        self.stop(i);
        let running: Vec<usize> = (0..self.members.len())
            .filter(|&j| self.members[j].proc.is_some())
            .collect();
        if running.len() > self.members.len() / 2
            && let Err(why) = self.wait_healthy(&running)
        {
            panic!("etcd cluster without member {i} not healthy: {why}");
        }
    }

    /// SIGKILL by PID, and reaps; nothing when not running.
    fn stop(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].proc.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// Starts member `i` again (killed first when running) with its data directory and
    /// flags. Waits until it answers `/health` with true when the running members then
    /// make a quorum, else only until it listens on its client port (restart the others
    /// too, or use [`EtcdCluster::restart_all`]). Panics with the logs after 30 s.
    pub fn restart(&mut self, i: usize) {
        self.stop(i);
        self.spawn(i, "existing");
        let running = self.members.iter().filter(|m| m.proc.is_some()).count();
        let waited = if running > self.members.len() / 2 {
            self.wait_healthy(&[i])
        } else {
            self.wait_listening(i)
        };
        if let Err(why) = waited {
            panic!("etcd member {i} did not come back: {why}");
        }
    }

    /// The running member that is the leader as the running members see it (`etcdctl
    /// endpoint status`), `None` when they do not agree on one of themselves.
    pub fn leader(&self) -> Option<usize> {
        let running: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.is_running(i))
            .collect();
        if running.is_empty() {
            return None;
        }
        let endpoints: Vec<String> = running.iter().map(|&i| self.endpoint(i)).collect();
        let out = etcdctl(
            &endpoints.join(","),
            &["endpoint", "status", "-w", "json"],
            None,
        )
        .ok()?;
        let out = String::from_utf8_lossy(&out);
        let mut leader = None;
        // [{"Endpoint":"http://…","Status":{"header":{…,"member_id":M,…},…,"leader":L,…}},…]
        for entry in out.split(r#"{"Endpoint":"#).skip(1) {
            let endpoint = entry.split('"').nth(1)?;
            let i = running
                .iter()
                .copied()
                .find(|&i| self.endpoint(i) == endpoint)?;
            let member: Option<u64> = json_int(entry, "member_id");
            let lead: Option<u64> = json_int(entry, "leader");
            match leader {
                None => leader = Some((lead?, None)),
                Some((l, _)) if Some(l) != lead => return None,
                Some(_) => {}
            }
            if member.is_some() && member == lead {
                leader = Some((lead?, Some(i)));
            }
        }
        leader?.1
    }

    /// Kills every member (SIGKILL by PID) and reaps them.
    pub fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.stop(i);
        }
    }

    /// Starts every member again (those running are killed first), all at once, then
    /// waits until each answers `/health` with true; panics with the logs after 30 s.
    pub fn restart_all(&mut self) {
        self.kill_all();
        for i in 0..self.members.len() {
            self.spawn(i, "existing");
        }
        let all: Vec<usize> = (0..self.members.len()).collect();
        if let Err(why) = self.wait_healthy(&all) {
            panic!("etcd cluster did not come back: {why}");
        }
    }

    /// Runs `etcdctl --endpoints=<all members> ARGS`: its stdout; panics with its stderr
    /// when it fails.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        match self.try_etcdctl(args) {
            Ok(out) => String::from_utf8_lossy(&out).into_owned(),
            Err(why) => panic!("{why}"),
        }
    }

    /// Runs `etcdctl --endpoints=<all members> ARGS`: its stdout, or the error with its
    /// exit status and stderr (for tests that expect a failure).
    pub fn try_etcdctl(&self, args: &[&str]) -> Result<Vec<u8>, String> {
        etcdctl(&self.endpoints().join(","), args, None)
    }

    /// Runs `etcdctl --endpoints=<member i> ARGS` (with `--consistency=s`, a `get`
    /// reads member `i`'s own copy): its stdout; panics with its stderr when it fails.
    pub fn etcdctl_on(&self, i: usize, args: &[&str]) -> String {
        match etcdctl(&self.endpoint(i), args, None) {
            Ok(out) => String::from_utf8_lossy(&out).into_owned(),
            Err(why) => panic!("{why}"),
        }
    }

    /// `etcdctl put KEY` with `value` (any bytes) on etcdctl's stdin.
    pub fn put(&self, key: &str, value: &[u8]) {
        if let Err(why) = etcdctl(
            &self.endpoints().join(","),
            &["put", "--", key],
            Some(value),
        ) {
            panic!("{why}");
        }
    }

    /// The value of `key` (a linearizable `etcdctl get KEY`), `None` when absent.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let out = match self.try_etcdctl(&["get", "--", key]) {
            Ok(out) => out,
            Err(why) => panic!("{why}"),
        };
        if out.is_empty() {
            return None;
        }
        // "KEY\nVALUE\n", the value's bytes as they are.
        let head = format!("{key}\n");
        let value = out
            .strip_prefix(head.as_bytes())
            .and_then(|v| v.strip_suffix(b"\n"))
            .unwrap_or_else(|| panic!("etcdctl get {key:?}: unexpected output {out:?}"));
        Some(value.to_vec())
    }

    /// The cluster's current revision (the header of a linearizable `get`).
    pub fn revision(&self) -> i64 {
        let out = self.etcdctl(&["get", "-w", "json", "--", "kindling-testkit/revision"]);
        json_int(&out, "revision")
            .unwrap_or_else(|| panic!("no revision in etcdctl's output {out:?}"))
    }

    /// Compacts the key space up to `rev` and waits for the compaction to be applied
    /// (`etcdctl compact REV --physical`).
    pub fn compact(&self, rev: i64) {
        self.etcdctl(&["compact", &rev.to_string(), "--physical"]);
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Runs etcdctl (API v3, no ETCDCTL_* variables of the caller's) on `endpoints`, with
/// `stdin` on its standard input when given (else empty).
fn etcdctl(endpoints: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let mut cmd = Command::new(ETCDCTL);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ETCDCTL") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {ETCDCTL}: {e}"));
    if let Some(bytes) = stdin {
        let mut w = child.stdin.take().expect("etcdctl's stdin");
        let bytes = bytes.to_vec();
        // A thread, so that a large value cannot deadlock against etcdctl's output.
        std::thread::spawn(move || {
            let _ = w.write_all(&bytes);
        });
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("run {ETCDCTL}: {e}"));
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "etcdctl --endpoints={endpoints} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}

/// Whether `GET http://127.0.0.1:PORT/health` answers `{"health":"true"}` (within a
/// few seconds).
fn healthy(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    // etcd's own check waits up to 1 s for a quorum read.
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let req =
        format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp);
    resp.starts_with("HTTP/1.1 200") && resp.contains(r#""health":"true""#)
}

/// The number after the first `"key":` in `json` (etcd's member ids need a `u64`).
fn json_int<T: std::str::FromStr>(json: &str, key: &str) -> Option<T> {
    let pat = format!("\"{key}\":");
    let rest = json[json.find(&pat)? + pat.len()..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `n` distinct loopback TCP ports free right now, all held at once while picking;
/// below the ephemeral range when it leaves room (else from the OS's `bind(0)`).
fn free_ports(n: usize) -> Vec<u16> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(0);
    const FLOOR: u16 = 10000;
    let mut held: Vec<TcpListener> = Vec::new();
    let mut ports = Vec::new();
    let random = RandomState::new();
    let mut tries = 0u64;
    while ports.len() < n {
        let port = if low > FLOOR + 1000 && tries < 1000 {
            tries += 1;
            FLOOR + (random.hash_one(tries) % u64::from(low - FLOOR)) as u16
        } else {
            0
        };
        // Both the client port and the peer port of a member must be free, and etcd
        // binds them on 127.0.0.1.
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            let p = l.local_addr().expect("listener's address").port();
            if !ports.contains(&p) {
                ports.push(p);
                held.push(l);
            }
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_int_reads_the_revision() {
        let h = r#"{"header":{"cluster_id":1,"member_id":2,"revision":17,"raft_term":3}}"#;
        assert_eq!(json_int(h, "revision"), Some(17i64));
        assert_eq!(json_int::<i64>(h, "nothing"), None);
        let s = r#"{"member_id":16191122711951888654,"leader":16191122711951888654}"#;
        assert_eq!(json_int(s, "leader"), Some(16191122711951888654u64));
    }

    #[test]
    fn free_ports_are_distinct_and_free() {
        let ports = free_ports(6);
        assert_eq!(ports.len(), 6);
        for (i, p) in ports.iter().enumerate() {
            assert!(!ports[i + 1..].contains(p));
            drop(TcpListener::bind(("127.0.0.1", *p)).expect("free"));
        }
    }

    #[test]
    fn etcd_three_members_survive_kills_and_a_restart_of_all() {
        let t = Instant::now();
        let Some(mut c) = EtcdCluster::start(3) else {
            return;
        };
        eprintln!("3-member etcd cluster healthy after {:?}", t.elapsed());
        assert_eq!(c.endpoints().len(), 3);
        assert_eq!(c.endpoints()[1], c.endpoint(1));

        // Any bytes, a key that looks like a flag.
        let value = b"line\n\0binary\xff\n".as_slice();
        c.put("-k", value);
        assert_eq!(c.get("-k").as_deref(), Some(value));
        assert_eq!(c.get("absent"), None);
        assert_eq!(
            c.etcdctl(&["get", "--print-value-only", "--", "-k"])
                .as_bytes()[..4],
            *b"line"
        );

        // The leader down: a quorum remains, and elects another.
        let leader = c.leader().expect("a leader");
        let t = Instant::now();
        c.kill(leader);
        eprintln!(
            "leader {leader} killed, the others healthy after {:?}",
            t.elapsed()
        );
        assert!(!c.is_running(leader));
        c.put("k2", b"two");
        assert_eq!(c.get("k2").as_deref(), Some(&b"two"[..]));
        assert_ne!(c.leader(), None);
        assert_ne!(c.leader(), Some(leader));

        // Back with its data directory; it catches up on what it missed.
        let t = Instant::now();
        c.restart(leader);
        eprintln!("member restarted after {:?}", t.elapsed());
        let deadline = Instant::now() + DEADLINE;
        let read = ["get", "--consistency=s", "--print-value-only", "k2"];
        while c.etcdctl_on(leader, &read) != "two\n" {
            assert!(
                Instant::now() < deadline,
                "member {leader} did not catch up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }

        // All down: nothing answers.
        let rev = c.revision();
        c.kill_all();
        let err = c
            .try_etcdctl(&[
                "--dial-timeout=1s",
                "--command-timeout=2s",
                "put",
                "k3",
                "x",
            ])
            .unwrap_err();
        eprintln!("with all members down: {err}");

        // All back: the data survived.
        let t = Instant::now();
        c.restart_all();
        eprintln!("all members restarted after {:?}", t.elapsed());
        assert_eq!(c.get("-k").as_deref(), Some(value));
        assert_eq!(c.get("k2").as_deref(), Some(&b"two"[..]));
        assert_eq!(c.revision(), rev);

        // A member restarted alone while the others are down waits only for its port.
        c.kill_all();
        c.restart(0);
        c.restart(2);
        assert_eq!(c.get("k2").as_deref(), Some(&b"two"[..]));
        c.restart(1);
        assert_eq!(c.get("-k").as_deref(), Some(value));

        // Dropping the cluster kills the members.
        let pids: Vec<i32> = c
            .members
            .iter()
            .map(|m| m.proc.as_ref().unwrap().pid())
            .collect();
        let dir = c.dir().to_path_buf();
        drop(c);
        for pid in pids {
            assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err());
        }
        assert!(!dir.exists());
    }

    #[test]
    fn etcd_members_are_killed_when_the_test_panics() {
        let pids = std::sync::Mutex::new(Vec::new());
        let dir = std::sync::Mutex::new(None);
        let unwound = std::panic::catch_unwind(|| {
            let Some(c) = EtcdCluster::start(1) else {
                return;
            };
            *pids.lock().unwrap() = c
                .members
                .iter()
                .map(|m| m.proc.as_ref().unwrap().pid())
                .collect();
            *dir.lock().unwrap() = Some(c.dir().to_path_buf());
            panic!("a failing test");
        });
        let pids = pids.into_inner().unwrap();
        if pids.is_empty() {
            return; // skipped: etcd not installed
        }
        assert!(unwound.is_err());
        for pid in pids {
            assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err());
        }
        assert!(!dir.into_inner().unwrap().unwrap().exists());
    }

    #[test]
    fn etcd_compact_drops_old_revisions() {
        let Some(c) = EtcdCluster::start(1) else {
            return;
        };
        c.put("k", b"a");
        let old = c.revision();
        c.put("k", b"b");
        let now = c.revision();
        assert_eq!(now, old + 1);
        assert_eq!(
            c.etcdctl(&["get", "--print-value-only", &format!("--rev={old}"), "k"]),
            "a\n"
        );
        c.compact(now);
        let err = c
            .try_etcdctl(&["get", &format!("--rev={old}"), "k"])
            .unwrap_err();
        assert!(err.contains("compacted"), "{err}");
        assert_eq!(c.get("k").as_deref(), Some(&b"b"[..]));
        assert_eq!(c.revision(), now);
    }
}
