//! Two `kindling serve` in full DHCP mode on one segment with the SAME pool never hand one
//! address to two machines when they share etcd (`[store] backend = "etcd"`): each ACK is
//! first claimed under `<prefix>dhcp-leases/<ip>` with a compare-and-swap, and a server
//! that finds the address held by another MAC NAKs, so that the client starts over.
//!
//! The lab, all in network namespaces the test creates (no DHCP leaves them): `lan` holds
//! a bridge br0 (192.168.215.254/24, where an etcd of the test's own listens), two server
//! namespaces with a veth into br0 (192.168.215.1 and .2), and one client namespace with
//! 24 veth pairs into br0, one MAC each. The clients are busybox udhcpc, run in three
//! waves, the clients of a wave all at once:
//!
//! 1. 8 clients while only server 1 runs;
//! 2. server 2 starts afresh (its own lease table empty) and server 1 is frozen (SIGSTOP):
//!    4 clients get their offers from server 2 alone, which offers the first addresses
//!    of the pool, those server 1 gave to wave 1;
//! 3. server 1 goes on (SIGCONT): the last 12 clients race both servers.
//!
//! Wave 2 is what makes the control certain: two servers that start together with the
//! same pool and hear the same DISCOVERs in the same order offer each client the same
//! address, so 24 clients at once against both showed no duplicate in 6 runs of 6. Waves
//! 1 and 2 are a fleet's ordinary life (a server that joins later, one that does not
//! answer for a while).
//!
//! * `fleet_servers_sharing_etcd_never_lease_one_address_twice`: every client gets an
//!   address of the pool, the 24 addresses are pairwise distinct, and etcd's
//!   `dhcp-leases/` keys hold each client's address with its MAC (how many clients each
//!   server bound, and the NAKs, are printed).
//! * `servers_without_a_shared_store_lease_one_address_twice` (the control): the same lab
//!   without `[store]` (each server with its own lease file) hands at least one address to
//!   two clients, which shows that the first test can fail.
//!
//! Namespaces and processes (etcd, servers, clients) are removed even when a test fails;
//! a failure prints the servers' logs, the clients' hook records and etcd's keys. Needs
//! root, busybox, and for the first test /usr/bin/etcd and etcdctl (Debian etcd-server,
//! etcd-client) and the `etcd` feature (`cargo test -p kindling --features etcd --test
//! fleet_dhcp`); skipped with a message otherwise. Deadlines are generous (minutes) and
//! only bound the waiting.

use std::collections::{BTreeMap, HashMap};

use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::netns::{admin_get, serve_in};
use kindling_testkit::{Netns, Proc, TempDir, can_run, have};

/// Clients (udhcpc, one interface and MAC each).
const CLIENTS: usize = 24;
/// Clients of the first wave, while server 1 is alone.
const FIRST_WAVE: usize = 8;
/// Clients of the second wave, while server 2 alone answers.
const SECOND_WAVE: usize = 4;
const NET: &str = "192.168.215";
/// br0's address in `lan`, where etcd listens (and the router of the subnet).
const LAN_IP: &str = "192.168.215.254";
const ETCD_URL: &str = "http://192.168.215.254:23799";
#[cfg(feature = "etcd")]
const ETCD_PEER: &str = "http://127.0.0.1:23800";
#[cfg(feature = "etcd")]
const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";
/// Where the servers claim their leases (`[store] prefix` is the default).
const LEASE_KEYS: &str = "/kindling/dhcp-leases/";
/// The pool, the same on both servers: 40 addresses for 24 clients.
const POOL: Range<u8> = 100..140;
/// The interface of each server in its namespace.
const SERVER_IFACE: &str = "srv";
/// The longest wait for anything that must happen (etcd, a server, a wave of clients).
const DEADLINE: Duration = Duration::from_secs(240);

fn mac(i: usize) -> String {
    format!("02:5a:00:00:00:{i:02x}")
}

fn server_ip(n: usize) -> String {
    format!("{NET}.{n}")
}

/// `program` in `ns` without the caller's `ETCD*` and `KINDLING_*` variables (etcd takes
/// every `ETCD_*` variable as a flag; Kindling every `KINDLING_*` as a setting).
fn clean_cmd(ns: &Netns, program: &str) -> Command {
    let mut cmd = ns.cmd(program);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("ETCD") || k.starts_with("KINDLING_") {
            cmd.env_remove(&*k);
        }
    }
    cmd
}

/// The last `n` lines of the file at `p` (or why it cannot be read).
fn tail(p: &Path, n: usize) -> String {
    match std::fs::read_to_string(p) {
        Ok(t) => {
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("({}: {e})", p.display()),
    }
}

struct Server {
    /// 1 or 2: its namespace is `Lab::servers_ns[n - 1]`, its address `NET.n`.
    n: usize,
    proc: Proc,
    log: PathBuf,
}

/// The namespaces, processes and files of one test. Fields drop in order: the clients
/// and servers are stopped, then etcd, then the namespaces go, then the directory.
struct Lab {
    servers: Vec<Server>,
    etcd: Option<Proc>,
    clients: Netns,
    servers_ns: Vec<Netns>,
    lan: Netns,
    dir: TempDir,
    /// Whether the servers share etcd.
    shared: bool,
}

impl Lab {
    /// The namespaces and links (no process yet); `tag` names them.
    fn new(tag: &str, shared: bool) -> Lab {
        let dir = kindling_testkit::tempdir(tag);
        let lan = Netns::new(&format!("{tag}-lan"));
        lan.ip(&["link", "add", "br0", "type", "bridge"]);
        lan.ip(&["addr", "add", &format!("{LAN_IP}/24"), "dev", "br0"]);
        lan.ip(&["link", "set", "br0", "up"]);
        let mut servers_ns = Vec::new();
        for n in 1..=2 {
            let s = Netns::new(&format!("{tag}-s{n}"));
            let port = format!("vs{n}");
            s.veth(SERVER_IFACE, &port, &lan);
            s.ip(&[
                "addr",
                "add",
                &format!("{}/24", server_ip(n)),
                "dev",
                SERVER_IFACE,
            ]);
            s.ip(&["link", "set", SERVER_IFACE, "up"]);
            lan.ip(&["link", "set", &port, "master", "br0"]);
            lan.ip(&["link", "set", &port, "up"]);
            servers_ns.push(s);
        }
        let clients = Netns::new(&format!("{tag}-c"));
        for i in 0..CLIENTS {
            let (c, port) = (format!("c{i}"), format!("vc{i}"));
            clients.veth(&c, &port, &lan);
            clients.ip(&["link", "set", &c, "address", &mac(i)]);
            clients.ip(&["link", "set", &c, "up"]);
            lan.ip(&["link", "set", &port, "master", "br0"]);
            lan.ip(&["link", "set", &port, "up"]);
        }
        std::fs::create_dir_all(dir.path().join("clients")).unwrap();
        let hook = dir.path().join("hook.sh");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\n\
                 # udhcpc's hook: the bound leases, and every call.\n\
                 if [ \"$1\" = bound ]; then\n\
                 \techo \"$interface $ip $serverid\" >> {bound}\n\
                 fi\n\
                 echo \"$1 $interface ip=$ip serverid=$serverid message=$message\" >> {events}\n\
                 exit 0\n",
                bound = dir.path().join("bound").display(),
                events = dir.path().join("events").display(),
            ),
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        Lab {
            servers: Vec::new(),
            etcd: None,
            clients,
            servers_ns,
            lan,
            dir,
            shared,
        }
    }

    /// etcd in `lan` on br0's address; waits until `etcdctl endpoint health` succeeds.
    #[cfg(feature = "etcd")]
    fn start_etcd(&mut self) {
        let log_path = self.dir.path().join("etcd.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = clean_cmd(&self.lan, ETCD);
        cmd.args(["--name", "lab"])
            .arg("--data-dir")
            .arg(self.dir.path().join("etcd"))
            .args(["--listen-client-urls", ETCD_URL])
            .args(["--advertise-client-urls", ETCD_URL])
            .args(["--listen-peer-urls", ETCD_PEER])
            .args(["--initial-advertise-peer-urls", ETCD_PEER])
            .args(["--initial-cluster", &format!("lab={ETCD_PEER}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut etcd = Proc::adopt(cmd.spawn().expect("spawn etcd"));
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(st)) = etcd.child.try_wait() {
                panic!("etcd exited ({st}): {}", tail(&log_path, 40));
            }
            let ok = self
                .etcdctl(&["endpoint", "health"])
                .is_ok_and(|o| o.status.success());
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "etcd not healthy after {DEADLINE:?}: {}",
                tail(&log_path, 40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.etcd = Some(etcd);
    }

    /// etcdctl (inside `lan`) against the lab's etcd.
    fn etcdctl(&self, args: &[&str]) -> std::io::Result<std::process::Output> {
        clean_cmd(&self.lan, ETCDCTL)
            .args(["--endpoints", ETCD_URL, "--command-timeout", "20s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    /// The keys under [`LEASE_KEYS`] and their values (one line each).
    fn etcd_leases(&self) -> Result<BTreeMap<String, String>, String> {
        let out = self
            .etcdctl(&["get", "--prefix", LEASE_KEYS])
            .map_err(|e| format!("etcdctl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "etcdctl get failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // etcdctl prints each key on a line and its value after it, as is: a value that
        // ends with a newline is followed by an empty line.
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let mut keys = BTreeMap::new();
        while let Some(k) = lines.next() {
            if k.starts_with(LEASE_KEYS) {
                keys.insert(k.to_string(), lines.next().unwrap_or("").to_string());
            }
        }
        Ok(keys)
    }

    /// `kindling serve` number `n` (1 or 2) in its namespace, with its own directories;
    /// returns once its `/readyz` answers 200.
    fn start_server(&mut self, n: usize) {
        let work = self.dir.path().join(format!("server{n}"));
        for d in ["data/groups", "data/profiles", "state"] {
            std::fs::create_dir_all(work.join(d)).unwrap();
        }
        let store = if self.shared {
            format!("[store]\nbackend = \"etcd\"\nendpoints = [\"{ETCD_URL}\"]\n")
        } else {
            String::new()
        };
        let config = format!(
            "{store}[dhcp]
enabled = true
interfaces = [\"{SERVER_IFACE}\"]
mode = \"full\"
ping_check = false
[[dhcp.subnets]]
network = \"{NET}.0/24\"
pools = [\"{NET}.{}-{NET}.{}\"]
router = \"{LAN_IP}\"
lease_secs = 900
",
            POOL.start,
            POOL.end - 1
        );
        let log = work.join("kindling.log");
        let ns = &self.servers_ns[n - 1];
        let http = format!("{}:8080", server_ip(n));
        let extra = ["--http-listen", &http, "--admin-listen", "127.0.0.1:8082"];
        let mut proc = serve_in(ns, &work, &config, &extra, &log);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(st)) = proc.child.try_wait() {
                panic!("server {n} exited with {st}: {}", tail(&log, 60));
            }
            if let Ok((200, _)) = ns.run(|| admin_get("/readyz")) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "server {n} not ready after {DEADLINE:?}: {}",
                tail(&log, 60)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.servers.push(Server { n, proc, log });
    }

    /// busybox udhcpc on the interfaces of `which`, all at once, each until it has a
    /// lease (-q) or gives up (-n, 10 DISCOVERs 2 s apart); waits for all of them.
    fn run_clients(&self, which: Range<usize>) {
        let hook = self.dir.path().join("hook.sh");
        let mut procs: Vec<(usize, Proc)> = which
            .map(|i| {
                let log = std::fs::File::create(self.dir.path().join(format!("clients/c{i}.log")))
                    .unwrap();
                let mut cmd = self.clients.cmd("busybox");
                cmd.args(["udhcpc", "-i", &format!("c{i}"), "-q", "-n"])
                    .args(["-t", "10", "-T", "2", "-s"])
                    .arg(&hook)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log);
                (i, Proc::adopt(cmd.spawn().expect("spawn busybox udhcpc")))
            })
            .collect();
        let deadline = Instant::now() + DEADLINE;
        while !procs.is_empty() {
            procs.retain_mut(|(i, p)| match p.child.try_wait() {
                Ok(Some(st)) => {
                    if !st.success() {
                        eprintln!("udhcpc on c{i} exited with {st}");
                    }
                    false
                }
                _ => true,
            });
            if Instant::now() > deadline {
                let left: Vec<usize> = procs.iter().map(|(i, _)| *i).collect();
                eprintln!("udhcpc still running after {DEADLINE:?} on {left:?}: stopped");
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Each client's bound lease (interface index → address, server id) from the hook's
    /// records; a client bound twice is an error.
    fn bound(&self) -> Result<BTreeMap<usize, (Ipv4Addr, String)>, String> {
        let text = std::fs::read_to_string(self.dir.path().join("bound")).unwrap_or_default();
        let mut out = BTreeMap::new();
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (Some(iface), Some(ip)) = (f.first(), f.get(1)) else {
                return Err(format!("bad hook line {l:?}"));
            };
            let i: usize = iface
                .strip_prefix('c')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("bad interface in {l:?}"))?;
            let ip: Ipv4Addr = ip.parse().map_err(|e| format!("{l:?}: {e}"))?;
            let server = f.get(2).unwrap_or(&"-").to_string();
            if out.insert(i, (ip, server)).is_some() {
                return Err(format!("c{i} bound twice: {text}"));
            }
        }
        Ok(out)
    }

    /// The hook's NAK records.
    fn naks(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("events"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("nak "))
            .map(str::to_string)
            .collect()
    }

    /// Everything worth seeing when a test fails.
    fn dump(&self) -> String {
        let mut s = String::new();
        for srv in &self.servers {
            s += &format!(
                "\n===== server {} log (last 150 lines):\n{}\n",
                srv.n,
                tail(&srv.log, 150)
            );
        }
        for f in ["bound", "events"] {
            s += &format!(
                "\n===== hook file {f}:\n{}\n",
                tail(&self.dir.path().join(f), 400)
            );
        }
        for i in 0..CLIENTS {
            let log = self.dir.path().join(format!("clients/c{i}.log"));
            s += &format!("\n----- udhcpc c{i}:\n{}\n", tail(&log, 30));
        }
        if self.etcd.is_some() {
            s += &format!(
                "\n===== etcd dhcp-leases/ keys:\n{:#?}\n",
                self.etcd_leases()
            );
            s += &format!(
                "\n===== etcd log (last 40 lines):\n{}\n",
                tail(&self.dir.path().join("etcd.log"), 40)
            );
        }
        s
    }

    /// Sends `signal` (`STOP`, `CONT`) to server `n`.
    fn signal(&self, n: usize, signal: &str) {
        let s = self
            .servers
            .iter()
            .find(|s| s.n == n)
            .expect("server started");
        kindling_testkit::sh(&["kill", &format!("-{signal}"), &s.proc.pid().to_string()]);
    }

    /// The three waves of the module's documentation. Returns the bound leases, after
    /// checking that every client got an address of the pool.
    fn run(&mut self) -> BTreeMap<usize, (Ipv4Addr, String)> {
        let t = Instant::now();
        self.start_server(1);
        self.run_clients(0..FIRST_WAVE);
        self.start_server(2);
        self.signal(1, "STOP");
        self.run_clients(FIRST_WAVE..FIRST_WAVE + SECOND_WAVE);
        self.signal(1, "CONT");
        self.run_clients(FIRST_WAVE + SECOND_WAVE..CLIENTS);
        eprintln!(
            "clients done {:.1?} after the first server's start",
            t.elapsed()
        );
        let exited: Vec<String> = self
            .servers
            .iter_mut()
            .filter_map(|s| match s.proc.child.try_wait() {
                Ok(Some(st)) => Some(format!("server {} exited with {st}", s.n)),
                _ => None,
            })
            .collect();
        assert!(exited.is_empty(), "{exited:?}{}", self.dump());
        let bound = self
            .bound()
            .unwrap_or_else(|e| panic!("{e}{}", self.dump()));
        let missing: Vec<usize> = (0..CLIENTS).filter(|i| !bound.contains_key(i)).collect();
        assert!(
            missing.is_empty(),
            "clients without a lease: {missing:?}{}",
            self.dump()
        );
        for (i, (ip, _)) in &bound {
            let o = ip.octets();
            assert!(
                format!("{}.{}.{}", o[0], o[1], o[2]) == NET && POOL.contains(&o[3]),
                "c{i} got {ip}, not in the pool{}",
                self.dump()
            );
        }
        let mut per_server: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, server) in bound.values() {
            *per_server.entry(server.as_str()).or_default() += 1;
        }
        eprintln!("leases bound per server: {per_server:?}");
        let naks = self.naks();
        eprintln!("NAKs the clients heard: {}", naks.len());
        for n in &naks {
            eprintln!("  {n}");
        }
        bound
    }
}

/// The addresses bound by more than one client, with those clients.
fn duplicates(bound: &BTreeMap<usize, (Ipv4Addr, String)>) -> BTreeMap<Ipv4Addr, Vec<String>> {
    let mut by_ip: HashMap<Ipv4Addr, Vec<String>> = HashMap::new();
    for (i, (ip, server)) in bound {
        by_ip
            .entry(*ip)
            .or_default()
            .push(format!("c{i} {} from {server}", mac(*i)));
    }
    by_ip.into_iter().filter(|(_, c)| c.len() > 1).collect()
}

fn prerequisites(test: &str) -> bool {
    if !can_run(test) {
        return false;
    }
    if !have("busybox") {
        eprintln!("SKIP {test}: busybox missing");
        return false;
    }
    true
}

#[cfg(feature = "etcd")]
#[test]
fn fleet_servers_sharing_etcd_never_lease_one_address_twice() {
    let test = "fleet_servers_sharing_etcd_never_lease_one_address_twice";
    if !prerequisites(test) {
        return;
    }
    for bin in [ETCD, ETCDCTL] {
        if !Path::new(bin).is_file() {
            eprintln!("SKIP {test}: {bin} missing (Debian etcd-server, etcd-client)");
            return;
        }
    }
    let started = Instant::now();
    let mut lab = Lab::new("fdhcp", true);
    lab.start_etcd();
    let bound = lab.run();

    let dups = duplicates(&bound);
    assert!(
        dups.is_empty(),
        "addresses leased to more than one client: {dups:#?}{}",
        lab.dump()
    );

    let keys = lab
        .etcd_leases()
        .unwrap_or_else(|e| panic!("{e}{}", lab.dump()));
    for (i, (ip, _)) in &bound {
        let key = format!("{LEASE_KEYS}{ip}");
        let value = keys.get(&key).unwrap_or_else(|| {
            panic!(
                "no key {key} for c{i} ({}) in etcd: {keys:#?}{}",
                mac(*i),
                lab.dump()
            )
        });
        let fields: Vec<&str> = value.split_whitespace().collect();
        assert!(
            fields.len() == 3 && fields[0] == mac(*i) && fields[1].parse::<u64>().is_ok(),
            "{key} = {value:?}, not `{} <expires> <server>`{}",
            mac(*i),
            lab.dump()
        );
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for v in keys.values() {
        *names
            .entry(v.split_whitespace().nth(2).unwrap_or("-"))
            .or_default() += 1;
    }
    eprintln!("claims in etcd per server name: {names:?}");
    eprintln!(
        "{test}: {} clients, {} distinct addresses, {} claims in etcd, {:.1?}",
        bound.len(),
        bound.len(),
        keys.len(),
        started.elapsed()
    );
}

#[test]
fn servers_without_a_shared_store_lease_one_address_twice() {
    let test = "servers_without_a_shared_store_lease_one_address_twice";
    if !prerequisites(test) {
        return;
    }
    let started = Instant::now();
    let mut lab = Lab::new("fdhcp-ctl", false);
    let bound = lab.run();
    let dups = duplicates(&bound);
    eprintln!("{test}: duplicates {dups:#?}");
    assert!(
        !dups.is_empty(),
        "without a shared store every address went to one client only: the control \
         did not show the problem{}",
        lab.dump()
    );
    eprintln!(
        "{test}: {} addresses leased twice or more, {:.1?}",
        dups.len(),
        started.elapsed()
    );
}
