//! Installing where users are (issue 14): a read-only matchbox directory served on the
//! built-in defaults with state and cache outside it, systemd's directories, the
//! configuration checked before anything is bound, and boot files nothing serves
//! explained before a machine asks for them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process, killed (by PID) when dropped, even when the test fails.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) until the log has `needle`; the log's text when it never does.
    fn wait_log(&mut self, needle: &str) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.log();
            if text.contains(needle) {
                return Ok(text);
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("exited with {st} before {needle:?}:\n{text}"));
            }
            if Instant::now() > deadline {
                return Err(format!("no {needle:?} within 60 s:\n{text}"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Every file below `dir`, relative, sorted.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if p.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// One HTTP/1.1 GET; (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Starts `kindling serve` in a private mount namespace where `/var/lib` and
/// `/var/cache` are fresh tmpfs mounts (so the built-in defaults, `/var/lib/kindling/state`
/// and `/var/cache/kindling`, are real and touch nothing of the host) and `seed` is
/// bind-mounted read-only at `/var/lib/matchbox`. `env` is added to the server's
/// environment; `args` follow `serve`.
fn serve_read_only(
    seed: &Path,
    work: &Path,
    env: &[(&str, &str)],
    args: &[String],
) -> (Proc, SocketAddr) {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = work.join(format!("serve-{port}.log"));
    let script = r#"set -eu
mount --make-rprivate /
mount -t tmpfs -o size=64m kindling-var-lib /var/lib
mount -t tmpfs -o size=64m kindling-var-cache /var/cache
mkdir -p /var/lib/matchbox
mount --bind "$SEED" /var/lib/matchbox
mount -o remount,bind,ro /var/lib/matchbox
# Proof that the data directory really is read-only for the server (root).
if touch /var/lib/matchbox/probe 2>/dev/null; then echo "data dir is writable" >&2; exit 97; fi
bin=$1; shift
exec "$bin" "$@""#;
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--", "sh", "-c", script, "sh"])
        .arg(env!("CARGO_BIN_EXE_kindling"))
        .arg("serve")
        .args(["--data-dir", "/var/lib/matchbox"])
        .args(["--http-listen", &addr.to_string()])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .args(args)
        .env("SEED", seed)
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("KINDLING_") || k == "STATE_DIRECTORY" || k == "CACHE_DIRECTORY" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn unshare");
    (Proc { child, log }, addr)
}

#[test]
fn serves_a_read_only_matchbox_directory_on_the_defaults() {
    if !is_root() || !have("unshare") {
        eprintln!("SKIP: needs root and unshare (a private mount namespace)");
        return;
    }
    let work = kindling_testkit::tempdir("deploy-ro");
    let seed = work.path().join("seed");
    copy_dir(&repo().join("examples/seed"), &seed);
    // A matchbox directory need not have every area: a missing one cannot be created on
    // a read-only mount, and is served as empty.
    std::fs::remove_dir_all(seed.join("cloud")).unwrap();
    let before = listing(&seed);
    let run = work.path().join("cwd");
    std::fs::create_dir_all(&run).unwrap();
    let (mut srv, addr) = serve_read_only(&seed, &run, &[], &[]);
    let log = srv.wait_log("ready").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        log.contains("data directory is not writable"),
        "no warning about the read-only data directory:\n{log}"
    );
    assert!(
        log.contains("state directory (boot journal) path=/var/lib/kindling/state"),
        "{log}"
    );
    assert!(log.contains("running on built-in defaults"), "{log}");
    let (status, body) = get(addr, "/ipxe?mac=00:24:1d:18:28:09");
    assert_eq!(status, 200, "{body}\n{}", srv.log());
    assert!(body.starts_with("#!ipxe"), "{body}");
    let (status, body) = get(addr, "/ignition?mac=00:24:1d:18:28:09");
    assert_eq!(status, 200, "{body}");
    // The boot was journalled in the state directory: the timeline has it.
    srv.wait_log("request").unwrap_or_else(|e| panic!("{e}"));
    drop(srv);
    assert_eq!(
        listing(&seed),
        before,
        "the server wrote into the data directory"
    );
}

#[test]
fn systemd_directories_hold_state_and_cache() {
    if !is_root() || !have("unshare") {
        eprintln!("SKIP: needs root and unshare (a private mount namespace)");
        return;
    }
    let work = kindling_testkit::tempdir("deploy-sd");
    let seed = work.path().join("seed");
    copy_dir(&repo().join("examples/seed"), &seed);
    let (mut srv, addr) = serve_read_only(
        &seed,
        work.path(),
        &[
            ("STATE_DIRECTORY", "/var/lib/kindling-unit"),
            (
                "CACHE_DIRECTORY",
                "/var/cache/kindling-unit:/var/cache/other",
            ),
        ],
        &[],
    );
    let log = srv.wait_log("ready").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        log.contains("state directory (boot journal) path=/var/lib/kindling-unit/state"),
        "{log}"
    );
    assert_eq!(get(addr, "/ipxe?mac=00:24:1d:18:28:09").0, 200);
}

/// `kindling serve` and `kindling check` on a configuration file; (exit code, stdout+stderr).
fn run(args: &[&str], cwd: &Path) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kindling"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KINDLING_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn every_table_is_checked_before_anything_binds() {
    let work = kindling_testkit::tempdir("deploy-cfg");
    // The HTTP port is held: had the server bound anything before checking, it would
    // fail on the port instead of on the configuration.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let cfg = work.path().join("bad.toml");
    std::fs::write(
        &cfg,
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n\
             [log]\nlevel = \"info,=x=y\"\n\
             [dhcp]\nscript_url = \"ftp://example/boot\"\n\
             [tftp]\nmax_blksize = 2\n\
             [fcos]\ninterval_secs = 0\n\
             [admin]\nlisten = \"0.0.0.0:0\"\n"
        ),
    )
    .unwrap();
    let data = work.path().join("data");
    copy_dir(&repo().join("examples/seed"), &data);
    let cfg_s = cfg.to_str().unwrap();
    let data_s = data.to_str().unwrap();
    let (code, out) = run(
        &["serve", "--config", cfg_s, "--data-dir", data_s],
        work.path(),
    );
    assert_eq!(code, 2, "{out}");
    assert!(!out.contains("in use"), "bound before checking:\n{out}");
    assert!(!out.contains("ready"), "{out}");
    let expected = [
        "[log] level \"info,=x=y\" is not a log filter",
        "dhcp.script_url",
        "tftp.max_blksize must be within 8..=65464, got 2",
        "fcos.interval_secs",
        "without credentials",
    ];
    for e in expected {
        assert_eq!(out.matches(e).count(), 1, "{e:?} not said once:\n{out}");
    }
    assert!(
        out.contains(cfg_s),
        "which file is wrong is not said:\n{out}"
    );
    // No message repeats its own cause ("x: x").
    for line in out.lines() {
        let parts: Vec<&str> = line.split(": ").map(str::trim).collect();
        for w in parts.windows(2) {
            assert_ne!(w[0], w[1], "repeated cause in {line:?}");
        }
    }
    // `kindling check --config` fails on the same errors.
    let (code, out) = run(
        &["check", "--config", cfg_s, "--data-dir", data_s],
        work.path(),
    );
    assert_eq!(code, 1, "{out}");
    for e in expected {
        assert_eq!(out.matches(e).count(), 1, "{e:?} not said once:\n{out}");
    }
    assert!(out.contains("error [config]"), "{out}");
    drop(held);
}

#[test]
fn which_configuration_was_loaded_is_said() {
    let work = kindling_testkit::tempdir("deploy-which");
    std::fs::write(
        work.path().join("kindling.toml"),
        "[tftp]\nmax_blksize = 3\n",
    )
    .unwrap();
    // ./kindling.toml from the working directory is used, and named with its full path.
    let (code, out) = run(&["serve"], work.path());
    assert_eq!(code, 2, "{out}");
    let abs = work.path().join("kindling.toml");
    assert!(
        out.contains(&format!("invalid configuration ({})", abs.display())),
        "{out}"
    );
}

/// `kindling check` with proxy DHCP and TFTP on and the iPXE binaries from `ipxe_dir`.
fn check_with_ipxe_dir(work: &Path, ipxe_dir: &Path, data: &str) -> String {
    let cfg = work.join(format!(
        "ipxe-{}.toml",
        ipxe_dir.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(
        &cfg,
        format!(
            "[dhcp]\nenabled = true\ninterfaces = [\"eth0\"]\n[tftp]\nenabled = true\nipxe_dir = \"{}\"\n",
            ipxe_dir.display()
        ),
    )
    .unwrap();
    run(
        &[
            "check",
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            data,
        ],
        work,
    )
    .1
}

#[test]
fn boot_files_nothing_serves_are_explained() {
    let work = kindling_testkit::tempdir("deploy-tftp");
    let data = work.path().join("data");
    copy_dir(&repo().join("examples/seed"), &data);
    let data_s = data.to_str().unwrap();
    // Proxy DHCP hands out undionly.kpxe and snponly.efi over TFTP, but TFTP is off.
    let off = work.path().join("off.toml");
    std::fs::write(&off, "[dhcp]\nenabled = true\ninterfaces = [\"eth0\"]\n").unwrap();
    let (_, out) = run(
        &[
            "check",
            "--config",
            off.to_str().unwrap(),
            "--data-dir",
            data_s,
        ],
        work.path(),
    );
    assert!(
        out.contains("dhcp.bios_binary \"undionly.kpxe\" is handed out over TFTP, but Kindling's TFTP server is off"),
        "{out}"
    );
    // TFTP on, but the iPXE directory (e.g. Debian's path on RHEL) has none of them.
    let empty = work.path().join("no-ipxe");
    std::fs::create_dir_all(&empty).unwrap();
    let out = check_with_ipxe_dir(work.path(), &empty, data_s);
    for f in ["undionly.kpxe", "snponly.efi"] {
        assert!(
            out.contains(&format!(
                "{f:?} is handed out over TFTP, but the TFTP server has no such file"
            )),
            "{f}: {out}"
        );
    }
    assert!(out.contains("http_boot_binary"), "{out}");
    // A Fedora/RHEL layout (/usr/share/ipxe with ipxe-bootimgs names) serves them all.
    let fedora = work.path().join("share-ipxe");
    std::fs::create_dir_all(&fedora).unwrap();
    for f in [
        "undionly.kpxe",
        "ipxe-x86_64.efi",
        "ipxe-snponly-x86_64.efi",
    ] {
        std::fs::write(fedora.join(f), b"MZ").unwrap();
    }
    let out = check_with_ipxe_dir(work.path(), &fedora, data_s);
    assert!(!out.contains("handed out"), "{out}");
}

#[test]
fn readiness_and_stop_are_told_to_systemd() {
    use std::os::unix::net::UnixDatagram;
    let work = kindling_testkit::tempdir("deploy-notify");
    let data = work.path().join("data");
    copy_dir(&repo().join("examples/seed"), &data);
    let sock_path = work.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let port = free_port();
    let log = work.path().join("serve.log");
    let child = Command::new(env!("CARGO_BIN_EXE_kindling"))
        .arg("serve")
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["--state-dir", work.path().join("state").to_str().unwrap()])
        .args(["--cache-dir", work.path().join("cache").to_str().unwrap()])
        .args(["--http-listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", ""])
        .env_remove("KINDLING_CONFIG")
        .env("NOTIFY_SOCKET", &sock_path)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut srv = Proc { child, log };
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("no READY=1 from kindling serve");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.starts_with("READY=1\n"), "{msg}");
    assert!(
        msg.contains(&format!("MAINPID={}", srv.child.id())),
        "{msg}"
    );
    // Ready means ready: the HTTP listener answers now.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(get(addr, "/boot.ipxe").0, 200);
    // SAFETY: kill(2) on our own child's PID.
    unsafe { libc::kill(srv.child.id() as i32, libc::SIGTERM) };
    let n = sock.recv(&mut buf).expect("no STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let st = srv.child.wait().unwrap();
    assert!(st.success(), "{st}: {}", srv.log());
}
