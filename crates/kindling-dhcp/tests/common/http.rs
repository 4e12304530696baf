//! A stand-in for Kindling's HTTP service in the firmware tests: a listener inside a
//! namespace that answers `/boot.ipxe` with a script and `/tftp/<name>` with a file (HEAD and
//! GET, keep-alive, as EDK2's HTTP Boot and iPXE ask), recording every request line.

use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kindling_testkit::Netns;

pub type Requests = Arc<Mutex<Vec<(SocketAddr, String)>>>;

pub struct BootHttp {
    stop: Arc<AtomicBool>,
    requests: Requests,
    thread: Option<JoinHandle<()>>,
}

impl BootHttp {
    /// Listens on `addr` inside `ns`: `/boot.ipxe` is `script`, `/tftp/<name>` the file
    /// under `root` (when given).
    pub fn start(ns: &Netns, addr: SocketAddrV4, script: String, root: Option<PathBuf>) -> Self {
        let listener =
            ns.run(|| TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}")));
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests: Requests = Arc::default();
        let (s2, r2) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, peer)) => serve(stream, peer, &script, root.as_deref(), &r2, &s2),
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        Self {
            stop,
            requests,
            thread: Some(thread),
        }
    }

    /// Every request line so far, with its peer.
    pub fn requests(&self) -> Vec<(SocketAddr, String)> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for BootHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The body for `path`, if there is one.
fn resource(path: &str, script: &str, root: Option<&Path>) -> Option<Vec<u8>> {
    if path == "/boot.ipxe" {
        return Some(script.as_bytes().to_vec());
    }
    let root = root?;
    let name = path.strip_prefix("/tftp/")?;
    if name.is_empty() || name.contains('/') || name.contains("..") {
        return None;
    }
    std::fs::read(root.join(name)).ok()
}

/// Answers the requests of one connection until the peer closes it, 10 s of silence or
/// `stop` (a stopped VM closes nothing: its keep-alive connection just goes quiet).
fn serve(
    mut s: TcpStream,
    peer: SocketAddr,
    script: &str,
    root: Option<&Path>,
    log: &Requests,
    stop: &AtomicBool,
) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    loop {
        let mut quiet = Instant::now();
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break Some(i + 4);
            }
            if buf.len() > 16 * 1024 || stop.load(Ordering::SeqCst) {
                break None;
            }
            match s.read(&mut chunk) {
                Ok(0) => break None,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    quiet = Instant::now();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) && quiet.elapsed() < Duration::from_secs(10) => {}
                Err(_) => break None,
            }
        };
        let Some(end) = end else { return };
        let line = String::from_utf8_lossy(&buf[..end])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        buf.drain(..end);
        log.lock().unwrap().push((peer, line.clone()));
        let mut parts = line.split(' ');
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let sent = match resource(path, script, root) {
            Some(body) if method == "GET" || method == "HEAD" => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {}\r\n\r\n",
                    body.len()
                );
                s.write_all(head.as_bytes()).is_ok()
                    && (method == "HEAD" || s.write_all(&body).is_ok())
            }
            _ => s
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .is_ok(),
        };
        if !sent {
            return;
        }
    }
}
