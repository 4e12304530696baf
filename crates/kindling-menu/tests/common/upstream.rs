//! A local "upstream" HTTP/1.1 server for tests: counts GETs per path and
//! can pace, gate, stall, fail mid-transfer or corrupt on demand.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Close the connection after this many body bytes.
    FailAfter(u64),
    /// Flip one byte in the middle of the body.
    Corrupt,
    /// Send this many bytes, then nothing (connection left open).
    StallAfter(u64),
}

pub struct Upstream {
    pub addr: SocketAddr,
    files: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    gets: Mutex<HashMap<String, usize>>,
    /// Mode for the next GET of a path (consumed), else Normal.
    modes: Mutex<HashMap<String, Mode>>,
    /// Body bytes sent so far (all transfers) and whether one finished.
    pub sent: AtomicU64,
    pub finished: AtomicBool,
    /// Hold every body after this many bytes until the gate opens.
    gate_after: AtomicU64,
    gate: watch::Sender<bool>,
    /// Pause after every 64 KiB chunk.
    pub pace: Mutex<Duration>,
}

impl Upstream {
    pub async fn start() -> Arc<Upstream> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = Arc::new(Upstream {
            addr: listener.local_addr().unwrap(),
            files: Mutex::default(),
            gets: Mutex::default(),
            modes: Mutex::default(),
            sent: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            gate_after: AtomicU64::new(u64::MAX),
            gate: watch::channel(true).0,
            pace: Mutex::new(Duration::ZERO),
        });
        let u = up.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let u = u.clone();
                tokio::spawn(async move {
                    let _ = u.conn(s).await;
                });
            }
        });
        up
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn put(&self, path: &str, data: Vec<u8>) {
        self.files
            .lock()
            .unwrap()
            .insert(path.into(), Arc::new(data));
    }

    pub fn gets(&self, path: &str) -> usize {
        self.gets.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn next_mode(&self, path: &str, m: Mode) {
        self.modes.lock().unwrap().insert(path.into(), m);
    }

    /// Bodies stop after `n` bytes until [`open_gate`].
    pub fn close_gate_after(&self, n: u64) {
        self.gate_after.store(n, Ordering::SeqCst);
        self.gate.send_replace(false);
    }

    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    async fn conn(self: Arc<Self>, mut s: tokio::net::TcpStream) -> std::io::Result<()> {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            head.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&head).to_string();
        let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
        *self.gets.lock().unwrap().entry(path.clone()).or_default() += 1;
        let Some(data) = self.files.lock().unwrap().get(&path).cloned() else {
            s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await?;
            return Ok(());
        };
        let mode = self
            .modes
            .lock()
            .unwrap()
            .remove(&path)
            .unwrap_or(Mode::Normal);
        s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n", data.len()).as_bytes()).await?;
        let mut pos = 0usize;
        let mut gate = self.gate.subscribe();
        while pos < data.len() {
            if pos as u64 >= self.gate_after.load(Ordering::SeqCst) {
                while !*gate.borrow_and_update() {
                    let _ = gate.changed().await;
                }
            }
            let mut end = (pos + 64 * 1024).min(data.len());
            let gate_at = self.gate_after.load(Ordering::SeqCst);
            if (pos as u64) < gate_at && end as u64 > gate_at {
                end = gate_at as usize;
            }
            match mode {
                Mode::FailAfter(n) | Mode::StallAfter(n) if end as u64 > n => end = n as usize,
                _ => {}
            }
            if end > pos {
                let mut chunk = data[pos..end].to_vec();
                if mode == Mode::Corrupt && (pos..end).contains(&(data.len() / 2)) {
                    chunk[data.len() / 2 - pos] ^= 0xff;
                }
                s.write_all(&chunk).await?;
                self.sent.fetch_add((end - pos) as u64, Ordering::SeqCst);
                pos = end;
            }
            match mode {
                Mode::FailAfter(n) if pos as u64 >= n => {
                    // Hang up short of Content-Length.
                    drop(s);
                    return Ok(());
                }
                Mode::StallAfter(n) if pos as u64 >= n => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                _ => {}
            }
            let pace = *self.pace.lock().unwrap();
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
        }
        s.flush().await?;
        self.finished.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn sha256_hex(b: &[u8]) -> String {
    kindling_fetch::sha256_hex(b)
}
