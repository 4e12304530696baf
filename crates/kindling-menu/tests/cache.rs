//! The pull-through cache through a real kindling_http server, with real
//! clients (curl, and a hyper client) and a local fixture "upstream".

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::upstream::{self, Mode, Upstream};
use kindling_menu::{Cache, CacheConfig, CacheExtension, Catalog, MenuConfig};

/// (id, file, url, pinned sha256, checksum file URL)
type Spec<'a> = (&'a str, &'a str, String, Option<String>, Option<String>);

/// A catalog with one x86_64 entry per spec.
fn catalog(files: &[Spec<'_>]) -> Arc<Catalog> {
    let mut t = String::new();
    for (id, file, url, sha, sums) in files {
        t.push_str(&format!("[[entries]]\nid = \"{id}\"\ntitle = \"{id}\"\n[entries.arch.x86_64]\nkernel = \"{file}\"\n"));
        if let Some(s) = sums {
            t.push_str(&format!(
                "sums = {{ url = \"{s}\", format = \"sha256sums\" }}\n"
            ));
        }
        t.push_str(&format!(
            "[entries.arch.x86_64.files.\"{file}\"]\nurl = \"{url}\"\n"
        ));
        if let Some(h) = sha {
            t.push_str(&format!("sha256 = \"{h}\"\n"));
        }
        if sums.is_some() {
            t.push_str(&format!("sums_name = \"./{file}\"\n"));
        }
    }
    #[derive(serde::Deserialize)]
    struct F {
        entries: Vec<kindling_menu::Entry>,
    }
    let f: F = toml::from_str(&t).unwrap();
    let cfg = MenuConfig {
        shipped_catalog: false,
        entries: f.entries,
        ..MenuConfig::default()
    };
    Arc::new(Catalog::load(&cfg).unwrap())
}

struct Setup {
    srv: common::Server,
    cache: Arc<Cache>,
    dir: tempfile::TempDir,
}

async fn setup(cat: Arc<Catalog>, cfg: CacheConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(cfg, dir.path().join("cache"), cat.clone()).unwrap();
    // These tests are about downloads, not routing: the loopback client
    // was handed a menu with every entry.
    let ids: Vec<String> = cat.entries().iter().map(|e| e.id.clone()).collect();
    cache.note_menu(
        std::net::Ipv4Addr::LOCALHOST.into(),
        kindling_menu::Arch::X86_64,
        ids.into(),
    );
    let c = cache.clone();
    let srv = common::serve(&dir.path().join("data"), move |_| {
        vec![Arc::new(CacheExtension::new(c))]
    })
    .await;
    Setup { srv, cache, dir }
}

impl Setup {
    fn url(&self, entry: &str, file: &str) -> String {
        format!("http://{}/cache/{entry}/x86_64/{file}", self.srv.addr)
    }
    fn kept_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["files", "tmp"] {
            let root = self.dir.path().join("cache").join(sub);
            let mut stack = vec![root.clone()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap().flatten() {
                    if e.file_type().unwrap().is_dir() {
                        stack.push(e.path());
                    } else {
                        out.push(
                            e.path()
                                .strip_prefix(self.dir.path())
                                .unwrap()
                                .display()
                                .to_string(),
                        );
                    }
                }
            }
        }
        out.sort();
        out
    }
    /// Waits until `n` clients follow downloads.
    async fn wait_clients(&self, n: usize) {
        for _ in 0..3000 {
            let c: usize = self.cache.in_progress().iter().map(|x| x.3).sum();
            if c >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("clients never attached: {:?}", self.cache.in_progress());
    }
}

/// `curl URL | sha256sum` with pipefail: (curl ok, digest).
async fn curl_sha(url: &str) -> (bool, String) {
    let out = tokio::process::Command::new("bash")
        .args([
            "-o",
            "pipefail",
            "-c",
            &format!("curl -sS --fail --max-time 300 '{url}' | sha256sum"),
        ])
        .output()
        .await
        .unwrap();
    let sum = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    (out.status.success(), sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_clients_one_upstream_fetch_streamed() {
    let up = Upstream::start().await;
    const LEN: usize = 100 * 1000 * 1000;
    let src = upstream::data(LEN, 7);
    let want = upstream::sha256_hex(&src);
    up.put("/big.img", src.clone());
    let cat = catalog(&[(
        "big",
        "big.img",
        up.url("/big.img"),
        Some(want.clone()),
        None,
    )]);
    let s = setup(cat, CacheConfig::default()).await;
    let url = s.url("big", "big.img");

    // Upstream sends the first MiB, then waits until every client is attached.
    up.close_gate_after(1 << 20);
    *up.pace.lock().unwrap() = Duration::from_micros(200);

    // A probe (hyper client) that notes how far upstream was when its first
    // body bytes arrived.
    let probe = {
        let url = url.clone();
        let up = up.clone();
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let h = tokio::spawn(async move {
            use http_body_util::BodyExt;
            let client =
                kindling_menu::upstream::Upstream::new(Duration::from_secs(30), 0).unwrap();
            let (resp, _) = client.get(&url, &[]).await.unwrap();
            assert_eq!(resp.headers()["content-length"], LEN.to_string().as_str());
            let mut body = resp.into_body();
            let mut got = Vec::with_capacity(LEN);
            let mut first_tx = Some(first_tx);
            while let Some(f) = body.frame().await {
                if let Ok(d) = f.unwrap().into_data() {
                    if let Some(tx) = first_tx.take() {
                        let _ = tx.send((
                            up.sent.load(std::sync::atomic::Ordering::SeqCst),
                            up.finished.load(std::sync::atomic::Ordering::SeqCst),
                        ));
                    }
                    got.extend_from_slice(&d);
                }
            }
            upstream::sha256_hex(&got)
        });
        (h, first_rx)
    };
    let (first_sent, first_finished) = probe.1.await.unwrap();
    assert!(
        !first_finished && (first_sent as usize) < LEN,
        "the probe got bytes only after upstream finished ({first_sent})"
    );

    let mut clients = Vec::new();
    for _ in 0..50 {
        let url = url.clone();
        clients.push(tokio::spawn(async move { curl_sha(&url).await }));
    }
    // A Range request during the download follows the growing file too.
    let ranged = {
        let url = url.clone();
        tokio::spawn(async move { common::curl(&["--fail", "-r", "5000000-5000999", &url]).await })
    };
    s.wait_clients(52).await;
    assert_eq!(up.gets("/big.img"), 1);
    up.open_gate();

    for c in clients {
        let (ok, sum) = c.await.unwrap();
        assert!(ok, "a client failed");
        assert_eq!(sum, want, "a client got different bytes");
    }
    assert_eq!(probe.0.await.unwrap(), want);
    let (code, part) = ranged.await.unwrap();
    assert_eq!(code, 0);
    assert_eq!(part, &src[5_000_000..5_001_000]);
    assert_eq!(up.gets("/big.img"), 1, "exactly one upstream GET");

    // Now from disk: Content-Length, Range, still one upstream GET.
    let held = s.cache.held();
    assert_eq!(held.len(), 1);
    assert!(held[0].verified && held[0].size == LEN as u64 && held[0].sha256 == want);
    let (code, head) = common::curl(&["-I", &url]).await;
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert_eq!(code, 0);
    assert!(
        head.contains(&format!("content-length: {LEN}")) && head.contains("x-kindling-cache: hit"),
        "{head}"
    );
    let (code, part) = common::curl(&["--fail", "-r", "1000-1999", &url]).await;
    assert_eq!(code, 0);
    assert_eq!(part, &src[1000..2000]);
    let (ok, sum) = curl_sha(&url).await;
    assert!(ok && sum == want);
    assert_eq!(up.gets("/big.img"), 1);
    // The index on disk says the same.
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.dir.path().join("cache/index.json")).unwrap())
            .unwrap();
    assert_eq!(idx["files"][0]["file"], "big.img");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_dies_mid_transfer_nothing_kept_then_refetched() {
    let up = Upstream::start().await;
    let src = upstream::data(8 << 20, 9);
    let want = upstream::sha256_hex(&src);
    up.put("/f.img", src);
    let cat = catalog(&[("flaky", "f.img", up.url("/f.img"), None, None)]);
    let s = setup(cat, CacheConfig::default()).await;
    let url = s.url("flaky", "f.img");

    up.next_mode("/f.img", Mode::FailAfter(3 << 20));
    up.close_gate_after(1 << 20);
    let mut clients = Vec::new();
    for _ in 0..5 {
        let url = url.clone();
        clients.push(tokio::spawn(async move {
            let (code, body) = common::curl(&["--fail", &url]).await;
            (code, body.len())
        }));
    }
    s.wait_clients(5).await;
    up.open_gate();
    for c in clients {
        let (code, len) = c.await.unwrap();
        assert_ne!(
            code, 0,
            "a client was told the truncated transfer succeeded"
        );
        assert!(len < 8 << 20, "{len}");
    }
    // Give the download task its moment to clean up, then: nothing kept.
    for _ in 0..100 {
        if s.cache.in_progress().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.kept_files(), Vec::<String>::new());
    assert!(s.cache.held().is_empty());
    assert_eq!(up.gets("/f.img"), 1);

    // The next request fetches afresh and succeeds.
    let (ok, sum) = curl_sha(&url).await;
    assert!(ok && sum == want);
    assert_eq!(up.gets("/f.img"), 2);
    assert_eq!(
        s.kept_files(),
        vec!["cache/files/flaky/x86_64/f.img".to_string()]
    );
    assert!(
        !s.cache.held()[0].verified,
        "no checksum published: unverified"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checksum_mismatch_not_kept_and_names_the_entry() {
    let up = Upstream::start().await;
    let src = upstream::data(3 << 20, 11);
    let sum = upstream::sha256_hex(&src);
    up.put("/bad.img", src);
    up.put(
        "/SHA256SUMS",
        format!("{}  ./other\n{sum}  ./bad.img\n", "0".repeat(64)).into_bytes(),
    );
    let cat = catalog(&[(
        "distro",
        "bad.img",
        up.url("/bad.img"),
        None,
        Some(up.url("/SHA256SUMS")),
    )]);
    let s = setup(cat, CacheConfig::default()).await;
    let url = s.url("distro", "bad.img");

    // A client during a corrupted download is cut short: the last byte is
    // held back until verification, so it never gets the whole file. How much
    // of the rest it got before the cut depends on scheduling (a follower
    // that lags is dropped where it is), so only the bound is checked.
    up.next_mode("/bad.img", Mode::Corrupt);
    let (code, body) = common::curl(&["--fail", &url]).await;
    assert_ne!(code, 0, "a corrupt download must not end as a success");
    assert!(body.len() < 3 << 20, "got {} bytes", body.len());
    assert!(s.kept_files().is_empty() && s.cache.held().is_empty());

    // The same through prefetch: the error names the entry.
    up.next_mode("/bad.img", Mode::Corrupt);
    let err = s
        .cache
        .prefetch("distro", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("distro/x86_64/bad.img") && err.contains("checksum mismatch"),
        "{err}"
    );
    assert!(s.kept_files().is_empty());

    // Upstream fixed: verified and kept.
    let held = s.cache.prefetch("distro", None).await.unwrap();
    assert!(held[0].verified && held[0].sha256 == sum);
    assert_eq!(up.gets("/bad.img"), 3);

    // A file the checksum list does not name is refused too.
    up.put("/SHA256SUMS", b"nothing here\n".to_vec());
    let cat = catalog(&[(
        "distro",
        "bad.img",
        up.url("/bad.img"),
        None,
        Some(up.url("/SHA256SUMS")),
    )]);
    let s2 = setup(cat, CacheConfig::default()).await;
    let err = s2
        .cache
        .prefetch("distro", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("distro/x86_64/bad.img") && err.contains("cannot verify"),
        "{err}"
    );
    assert!(s2.kept_files().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stall_404_unknown_and_eviction() {
    let up = Upstream::start().await;
    for (i, p) in ["/a", "/b", "/c", "/s"].iter().enumerate() {
        up.put(p, upstream::data(1 << 20, i as u64 + 1));
    }
    let files: Vec<_> = ["a", "b", "c", "s", "gone"]
        .iter()
        .map(|n| (*n, "f.bin", up.url(&format!("/{n}")), None, None))
        .collect();
    let cfg = CacheConfig {
        max_bytes: (5 << 20) / 2,
        idle_timeout_secs: 1,
        ..CacheConfig::default()
    };
    let s = setup(catalog(&files), cfg).await;

    // Stalled upstream: the client gets an error, nothing is kept.
    up.next_mode("/s", Mode::StallAfter(100_000));
    let (code, _) = common::curl(&["--fail", &s.url("s", "f.bin")]).await;
    assert_ne!(code, 0);
    assert!(s.kept_files().is_empty());
    // Upstream 404: 502 for the client.
    let (code, out) = common::curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &s.url("gone", "f.bin"),
    ])
    .await;
    assert_eq!(
        (code, String::from_utf8_lossy(&out).to_string()),
        (0, "502".to_string())
    );
    // Not in the catalog: 404, and no upstream request.
    let (_, out) = common::curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{}/cache/a/x86_64/other", s.srv.addr),
    ])
    .await;
    assert_eq!(String::from_utf8_lossy(&out), "404");

    // LRU: a, b, then a again, then c: b goes.
    for n in ["a", "b"] {
        assert!(curl_sha(&s.url(n, "f.bin")).await.0);
        tokio::time::sleep(Duration::from_millis(1100)).await; // last_used has 1 s resolution
    }
    assert!(curl_sha(&s.url("a", "f.bin")).await.0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(curl_sha(&s.url("c", "f.bin")).await.0);
    let held: Vec<String> = s.cache.held().iter().map(|h| h.entry.clone()).collect();
    assert_eq!(held, vec!["a".to_string(), "c".to_string()]);
    assert_eq!(
        s.kept_files(),
        vec![
            "cache/files/a/x86_64/f.bin".to_string(),
            "cache/files/c/x86_64/f.bin".to_string()
        ]
    );
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.dir.path().join("cache/index.json")).unwrap())
            .unwrap();
    assert_eq!(idx["files"].as_array().unwrap().len(), 2);
    // The index endpoint.
    let (code, body) =
        common::curl(&["--fail", &format!("http://{}/cache/index.json", s.srv.addr)]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["total_bytes"], 2 << 20);
    // `kindling cache ls` table.
    let t = kindling_menu::cli::table(&s.cache.held());
    assert!(
        t.contains("x86_64/f.bin") && t.contains("1.0 MiB") && t.contains("2 files, 2.0 MiB"),
        "{t}"
    );
}
