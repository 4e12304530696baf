//! Network namespaces the tests create, so that DHCP and TFTP traffic never reaches the
//! host's interfaces. Every name contains "kindling" and the PID of the test process; a
//! namespace is deleted by name when its [`Netns`] is dropped, also when the test panics
//! (its veth ends go with it).

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static NAMES: AtomicUsize = AtomicUsize::new(0);

/// True when namespace tests can run here (root, iproute2); says why not (`SKIP test: …`)
/// otherwise.
pub fn can_run(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP {test}: needs root (network namespaces)");
        return false;
    }
    if !have("ip") {
        eprintln!("SKIP {test}: iproute2 `ip` not found");
        return false;
    }
    true
}

/// Whether the program `bin` is on PATH.
pub fn have(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// Runs `args[0]` with the rest to its end; panics with its stderr when it fails.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// A network namespace with its loopback up, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// A new namespace `kindling-PID-N-TAG`; panics when it cannot be made.
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "kindling-{}-{}-{tag}",
            std::process::id(),
            NAMES.fetch_add(1, Ordering::SeqCst)
        );
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME args...`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v);
    }

    /// `program` to be run inside the namespace (`ip netns exec` execs it: the child's
    /// PID is the program's).
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `args` inside the namespace to its end; panics with its stderr when it fails.
    pub fn exec(&self, args: &[&str]) {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v);
    }

    /// A bridge `br0` with a tap device `tap0` in it, both up, for a QEMU VM
    /// (`-netdev tap,ifname=tap0`); the caller gives br0 its addresses.
    pub fn vm_bridge(&self) {
        self.ip(&["link", "add", "br0", "type", "bridge"]);
        self.ip(&["link", "set", "br0", "up"]);
        self.ip(&["tuntap", "add", "tap0", "mode", "tap"]);
        self.ip(&["link", "set", "tap0", "master", "br0"]);
        self.ip(&["link", "set", "tap0", "up"]);
    }

    /// A veth pair: `name` here, `peer` in `other`. Both ends are down.
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

    /// Runs `f` on a fresh thread that has entered this namespace: sockets it creates
    /// stay in the namespace. A panic in `f` goes on in the caller.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            let joined = s
                .spawn(|| {
                    let fd = std::fs::File::open(&path).expect("open the namespace");
                    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                    f()
                })
                .join();
            joined.unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// A UDP socket in this namespace bound to `bind` on `device` (address reuse and
    /// broadcast allowed, reads time out after 100 ms).
    pub fn udp(&self, device: &str, bind: SocketAddrV4) -> UdpSocket {
        self.run(|| {
            let s = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )
            .unwrap();
            s.set_reuse_address(true).unwrap();
            s.set_broadcast(true).unwrap();
            s.bind_device(Some(device.as_bytes())).unwrap();
            s.bind(&SocketAddr::V4(bind).into())
                .unwrap_or_else(|e| panic!("bind {bind} on {device}: {e}"));
            let u: UdpSocket = s.into();
            u.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            u
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_is_deleted_on_drop_also_after_a_panic() {
        if !can_run("a_namespace_is_deleted_on_drop_also_after_a_panic") {
            return;
        }
        let exists = |name: &str| std::path::Path::new(&format!("/run/netns/{name}")).exists();
        let a = Netns::new("tk-a");
        let b = Netns::new("tk-b");
        a.veth("tk0", "tk1", &b);
        a.ip(&["link", "set", "tk0", "up"]);
        let name = a.name().to_string();
        assert!(name.contains("kindling"), "{name}");
        assert!(exists(&name));
        // The loopback is up inside; the veth end is there.
        assert!(a.run(|| std::net::UdpSocket::bind("127.0.0.1:0").is_ok()));
        a.exec(&["ip", "link", "show", "tk0"]);
        drop(a);
        assert!(!exists(&name));

        let b_name = b.name().to_string();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _b = b;
            panic!("a failing test");
        }));
        assert!(r.is_err());
        assert!(!exists(&b_name));
    }

    #[test]
    fn a_panic_inside_run_reaches_the_caller() {
        if !can_run("a_panic_inside_run_reaches_the_caller") {
            return;
        }
        let ns = Netns::new("tk-p");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ns.run(|| panic!("inside"));
        }));
        let msg = r.unwrap_err();
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"inside"));
    }
}
