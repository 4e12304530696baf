//! Network namespaces the tests create (DHCP and TFTP traffic never leaves them) and the
//! processes run in them: kindling-testkit's, shared with the other crates' tests; and
//! `kindling serve` started in one, with a small HTTP client for it.
#![allow(unused_imports, dead_code)]

pub use kindling_testkit::{Netns, Proc, can_run, have, sh};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// `kindling serve` in `ns` from `work`: `work/kindling.toml` (written from `config`),
/// `work/data` (created if missing), `work/state`, `work/cache`, `--no-watch`, then `extra`
/// arguments (`--http-listen`, `--admin-listen`, ...); stdout and stderr go to `log`.
/// The environment's `KINDLING_*` variables are removed. `ip netns exec` execs the program,
/// so the process's PID is the server's.
pub fn serve_in(ns: &Netns, work: &Path, config: &str, extra: &[&str], log: &Path) -> Proc {
    let cfg = work.join("kindling.toml");
    std::fs::create_dir_all(work.join("data")).unwrap();
    std::fs::write(&cfg, config).unwrap();
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    let mut cmd = ns.cmd(env!("CARGO_BIN_EXE_kindling"));
    cmd.arg("serve")
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(work.join("data"))
        .arg("--state-dir")
        .arg(work.join("state"))
        .arg("--cache-dir")
        .arg(work.join("cache"))
        .arg("--no-watch")
        .args(extra)
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KINDLING_") {
            cmd.env_remove(k);
        }
    }
    Proc::adopt(cmd.spawn().expect("spawn kindling"))
}

/// GET `path` from `addr` (HTTP/1.1, `Connection: close`): the status and the whole
/// response as text. For a server in a namespace, call it inside: `ns.run(|| ...)`.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: kindling\r\nConnection: close\r\n\r\n"
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

/// GET `path` from the admin listener at 127.0.0.1:8082 (call inside the server's
/// namespace).
pub fn admin_get(path: &str) -> Result<(u16, String), String> {
    http_get(SocketAddr::from(([127, 0, 0, 1], 8082)), path)
}
