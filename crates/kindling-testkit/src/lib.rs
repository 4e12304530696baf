//! Test helpers shared by Kindling's crates; a dev-dependency only, never shipped.
//!
//! * [`etcd`]: a real etcd cluster on loopback (members killed and restarted, `etcdctl`
//!   writes behind the servers' backs), killed by PID on drop, also when the test panics;
//! * [`netns`]: network namespaces the test creates (veth pairs, commands and sockets
//!   inside), deleted by name on drop, also when the test panics;
//! * [`proc`]: child processes with their output as lines, stopped by PID on drop;
//! * here: temporary directories, a closed loopback port, re-running this test binary
//!   as a child process, files scripts/install-deps keeps in the user's cache.

pub mod etcd;
pub mod netns;
pub mod proc;

pub use etcd::EtcdCluster;
pub use netns::{Netns, can_run, have, sh};
pub use proc::Proc;
pub use tempfile::TempDir;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A file scripts/install-deps keeps in the user's cache (`~/.cache/kindling/NAME`, or
/// under `$XDG_CACHE_HOME`), or the path in the environment variable `env` when it is set;
/// `None` when there is no such file.
pub fn cached_file(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("kindling").join(name)).filter(|p| p.exists())
}

/// A temporary directory named `kindling-TAG-…` under the system's temporary
/// directory, removed (with its contents) on drop.
pub fn tempdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("kindling-{tag}-"))
        .tempdir()
        .expect("create a temporary directory")
}

/// Whether the file at `path` comes to contain `needle` within 30 s. A server writes its
/// log from a background thread, so a line may land after the request (or the start-up)
/// that caused it: a test that reads the log at once depends on the machine's load.
pub fn file_gains(path: &Path, needle: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A loopback TCP port nothing listens on, and the OS's words for connecting to it
/// (Linux: "Connection refused", without the "(os error N)" tail).
pub fn closed_port() -> (u16, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let e = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    let words = e.to_string();
    let words = words.split(" (os error").next().unwrap().to_string();
    (port, words)
}

/// This test binary again, running only the test `test` (exactly, one thread, output
/// not captured), without the `KINDLING_LOG*` variables of the caller's environment.
/// For code that sets up process-wide state (a CLI's logging): the test `test` reads
/// its case from variables the caller adds with `.env(..)` and does nothing when they
/// are absent (so that it passes as an ordinary test).
pub fn rerun_self(test: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current test binary"));
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env_remove("KINDLING_LOG")
        .env_remove("KINDLING_LOG_FORMAT");
    cmd
}

/// Runs `cmd` to its end: its exit code (-1 when killed by a signal) and its stderr.
pub fn code_and_stderr(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("run the child process");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn closed_port_is_refused() {
        let (port, words) = super::closed_port();
        assert_ne!(port, 0);
        assert!(!words.contains("os error"), "{words}");
    }

    #[test]
    fn tempdir_is_removed_on_drop() {
        let d = super::tempdir("testkit");
        let p = d.path().to_path_buf();
        assert!(p.is_dir());
        assert!(
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("kindling-testkit-")
        );
        std::fs::write(p.join("f"), b"x").unwrap();
        drop(d);
        assert!(!p.exists());
    }
}
