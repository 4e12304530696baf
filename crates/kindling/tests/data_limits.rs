//! Issue 13, item 8: data files are bounded. A 30 MB group file is refused before it is
//! read (the problem names the file and the limit), the server's peak memory stays low,
//! and the other groups keep being served. Runs the real `kindling serve`.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// The real `kindling serve` (`common::Server`), with what this file measures of it.
struct Server(common::Server);

impl Server {
    fn start(data: &Path, work: &Path) -> Server {
        Server(common::Server::start(data, work))
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }

    fn log_text(&self) -> String {
        self.0.log_text()
    }

    /// A field of /proc/PID/status in KiB (VmHWM: peak resident set; VmRSS: current).
    fn status_kib(&self, field: &str) -> u64 {
        let s = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }

    /// Waits (generously) until the log contains `needle` at least `n` times.
    fn wait_log(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while self.log_text().matches(needle).count() < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} {needle:?} in the log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGHUP (a reload) and waits until the `n`th SIGHUP reload is logged.
    fn reload(&self, n: usize) {
        // SAFETY: a signal to the child this test started and still owns.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, libc::SIGHUP) }, 0);
        self.wait_log("reloaded (SIGHUP", n);
    }
}

/// One `GET` with `Connection: close`: (status, body).
fn get(addr: SocketAddr, target: &str) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad response {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A valid group of about `bytes` bytes: a huge metadata object.
fn big_group(id: &str, bytes: usize) -> String {
    let mut s = format!(r#"{{"id":"{id}","profile":"p","selector":{{"os":"{id}"}},"metadata":{{"#);
    let mut i = 0;
    while s.len() < bytes {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#""key{i:08}":"value-{i:08}-abcdefghijklmnopqrstuvwxyz""#
        ));
        i += 1;
    }
    s.push_str("}}");
    s
}

const MB: usize = 1_000_000;
/// Peak RSS allowed with a 30 MB group file around (the unbounded loader peaked at ~416 MB).
const MAX_PEAK_KIB: u64 = 100 * 1024;

#[test]
fn a_30_mb_group_file_is_refused_and_memory_stays_low() {
    let tmp = kindling_testkit::tempdir("data-limits-30mb");
    let data = tmp.path().join("data");
    for d in [
        "groups", "profiles", "ignition", "generic", "cloud", "assets",
    ] {
        fs::create_dir_all(data.join(d)).unwrap();
    }
    let work = tmp.path().join("work");
    fs::create_dir_all(&work).unwrap();
    fs::write(
        data.join("profiles/p.json"),
        r#"{"id":"p","boot":{"kernel":"/assets/k"}}"#,
    )
    .unwrap();
    fs::write(
        data.join("groups/good.json"),
        r#"{"id":"good","profile":"p","selector":{"os":"good"}}"#,
    )
    .unwrap();
    let big = big_group("big", 30 * MB);
    assert!(big.len() >= 30 * MB);
    fs::write(data.join("groups/big.json"), &big).unwrap();

    // The data directory is loaded before the server answers.
    let server = Server::start(&data, &work);
    let peak_start = server.status_kib("VmHWM");
    println!("VmHWM after loading with a 30 MB group file: {peak_start} KiB");
    let good_at_start = get(server.0.addr, "/ipxe?os=good").unwrap().0;
    let big_at_start = get(server.0.addr, "/ipxe?os=big").unwrap().0;

    // Another 30 MB group appears and the server reloads (SIGHUP).
    fs::write(data.join("groups/big2.json"), big_group("big2", 30 * MB)).unwrap();
    server.reload(1);
    let peak_reload = server.status_kib("VmHWM");
    println!("VmHWM after a reload with two 30 MB group files: {peak_reload} KiB");
    let good_after_reload = get(server.0.addr, "/ipxe?os=good").unwrap().0;
    let big2_after_reload = get(server.0.addr, "/ipxe?os=big2").unwrap().0;

    // Both deleted: nothing of them stays.
    fs::remove_file(data.join("groups/big.json")).unwrap();
    fs::remove_file(data.join("groups/big2.json")).unwrap();
    server.reload(2);
    let rss_after = server.status_kib("VmRSS");
    println!("VmRSS after they were deleted: {rss_after} KiB");

    let log = server.log_text();
    for file in ["groups/big.json", "groups/big2.json"] {
        let line = log.lines().find(|l| l.contains(file));
        println!("problem reported for {file}: {line:?}");
        let line = line.unwrap_or_else(|| panic!("no problem reported for {file}:\n{log}"));
        assert!(line.contains("too large"), "{line}");
        assert!(line.contains("1 MiB"), "{line}");
    }
    assert_eq!((good_at_start, big_at_start), (200, 404));
    assert_eq!((good_after_reload, big2_after_reload), (200, 404));
    assert_eq!(get(server.0.addr, "/ipxe?os=good").unwrap().0, 200);
    assert!(
        peak_start <= MAX_PEAK_KIB && peak_reload <= MAX_PEAK_KIB,
        "peak RSS {peak_start} / {peak_reload} KiB over {MAX_PEAK_KIB} KiB"
    );
    assert!(rss_after <= MAX_PEAK_KIB, "RSS {rss_after} KiB");
}
