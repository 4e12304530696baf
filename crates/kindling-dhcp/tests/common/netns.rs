//! Network namespaces and what runs in them, cleaned up by Drop guards even when a test
//! panics: a namespace is deleted by name, a process is stopped by its PID (SIGTERM, then
//! SIGKILL) and reaped. Every name contains "kindling"; nothing touches the host's interfaces.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

static NAMES: AtomicUsize = AtomicUsize::new(0);

/// True when the namespace tests can run; prints why not otherwise.
pub fn can_run(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP {test}: needs root (network namespaces)");
        return false;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("SKIP {test}: iproute2 `ip` not found");
        return false;
    }
    true
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let n = NAMES.fetch_add(1, Ordering::SeqCst);
        let name = format!("kindling-dhcp-{}-{n}-{tag}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ...`
    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v);
    }

    /// A command run inside the namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// A veth pair: `name` here, `peer` in `other`.
    pub fn veth(&self, name: &str, peer: &str, other: &Netns) {
        self.ip(&[
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            &other.name,
        ]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A child process, killed (SIGKILL) and reaped on drop.
pub struct Proc {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub err_lines: mpsc::Receiver<String>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let (tx, lines) = mpsc::channel();
        let (etx, err_lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(l);
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || {
                for l in BufReader::new(err).lines().map_while(Result::ok) {
                    let _ = etx.send(l);
                }
            });
        }
        Self {
            child,
            lines,
            err_lines,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for a stdout (or stderr) line containing `needle`.
    pub fn wait_for(
        &self,
        needle: &str,
        stderr: bool,
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let rx = if stderr { &self.err_lines } else { &self.lines };
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Ok(l),
                Ok(l) => seen.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(200));
                    break;
                }
            }
        }
        let err: Vec<String> = self.err_lines.try_iter().collect();
        Err(format!(
            "no line with {needle:?}; saw {seen:?}; stderr {err:?}"
        ))
    }

    /// SIGTERM, then wait up to 5 s (SIGKILL after).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first so that wrappers such as `timeout` pass it on to their child.
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// Runs `f` on a fresh thread that has entered namespace `ns` (sockets created there stay
/// in that namespace).
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let fd = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread")
    })
}

/// A UDP socket in `ns`, bound to `bind` on `device`, broadcast allowed.
pub fn udp_in(ns: &Netns, device: &str, bind: SocketAddrV4) -> UdpSocket {
    in_ns(&ns.name, || {
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .unwrap();
        s.set_reuse_address(true).unwrap();
        s.set_broadcast(true).unwrap();
        s.bind_device(Some(device.as_bytes())).unwrap();
        s.bind(&SocketAddr::V4(bind).into()).unwrap();
        let u: UdpSocket = s.into();
        u.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        u
    })
}
