//! Offline fixtures: a tiny HTTP/1.1 server on 127.0.0.1:0 serving a
//! generated stream JSON, artifacts and detached signatures made with a test
//! key generated here; it logs every request (path and Range start) and can
//! cut a response halfway.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pgp::composed::{
    ArmorOptions, DetachedSignature, EncryptionCaps, KeyType, SecretKeyParamsBuilder,
    SignedPublicKey, SignedSecretKey, SubkeyParamsBuilder,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::ser::Serialize;
use pgp::types::{Password, SigningKey};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req {
    pub path: String,
    pub range_start: Option<u64>,
}

#[derive(Default)]
pub struct FixState {
    pub files: HashMap<String, Vec<u8>>,
    /// One-shot: the next GET of this path gets the full Content-Length but
    /// only this many body bytes, then the connection closes.
    pub cut_once: HashMap<String, usize>,
    pub log: Vec<Req>,
    /// Answer every request with the whole file (200), as servers without
    /// Range support do.
    pub ignore_range: bool,
}

pub struct Fixture {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<FixState>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Fixture {
    pub fn start() -> Fixture {
        let state = Arc::new(Mutex::new(FixState::default()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (atx, arx) = std::sync::mpsc::channel();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                atx.send(l.local_addr().unwrap()).unwrap();
                let mut rx = rx;
                loop {
                    tokio::select! {
                        a = l.accept() => {
                            if let Ok((sock, _)) = a {
                                tokio::spawn(serve(sock, st.clone()));
                            }
                        }
                        _ = &mut rx => break,
                    }
                }
            });
        });
        let addr = arx.recv().unwrap();
        Fixture {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn put(&self, path: &str, body: Vec<u8>) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_string(), body);
    }

    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().files.remove(path);
    }

    pub fn cut_once(&self, path: &str, at: usize) {
        self.state
            .lock()
            .unwrap()
            .cut_once
            .insert(path.to_string(), at);
    }

    pub fn log(&self) -> Vec<Req> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

async fn serve(mut sock: tokio::net::TcpStream, st: Arc<Mutex<FixState>>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let n = match sock.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&tmp[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if buf.len() > 65536 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_string();
    let range_start = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if !k.trim().eq_ignore_ascii_case("range") {
            return None;
        }
        v.trim()
            .strip_prefix("bytes=")?
            .strip_suffix('-')?
            .parse::<u64>()
            .ok()
    });
    let (body, cut, ignore_range) = {
        let mut g = st.lock().unwrap();
        g.log.push(Req {
            path: path.clone(),
            range_start,
        });
        let body = g.files.get(&path).cloned();
        let cut = g.cut_once.remove(&path);
        let ignore = g.ignore_range;
        (body, cut, ignore)
    };
    let Some(body) = body else {
        let _ = sock
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    let len = body.len() as u64;
    let range_start = range_start.filter(|_| !ignore_range);
    let (head, slice) = match range_start {
        Some(s) if s >= len => (
            format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
            &body[0..0],
        ),
        Some(s) => (
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                len - 1,
                len - s
            ),
            &body[s as usize..],
        ),
        None => (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n"
            ),
            &body[..],
        ),
    };
    if sock.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    match cut {
        Some(c) => {
            let _ = sock.write_all(&slice[..c.min(slice.len())]).await;
            let _ = sock.flush().await;
            let _ = sock.shutdown().await;
        }
        None => {
            let _ = sock.write_all(slice).await;
            let _ = sock.shutdown().await;
        }
    }
}

/// A test signing key (Ed25519 primary that can sign, plus a signing subkey).
pub struct TestKey {
    pub secret: SignedSecretKey,
    pub public: SignedPublicKey,
}

impl TestKey {
    pub fn generate(uid: &str) -> TestKey {
        let mut sub = SubkeyParamsBuilder::default();
        sub.key_type(KeyType::Ed25519Legacy)
            .can_sign(true)
            .can_encrypt(EncryptionCaps::None)
            .can_authenticate(false);
        let mut p = SecretKeyParamsBuilder::default();
        p.key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .can_encrypt(EncryptionCaps::None)
            .primary_user_id(uid.into())
            .subkeys(vec![sub.build().unwrap()]);
        let secret = p.build().unwrap().generate(rand::thread_rng()).unwrap();
        let public = SignedPublicKey::from(secret.clone());
        TestKey { secret, public }
    }

    /// Binary detached signature by the primary key (Fedora's .sig files are binary).
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        sign_with(&self.secret.primary_key, data)
    }

    /// Binary detached signature by the signing subkey.
    pub fn sign_subkey(&self, data: &[u8]) -> Vec<u8> {
        sign_with(&self.secret.secret_subkeys[0].key, data)
    }

    /// Writes the armored public key as a keyring directory entry.
    pub fn write_keyring(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let f = dir.join("RPM-GPG-KEY-kindling-test");
        std::fs::write(
            &f,
            self.public
                .to_armored_bytes(ArmorOptions::default())
                .unwrap(),
        )
        .unwrap();
        // Not a key: skipped with a warning.
        std::fs::write(dir.join("README"), b"not a key\n").unwrap();
        dir.to_path_buf()
    }
}

fn sign_with(key: &impl SigningKey, data: &[u8]) -> Vec<u8> {
    DetachedSignature::sign_binary_data(
        rand::thread_rng(),
        key,
        &Password::empty(),
        HashAlgorithm::Sha256,
        data,
    )
    .unwrap()
    .to_bytes()
    .unwrap()
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// One release's three artifacts as served.
#[derive(Clone)]
pub struct Release {
    pub release: String,
    pub arch: String,
    pub kernel: (String, Vec<u8>),
    pub initramfs: (String, Vec<u8>),
    pub rootfs: (String, Vec<u8>),
}

impl Release {
    pub fn new(release: &str, rootfs_len: usize) -> Release {
        Release::for_arch(release, "x86_64", rootfs_len)
    }

    /// A release of `arch` (its own random artifacts and names).
    pub fn for_arch(release: &str, arch: &str, rootfs_len: usize) -> Release {
        Release {
            release: release.to_string(),
            arch: arch.to_string(),
            kernel: (
                format!("fedora-coreos-{release}-live-kernel.{arch}"),
                random_bytes(4096),
            ),
            initramfs: (
                format!("fedora-coreos-{release}-live-initramfs.{arch}.img"),
                random_bytes(8192),
            ),
            rootfs: (
                format!("fedora-coreos-{release}-live-rootfs.{arch}.img"),
                random_bytes(rootfs_len),
            ),
        }
    }

    pub fn dir(&self) -> String {
        format!("/prod/streams/stable/builds/{}/{}", self.release, self.arch)
    }

    pub fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir())
    }

    pub fn parts(&self) -> [&(String, Vec<u8>); 3] {
        [&self.kernel, &self.initramfs, &self.rootfs]
    }
}

/// Serves `rel`'s artifacts with signatures by `sign`.
pub fn publish_files(fx: &Fixture, rel: &Release, sign: &dyn Fn(&[u8]) -> Vec<u8>) {
    for (name, data) in rel.parts() {
        fx.put(&rel.path(name), data.clone());
        fx.put(&format!("{}.sig", rel.path(name)), sign(data));
    }
}

/// One artifact's `location`, `signature` and `sha256` as the metadata has them.
fn artifact_json(fx: &Fixture, r: &Release, (name, data): &(String, Vec<u8>)) -> serde_json::Value {
    let base = fx.base_url();
    json!({
        "location": format!("{base}{}", r.path(name)),
        "signature": format!("{base}{}.sig", r.path(name)),
        "sha256": sha256_hex(data),
    })
}

/// The stream JSON for `rel` (rootfs possibly taken from `rootfs_from`).
pub fn stream_json(fx: &Fixture, rel: &Release, rootfs_from: Option<&Release>) -> Vec<u8> {
    let art = |r: &Release, part: &(String, Vec<u8>)| artifact_json(fx, r, part);
    let base = fx.base_url();
    let rf = rootfs_from.unwrap_or(rel);
    let doc = json!({
        "stream": "stable",
        "metadata": {"last-modified": "2026-11-25T00:00:00Z", "generator": "kindling-fcos test"},
        "architectures": {
            "x86_64": {
                "artifacts": {
                    "metal": {
                        "release": rel.release,
                        "formats": {
                            "pxe": {
                                "kernel": art(rel, &rel.kernel),
                                "initramfs": art(rel, &rel.initramfs),
                                "rootfs": art(rf, &rf.rootfs),
                            },
                            "raw.xz": {"disk": {"location": format!("{base}/x.raw.xz"), "sha256": "00", "uncompressed-sha256": "11"}}
                        }
                    }
                },
                "images": {"aws": {"regions": {"us-east-1": {"release": rel.release, "image": "ami-0"}}}}
            }
        }
    });
    serde_json::to_vec_pretty(&doc).unwrap()
}

/// The stream JSON with one release per architecture (`rels`, each of its
/// own `arch`).
pub fn stream_json_arches(fx: &Fixture, rels: &[&Release]) -> Vec<u8> {
    let art = |r: &Release, part: &(String, Vec<u8>)| artifact_json(fx, r, part);
    let mut arches = serde_json::Map::new();
    for r in rels {
        arches.insert(
            r.arch.clone(),
            json!({"artifacts": {"metal": {"release": r.release, "formats": {"pxe": {
                "kernel": art(r, &r.kernel),
                "initramfs": art(r, &r.initramfs),
                "rootfs": art(r, &r.rootfs),
            }}}}}),
        );
    }
    let doc = json!({
        "stream": "stable",
        "metadata": {"last-modified": "2026-11-25T00:00:00Z", "generator": "kindling-fcos test"},
        "architectures": arches,
    });
    serde_json::to_vec_pretty(&doc).unwrap()
}

/// Publishes `rel` (files + stream JSON) as upstream's current release.
pub fn publish(fx: &Fixture, rel: &Release, key: &TestKey) {
    publish_files(fx, rel, &|d| key.sign(d));
    fx.put("/streams/stable.json", stream_json(fx, rel, None));
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
