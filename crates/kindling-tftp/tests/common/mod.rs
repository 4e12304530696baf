//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

#[allow(unused_imports)]
pub use kindling_testkit::{TempDir, have, tempdir};
use kindling_tftp::{CancellationToken, TftpConfig, TftpObserver, TftpServer, TftpStats};

/// Deterministic pseudo-random content.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// An in-process server on 127.0.0.1 running on its own runtime thread.
pub struct Server {
    pub addr: SocketAddr,
    pub stats: Arc<TftpStats>,
    cancel: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(config: TftpConfig) -> Server {
        Self::start_with(config, None, None)
    }

    pub fn start_with(
        config: TftpConfig,
        observer: Option<Arc<dyn TftpObserver>>,
        source: Option<Arc<dyn kindling_tftp::FileSource>>,
    ) -> Server {
        Self::start_at(config, "127.0.0.1:0".parse().unwrap(), observer, source)
    }

    /// Listening on `addr` (only inside a namespace the test made, unless loopback).
    pub fn start_at(
        config: TftpConfig,
        addr: SocketAddr,
        observer: Option<Arc<dyn TftpObserver>>,
        source: Option<Arc<dyn kindling_tftp::FileSource>>,
    ) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut server = rt.block_on(TftpServer::bind(config, addr)).unwrap();
        if let Some(o) = observer {
            server = server.with_observer(o);
        }
        if let Some(s) = source {
            server = server.with_source(s);
        }
        let addr = server.local_addr();
        let stats = server.stats();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let thread = std::thread::spawn(move || {
            rt.block_on(server.run(c)).unwrap();
        });
        Server {
            addr,
            stats,
            cancel,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Base config for loopback tests: root set, no iPXE defaults, large blksize allowed.
pub fn config(root: &Path) -> TftpConfig {
    TftpConfig {
        root: Some(root.to_path_buf()),
        ipxe_dir: PathBuf::new(),
        max_blksize: 65464,
        max_windowsize: 16,
        timeout: 1.0,
        ..TftpConfig::default()
    }
}

impl Server {
    /// Wait (up to 60 s) until `n` transfers have ended, then return the counters.
    /// Clients exit after sending their last ACK, before the server has read it.
    pub fn settled(&self, n: u64) -> kindling_tftp::StatsSnapshot {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let s = self.stats.snapshot();
            if s.transfers_ok + s.transfers_failed >= n || std::time::Instant::now() > until {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// A raw TFTP client socket for protocol-level tests.
pub struct Raw {
    pub sock: std::net::UdpSocket,
    pub server: SocketAddr,
}

impl Raw {
    pub fn new(server: SocketAddr) -> Raw {
        Self::bound("127.0.0.1:0", server)
    }

    /// A client socket on `local` (an address of a namespace the test made, or loopback).
    pub fn bound(local: &str, server: SocketAddr) -> Raw {
        let sock = std::net::UdpSocket::bind(local).unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .unwrap();
        Raw { sock, server }
    }

    /// Send an RRQ with a raw (possibly invalid) file name.
    pub fn rrq_bytes(&self, name: &[u8], options: &[(&str, &str)]) {
        let mut p = vec![0u8, 1];
        p.extend_from_slice(name);
        p.push(0);
        p.extend_from_slice(b"octet\0");
        for (k, v) in options {
            p.extend_from_slice(k.as_bytes());
            p.push(0);
            p.extend_from_slice(v.as_bytes());
            p.push(0);
        }
        self.sock.send_to(&p, self.server).unwrap();
    }

    pub fn rrq(&self, name: &str, options: &[(&str, &str)]) {
        self.rrq_bytes(name.as_bytes(), options)
    }

    pub fn send_to(&self, pkt: &[u8], to: SocketAddr) {
        self.sock.send_to(pkt, to).unwrap();
    }

    /// Next packet, or None after the read timeout.
    pub fn recv(&self) -> Option<(kindling_tftp::Packet, SocketAddr)> {
        let mut buf = vec![0u8; 70000];
        let (n, from) = self.sock.recv_from(&mut buf).ok()?;
        Some((kindling_tftp::packet::parse(&buf[..n]).unwrap(), from))
    }

    pub fn set_timeout(&self, d: std::time::Duration) {
        self.sock.set_read_timeout(Some(d)).unwrap();
    }

    /// Lock-step download without options; returns the bytes.
    pub fn get(&self, name: &str) -> Result<Vec<u8>, (u16, String)> {
        use kindling_tftp::Packet;
        self.rrq(name, &[]);
        let mut out = Vec::new();
        let mut expect: u16 = 1;
        loop {
            let Some((p, from)) = self.recv() else {
                return Err((0, "no answer".into()));
            };
            match p {
                Packet::Data { block, data } => {
                    assert_eq!(block, expect);
                    out.extend_from_slice(&data);
                    self.send_to(&Packet::Ack { block }.encode(), from);
                    if data.len() < 512 {
                        return Ok(out);
                    }
                    expect = expect.wrapping_add(1);
                }
                Packet::Error { code, message } => return Err((code.as_u16(), message)),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// Runs `f` on a thread inside a network namespace made for it, with only loopback
/// up (every 127/8 address and ::1 are local), so that listening on a wildcard address
/// touches no real interface. Threads and sockets `f` creates live there too. The
/// namespace is deleted afterwards, also when `f` panics. Returns false (after saying
/// SKIP) without root.
pub fn in_netns(test: &str, f: impl FnOnce() + Send) -> bool {
    if !kindling_testkit::can_run(test) {
        return false;
    }
    kindling_testkit::Netns::new("tftp").run(f);
    true
}

/// Wait (up to 30 s) until `f` holds for the counters.
pub fn wait_for(
    srv: &Server,
    f: impl Fn(&kindling_tftp::StatsSnapshot) -> bool,
) -> kindling_tftp::StatsSnapshot {
    wait_for_within(srv, std::time::Duration::from_secs(30), f)
}

/// The stats once `f` holds, or after `within` as they are.
pub fn wait_for_within(
    srv: &Server,
    within: std::time::Duration,
    f: impl Fn(&kindling_tftp::StatsSnapshot) -> bool,
) -> kindling_tftp::StatsSnapshot {
    let until = std::time::Instant::now() + within;
    loop {
        let s = srv.stats.snapshot();
        if f(&s) || std::time::Instant::now() > until {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
