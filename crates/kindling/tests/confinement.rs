//! Issue 13, item 1: the symlink swap race. A name inside `assets/`, `ignition/`,
//! `generic/` and `cloud/` flips between a regular file and a symlink to a file outside
//! the data directory (both prepared as separate entries and renamed atomically over the
//! name, in a loop) while keep-alive HTTP clients on several threads request it from the
//! real `kindling serve`. Not one byte of the outside file may appear in any response.
//!
//! No timing assumptions: the run counts outcomes over a fixed number of requests.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Scratch, Server};

/// In every outside file, so that any leaked byte range of a response shows it.
const MARKER: &str = "OUTSIDE-MARKER-5d1e2c";
const CLIENTS: usize = 8;
const REQUESTS_PER_CLIENT: usize = 3_000;

/// One flipping name: its area, the request that serves it, and the inside content.
struct Target {
    area: &'static str,
    name: &'static str,
    request: &'static str,
    inside: String,
    outside: String,
}

fn targets() -> Vec<Target> {
    // The outside files repeat the marker so that a response truncated to the inside
    // file's length (the old `/assets/` behaviour) still carries it.
    let outside = |prefix: &str| format!("{prefix}{}", format!("{MARKER}\n").repeat(200));
    vec![
        Target {
            area: "assets",
            name: "race.txt",
            request: "/assets/race.txt",
            inside: "inside asset\n".repeat(300),
            outside: outside(""),
        },
        Target {
            area: "ignition",
            name: "race.ign",
            request: "/ignition?mac=52:54:00:00:00:01",
            inside: "{\"ignition\":{\"version\":\"3.4.0\"}}\n".into(),
            outside: format!("{{\"secret\":\"{}\"}}\n", MARKER.repeat(50)),
        },
        Target {
            area: "generic",
            name: "race.tmpl",
            request: "/generic?mac=52:54:00:00:00:01",
            inside: "inside generic {{.request.query.mac}}\n".into(),
            outside: outside(""),
        },
        Target {
            area: "cloud",
            name: "race.yaml",
            request: "/cloud?mac=52:54:00:00:00:01",
            inside: "#cloud-config\ninside: true\n".into(),
            outside: outside("#cloud-config\n# "),
        },
    ]
}

fn write_data(data: &Path, outside_dir: &Path, targets: &[Target]) {
    for d in [
        "groups", "profiles", "ignition", "generic", "cloud", "assets",
    ] {
        fs::create_dir_all(data.join(d)).unwrap();
    }
    fs::write(
        data.join("profiles/race.json"),
        r#"{"id":"race","boot":{"kernel":"/assets/k"},"ignition_id":"race.ign","generic_id":"race.tmpl","cloud_id":"race.yaml"}"#,
    )
    .unwrap();
    fs::write(
        data.join("groups/race.json"),
        r#"{"id":"race","profile":"race","selector":{"mac":"52:54:00:00:00:01"}}"#,
    )
    .unwrap();
    fs::create_dir_all(outside_dir).unwrap();
    for t in targets {
        fs::write(data.join(t.area).join(t.name), &t.inside).unwrap();
        fs::write(data.join(t.area).join(".inside"), &t.inside).unwrap();
        fs::write(outside_dir.join(t.area), &t.outside).unwrap();
    }
}

/// Flips `dir/name` between a hard link of `dir/.inside` and a symlink to `outside`, each
/// prepared under a temporary name and renamed over `name`, until `stop`.
fn flipper(dir: PathBuf, name: &'static str, outside: PathBuf, stop: Arc<AtomicBool>) -> u64 {
    let target = dir.join(name);
    let tmp_file = dir.join(".swap-file");
    let tmp_link = dir.join(".swap-link");
    let mut flips = 0;
    while !stop.load(Ordering::Relaxed) {
        let _ = fs::remove_file(&tmp_link);
        std::os::unix::fs::symlink(&outside, &tmp_link).unwrap();
        fs::rename(&tmp_link, &target).unwrap();
        let _ = fs::remove_file(&tmp_file);
        fs::hard_link(dir.join(".inside"), &tmp_file).unwrap();
        fs::rename(&tmp_file, &target).unwrap();
        flips += 2;
        // Leave the CPUs to the server and the clients now and then.
        std::thread::yield_now();
    }
    flips
}

/// A keep-alive HTTP/1.1 client: reconnects when the server closes the connection.
struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    /// (status, body), or an error after retries.
    fn get(&mut self, target: &str) -> Result<(u16, Vec<u8>), String> {
        let mut last = String::new();
        for _ in 0..5 {
            match self.try_get(target) {
                Ok(r) => return Ok(r),
                Err(e) => {
                    self.conn = None;
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn try_get(&mut self, target: &str) -> Result<(u16, Vec<u8>), String> {
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(30))
                .map_err(|e| format!("connect: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            s.set_nodelay(true).unwrap();
            self.conn = Some(BufReader::new(s));
        }
        let conn = self.conn.as_mut().unwrap();
        conn.get_mut()
            .write_all(format!("GET {target} HTTP/1.1\r\nHost: race\r\n\r\n").as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        let mut line = String::new();
        conn.read_line(&mut line)
            .map_err(|e| format!("read: {e}"))?;
        if line.is_empty() {
            return Err("connection closed".into());
        }
        let status: u16 = line
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("status line {line:?}"))?;
        let mut len = 0usize;
        let mut close = false;
        loop {
            let mut h = String::new();
            conn.read_line(&mut h).map_err(|e| format!("read: {e}"))?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').ok_or_else(|| format!("header {h:?}"))?;
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().map_err(|_| format!("{h:?}"))?,
                "connection" => close = v.trim().eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut body = vec![0; len];
        conn.read_exact(&mut body)
            .map_err(|e| format!("body: {e}"))?;
        if close {
            self.conn = None;
        }
        Ok((status, body))
    }
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    ok: AtomicU64,
    refused: AtomicU64,
    leaks: AtomicU64,
    leaked_bytes: AtomicU64,
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn symlink_swap_race_never_serves_an_outside_byte() {
    let scratch = Scratch::new("confinement");
    let data = scratch.root.join("data");
    let outside = scratch.root.join("outside");
    let targets = targets();
    write_data(&data, &outside, &targets);
    let work = scratch.root.join("work");
    fs::create_dir_all(&work).unwrap();
    let server = Server::start(&data, &work);

    // Before the race: each name serves its inside content.
    let mut c = Client::new(server.addr);
    for t in &targets {
        let (status, body) = c.get(t.request).unwrap();
        assert_eq!(
            status,
            200,
            "{}: {}",
            t.request,
            String::from_utf8_lossy(&body)
        );
        assert!(!contains(&body, MARKER.as_bytes()));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flippers: Vec<_> = targets
        .iter()
        .map(|t| {
            let (dir, name, out, stop) = (
                data.join(t.area),
                t.name,
                outside.join(t.area),
                stop.clone(),
            );
            std::thread::spawn(move || flipper(dir, name, out, stop))
        })
        .collect();

    let requests: Arc<Vec<(&'static str, String)>> = Arc::new(
        targets
            .iter()
            .map(|t| (t.area, t.request.to_string()))
            .collect(),
    );
    let per_area: Arc<Vec<Counts>> = Arc::new(targets.iter().map(|_| Counts::default()).collect());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (requests, per_area, addr) = (requests.clone(), per_area.clone(), server.addr);
            std::thread::spawn(move || -> Result<(), String> {
                let mut c = Client::new(addr);
                for i in 0..REQUESTS_PER_CLIENT {
                    let k = (i + n) % requests.len();
                    let (status, body) = c.get(&requests[k].1)?;
                    let counts = &per_area[k];
                    counts.requests.fetch_add(1, Ordering::Relaxed);
                    match status {
                        200 => counts.ok.fetch_add(1, Ordering::Relaxed),
                        _ => counts.refused.fetch_add(1, Ordering::Relaxed),
                    };
                    if contains(&body, MARKER.as_bytes()) {
                        counts.leaks.fetch_add(1, Ordering::Relaxed);
                        counts
                            .leaked_bytes
                            .fetch_add(body.len() as u64, Ordering::Relaxed);
                    }
                }
                Ok(())
            })
        })
        .collect();
    let client_results: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let flips: u64 = flippers.into_iter().map(|f| f.join().unwrap()).sum();

    let mut total = 0;
    let mut leaks = 0;
    for ((area, request), c) in requests.iter().zip(per_area.iter()) {
        let n = c.requests.load(Ordering::Relaxed);
        total += n;
        leaks += c.leaks.load(Ordering::Relaxed);
        println!(
            "{area:>8} {request:<34} requests {n:>6}  200: {:>6}  refused: {:>6}  \
             responses with outside bytes: {}  (bytes in them: {})",
            c.ok.load(Ordering::Relaxed),
            c.refused.load(Ordering::Relaxed),
            c.leaks.load(Ordering::Relaxed),
            c.leaked_bytes.load(Ordering::Relaxed),
        );
    }
    println!("total requests {total}, flips {flips}, responses with outside bytes {leaks}");
    // Why requests were refused (the server's log carries a reason per failed request).
    let log = server.log_text();
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for line in log.lines().filter(|l| l.contains("request failed")) {
        let endpoint = field(line, "endpoint=");
        let reason = field(line, "reason=");
        *reasons.entry(format!("{endpoint}: {reason}")).or_default() += 1;
    }
    for (r, n) in &reasons {
        println!("{n:>6} x {r}");
    }
    for r in client_results {
        r.unwrap_or_else(|e| panic!("client failed: {e}; log:\n{}", server.log_text()));
    }
    assert!(total >= 20_000, "only {total} requests");
    assert_eq!(leaks, 0, "responses carried bytes of the outside file");
    // The race was real: both forms were served or refused along the way.
    for c in per_area.iter() {
        assert!(c.ok.load(Ordering::Relaxed) > 0);
    }
    // The race was real: the symlink form was met (and refused) along the way.
    let refused: u64 = per_area
        .iter()
        .map(|c| c.refused.load(Ordering::Relaxed))
        .sum();
    assert!(refused > 0, "the symlink form was never met");
}

/// The value of `key` in a log line (quoted or bare), with any path of the scratch
/// directory cut for brevity.
fn field(line: &str, key: &str) -> String {
    let Some(rest) = line.split_once(key).map(|x| x.1) else {
        return String::new();
    };
    let v = match rest.strip_prefix('"') {
        // A quoted value, with `\"` and `\\` escapes.
        Some(q) => {
            let mut out = String::new();
            let mut chars = q.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    '"' => break,
                    c => out.push(c),
                }
            }
            out
        }
        None => rest.split(' ').next().unwrap_or("").to_string(),
    };
    v.rsplit("/data/").next().unwrap_or(&v).to_string()
}
