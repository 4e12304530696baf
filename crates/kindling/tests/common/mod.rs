//! Test harness for the matchbox conformance suite: a Kindling server on a private copy of a
//! data directory, and a raw HTTP/1.1 client that shows the exact bytes on the wire.
//!
//! Only `std` is used. The client writes the request bytes itself so that paths such as
//! `//ipxe` or `%2e%2e` reach the server unchanged.

#![allow(dead_code)]

pub mod netns;
pub mod pki;

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The response of one request, as parsed from the raw bytes.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the body came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

impl Response {
    /// All values of a header (name compared case-insensitively).
    pub fn all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of a header; an error when it is repeated.
    pub fn header(&self, name: &str) -> Result<Option<&str>, String> {
        let all = self.all(name);
        match all.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => Err(format!("header {name} sent {} times: {many:?}", many.len())),
        }
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Response, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kindling-conformance\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("Connection: close\r\n\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    stream
        .write_all(&bytes)
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    parse_response(&raw, method == "HEAD")
}

fn parse_response(raw: &[u8], head: bool) -> Result<Response, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {:?}", String::from_utf8_lossy(raw)))?;
    let head_text = std::str::from_utf8(&raw[..end]).map_err(|e| format!("header bytes: {e}"))?;
    let rest = &raw[end + 4..];
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version != "HTTP/1.1" {
        return Err(format!("status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
        chunked: false,
    };
    let no_body = head || status == 204 || status == 304 || (100..200).contains(&status);
    if no_body {
        // Whatever follows the headers is a protocol error for these responses: keep it so that
        // the caller sees it as a (wrong) body.
        resp.body = rest.to_vec();
        return Ok(resp);
    }
    let te = resp
        .header("transfer-encoding")?
        .map(str::to_ascii_lowercase);
    if te.as_deref() == Some("chunked") {
        resp.chunked = true;
        resp.body = dechunk(rest)?;
        return Ok(resp);
    }
    match resp.header("content-length")? {
        Some(cl) => {
            let n: usize = cl.parse().map_err(|_| format!("Content-Length {cl:?}"))?;
            if rest.len() != n {
                return Err(format!(
                    "Content-Length {n} but {} body bytes: {:?}",
                    rest.len(),
                    String::from_utf8_lossy(rest)
                ));
            }
            resp.body = rest.to_vec();
        }
        None => resp.body = rest.to_vec(),
    }
    Ok(resp)
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line")?;
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|e| e.to_string())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A private copy of a data directory in a temporary directory, removed on drop.
pub struct Scratch {
    pub root: PathBuf,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!(
            "kindling-conformance-{}-{}-{label}",
            std::process::id(),
            n
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("create scratch directory");
        Scratch { root }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Recursively copies a directory (regular files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let ty = entry.file_type().expect("file type");
        let dest = to.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &dest);
        } else if ty.is_file() {
            fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

/// Sets the modification time of every regular file and directory below `dir` (and `dir`
/// itself) to `when`, leaving symlinks alone. Directories are done after their contents.
pub fn set_mtimes(dir: &Path, when: SystemTime) {
    for entry in fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let ty = entry.file_type().expect("file type");
        if ty.is_dir() {
            set_mtimes(&entry.path(), when);
        } else if ty.is_file() {
            let f = fs::File::options()
                .write(true)
                .open(entry.path())
                .expect("open");
            f.set_modified(when).expect("set mtime");
        }
    }
    let d = fs::File::open(dir).expect("open dir");
    d.set_modified(when).expect("set dir mtime");
}

/// A running `kindling serve`, killed (by its PID) on drop.
pub struct Server {
    /// The boot listener.
    pub addr: SocketAddr,
    /// The admin listener (loopback, another free port), unless turned off.
    pub admin: SocketAddr,
    child: Child,
    pub log: PathBuf,
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl Server {
    /// Starts the server on `data_dir`, with its working directory and log in `work`.
    pub fn start(data_dir: &Path, work: &Path) -> Server {
        Self::start_with(data_dir, work, "", &[], |_| {})
    }

    /// Starts the server with this configuration file text and extra `serve` arguments;
    /// `setup` may change the command (e.g. its resource limits) before it is spawned.
    /// The admin listener gets a free loopback port and the journal `work/state` unless
    /// `extra` names them (`--admin-listen`, `--state-dir`); file watching is off unless
    /// the configuration sets `[reload] watch = true`.
    pub fn start_with(
        data_dir: &Path,
        work: &Path,
        config_text: &str,
        extra: &[&str],
        setup: impl Fn(&mut Command),
    ) -> Server {
        match Self::try_start_with(data_dir, work, config_text, extra, setup) {
            Ok(s) => s,
            Err(e) => panic!("kindling did not start: {e}"),
        }
    }

    /// [`Self::start_with`], returning the log when the server does not come up.
    pub fn try_start_with(
        data_dir: &Path,
        work: &Path,
        config_text: &str,
        extra: &[&str],
        setup: impl Fn(&mut Command),
    ) -> Result<Server, String> {
        let mut last_err = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
            let log = work.join(format!("kindling-{attempt}.log"));
            let config = work.join("kindling.toml");
            fs::write(&config, config_text).expect("write config");
            let out = fs::File::create(&log).expect("create log");
            let err = out.try_clone().expect("clone log");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_kindling"));
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("KINDLING_") {
                    cmd.env_remove(k);
                }
            }
            cmd.current_dir(work)
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .arg("--data-dir")
                .arg(data_dir)
                // Never the host's /var/lib/kindling/state or /var/cache/kindling: tests
                // run in parallel.
                .arg("--cache-dir")
                .arg(work.join("cache"))
                .arg("--http-listen")
                .arg(addr.to_string());
            if !extra.contains(&"--state-dir") {
                cmd.arg("--state-dir").arg(work.join("state"));
            }
            let watch = toml::from_str::<toml::Table>(config_text)
                .ok()
                .and_then(|t| t.get("reload")?.get("watch")?.as_bool())
                .unwrap_or(false);
            if !watch {
                cmd.arg("--no-watch");
            }
            if !extra.contains(&"--admin-listen") {
                cmd.arg("--admin-listen").arg(admin.to_string());
            }
            cmd.args(extra).stdin(Stdio::null()).stdout(out).stderr(err);
            setup(&mut cmd);
            let child = cmd.spawn().expect("spawn kindling");
            let mut server = Server {
                addr,
                admin,
                child,
                log,
            };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    // A configuration the server refuses will not start on another port.
                    if e.contains("exited with") && !e.contains("in use") {
                        return Err(e);
                    }
                    last_err = e
                }
            }
        }
        Err(last_err)
    }

    /// Waits for the process to end (after a signal the test sent it).
    #[allow(dead_code)]
    pub fn wait_exit(&mut self) {
        let _ = self.child.wait();
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "kindling exited with {status}; log:\n{}",
                    self.log_text()
                ));
            }
            if let Ok(r) = request(self.addr, "GET", "/", &[], b"")
                && r.status == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer on {}; log:\n{}",
                    self.addr,
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's process id (for signals).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether `needle` shows up in the log within 30 s: the server writes its log from
    /// a background thread, so a line may land after the request that caused it.
    #[allow(dead_code)]
    pub fn log_has(&self, needle: &str) -> bool {
        kindling_testkit::file_gains(&self.log, needle)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
