//! Opt-in Ignition binding (`[http] ignition_binding = true`): `/ignition?mac=` is answered
//! only to the address that MAC boots from. The real binary runs inside one network
//! namespace, the client inside another with a known MAC, joined by a veth pair; both
//! namespaces are made by the test and removed (with the server, by PID) even when it fails.
//! Needs root; skipped with a message otherwise.

mod common;

use common::netns::Netns;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SERVER_IP: &str = "192.168.213.1";
const CLIENT_IP: &str = "192.168.213.2";
const CLIENT_MAC: &str = "02:4b:13:00:00:02";
const OTHER_MAC: &str = "02:4b:13:00:00:99";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn can_run(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP {test}: needs root (network namespaces)");
        return false;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("SKIP {test}: iproute2 `ip` not found");
        return false;
    }
    true
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The server, killed by its PID and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Lab {
    server_ns: Netns,
    client_ns: Netns,
}

fn lab() -> Lab {
    let s = Netns::new("s");
    let c = Netns::new("c");
    s.ip(&[
        "link", "add", "s0", "type", "veth", "peer", "name", "c0", "netns", &c.0,
    ]);
    s.ip(&["addr", "add", &format!("{SERVER_IP}/24"), "dev", "s0"]);
    s.ip(&["link", "set", "s0", "up"]);
    c.ip(&["link", "set", "c0", "address", CLIENT_MAC]);
    c.ip(&["addr", "add", &format!("{CLIENT_IP}/24"), "dev", "c0"]);
    c.ip(&["link", "set", "c0", "up"]);
    Lab {
        server_ns: s,
        client_ns: c,
    }
}

/// A data directory where every MAC gets the same Ignition (a default group).
fn data_dir(root: &Path) {
    for d in ["groups", "profiles", "ignition", "assets"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("groups/default.json"),
        r#"{"id":"default","profile":"p"}"#,
    )
    .unwrap();
    std::fs::write(
        root.join("profiles/p.json"),
        r#"{"id":"p","ignition_id":"node.ign"}"#,
    )
    .unwrap();
    std::fs::write(
        root.join("ignition/node.ign"),
        r#"{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core"}]}}"#,
    )
    .unwrap();
}

fn start_server(lab: &Lab, work: &Path, config: &str) -> (Proc, PathBuf) {
    let data = work.join("data");
    data_dir(&data);
    let cfg = work.join("kindling.toml");
    std::fs::write(&cfg, config).unwrap();
    let log = work.join(format!(
        "kindling-{}.log",
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let out = std::fs::File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.server_ns.0])
        .arg(env!("CARGO_BIN_EXE_kindling"))
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&data)
        .arg("--state-dir")
        .arg(work.join("state"))
        .arg("--cache-dir")
        .arg(work.join("cache"))
        .args(["--http-listen", &format!("{SERVER_IP}:8080")])
        .args(["--admin-listen", ""])
        .arg("--no-watch")
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KINDLING_") {
            cmd.env_remove(k);
        }
    }
    // `ip netns exec` execs the program: the child's PID is the server's.
    (Proc(cmd.spawn().expect("spawn kindling")), log)
}

/// Runs `f` on a thread that has entered the client's namespace.
fn in_client<T: Send>(lab: &Lab, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{}", lab.client_ns.0);
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::fd::AsRawFd;
            let fd = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns on this thread only, with a namespace file we hold open.
            let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("client thread")
    })
}

fn get(path: &str) -> Result<(u16, String), String> {
    let addr: SocketAddr = format!("{SERVER_IP}:8080").parse().unwrap();
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: boot\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {text:?}"))?;
    Ok((status, text))
}

fn wait_up(child: &mut Proc, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(st)) = child.0.try_wait() {
            panic!(
                "kindling exited with {st}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if matches!(get("/"), Ok((200, _))) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "kindling did not answer: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn scratch(tag: &str) -> Scratch {
    let p = std::env::temp_dir().join(format!(
        "kindling-binding-{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    Scratch(p)
}

#[test]
fn ignition_is_answered_only_to_the_address_the_mac_boots_from() {
    if !can_run("ignition_is_answered_only_to_the_address_the_mac_boots_from") {
        return;
    }
    let lab = lab();
    let work = scratch("on");
    let (mut server, log) = start_server(&lab, &work.0, "[http]\nignition_binding = true\n");
    let (own, other, dashes) = in_client(&lab, || {
        wait_up(&mut server, &log);
        (
            get(&format!("/ignition?mac={CLIENT_MAC}")),
            get(&format!("/ignition?mac={OTHER_MAC}")),
            get(&format!("/ignition?mac={}", CLIENT_MAC.replace(':', "-"))),
        )
    });
    let (st, body) = own.unwrap();
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"users\""), "{body}");
    let (st, body) = other.unwrap();
    assert_eq!(st, 403, "{body}");
    assert!(!body.contains("\"users\""), "{body}");
    assert_eq!(dashes.unwrap().0, 200, "any MAC spelling of its own MAC");
    // The log is written by a background thread: wait for the line (bounded), never
    // assume it is already there.
    let want = format!("{CLIENT_IP} is {CLIENT_MAC} in the neighbour table, not {OTHER_MAC}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut text = String::new();
    while std::time::Instant::now() < deadline {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(&want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(text.contains(&want), "the reason is logged: {text}");
    drop(server);
}

#[test]
fn without_binding_every_mac_is_answered() {
    if !can_run("without_binding_every_mac_is_answered") {
        return;
    }
    let lab = lab();
    let work = scratch("off");
    let (mut server, log) = start_server(&lab, &work.0, "");
    let (own, other) = in_client(&lab, || {
        wait_up(&mut server, &log);
        (
            get(&format!("/ignition?mac={CLIENT_MAC}")),
            get(&format!("/ignition?mac={OTHER_MAC}")),
        )
    });
    assert_eq!(own.unwrap().0, 200);
    assert_eq!(other.unwrap().0, 200, "matchbox-compatible by default");
    drop(server);
}
