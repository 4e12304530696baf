//! Test support: run the real `kindling` binary on loopback and talk raw
//! HTTP/1.1 to it (exact bytes, any path, any method).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `kindling serve`, killed on drop.
pub struct Server {
    pub port: u16,
    pub child: Child,
    pub log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts `kindling serve` on `data` with extra arguments; waits until `/` answers.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        let log = data.with_extension("log");
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(env!("CARGO_BIN_EXE_kindling"))
                .args(["serve", "--data-dir"])
                .arg(data)
                .arg("--state-dir")
                .arg(data.with_extension("state"))
                .arg("--cache-dir")
                .arg(data.with_extension("cache"))
                .args(["--http-listen", &format!("127.0.0.1:{port}")])
                // Never the default admin port: tests run in parallel.
                .args(["--admin-listen", "127.0.0.1:0"])
                .args(extra)
                .env_remove("KINDLING_CONFIG")
                .current_dir(data.parent().unwrap())
                .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
                .stderr(Stdio::from(
                    std::fs::File::options().append(true).open(&log).unwrap(),
                ))
                .spawn()
                .expect("spawn kindling");
            let mut s = Server {
                port,
                child,
                log: log.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = s.child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return s;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = s.child.kill();
        }
        panic!(
            "kindling did not start; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.port, "GET", path, &[])
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether `needle` shows up in the log within 30 s (it is written from a background
    /// thread: a line may land after what caused it).
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

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request (`Connection: close`) and reads the whole response.
pub fn request(port: u16, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    try_request(port, method, target, headers).unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

pub fn try_request(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw, method == "HEAD").ok_or_else(|| {
        std::io::Error::other(format!(
            "unparseable response: {:?}",
            String::from_utf8_lossy(&raw)
        ))
    })
}

fn parse_response(raw: &[u8], head: bool) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head_text = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head_text.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = if head {
        Vec::new()
    } else {
        raw[end + 4..].to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

/// Writes a file atomically (temp file + rename), as editors and tools should.
pub fn write_atomic(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Creates the matchbox layout under `root`.
pub fn layout(root: &Path) {
    for d in [
        "groups", "profiles", "ignition", "generic", "cloud", "assets",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
}
