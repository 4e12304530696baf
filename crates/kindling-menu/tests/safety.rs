//! Safe on a shared LAN (issue 13): `/cache/` never serves a byte from
//! outside the cache directory, only routed GETs (or operators) start
//! upstream fetches, within per-client limits, and menus never copy the
//! request's Host header into their URLs. Real servers and clients on
//! loopback; the "upstream" is a local fixture.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::upstream::{self, Upstream};
use http_body_util::BodyExt;
use kindling_menu::{
    Arch, Cache, CacheConfig, CacheExtension, Catalog, Menu, MenuConfig, MenuExtension,
};

/// (entry id, architecture, files as (name, URL))
type EntrySpec<'a> = (&'a str, &'a str, Vec<(String, String)>);

/// A catalog: per entry, an architecture and its files (name, URL).
fn catalog(entries: &[EntrySpec<'_>]) -> Vec<kindling_menu::Entry> {
    let mut t = String::new();
    for (id, arch, files) in entries {
        t.push_str(&format!(
            "[[entries]]\nid = \"{id}\"\ntitle = \"{id}\"\n[entries.arch.{arch}]\nkernel = \"{}\"\n",
            files[0].0
        ));
        for (name, url) in files {
            t.push_str(&format!(
                "[entries.arch.{arch}.files.\"{name}\"]\nurl = \"{url}\"\n"
            ));
        }
    }
    #[derive(serde::Deserialize)]
    struct F {
        entries: Vec<kindling_menu::Entry>,
    }
    toml::from_str::<F>(&t).unwrap().entries
}

fn menu_config(entries: Vec<kindling_menu::Entry>) -> MenuConfig {
    MenuConfig {
        shipped_catalog: false,
        entries,
        ..MenuConfig::default()
    }
}

// ---------------------------------------------------------------------------
// 1. Symlink swap race on /cache/.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_symlink_swap_race_serves_nothing_from_outside() {
    const INSIDE_LEN: usize = 16 * 1024;
    const OUTSIDE_LEN: usize = 40 * 1024;
    const REQUESTS: u64 = 20_000;
    const CLIENTS: u64 = 8;

    let up = Upstream::start().await;
    let inside = vec![b'I'; INSIDE_LEN];
    up.put("/race.img", inside.clone());
    let cat = Arc::new(
        Catalog::load(&menu_config(catalog(&[(
            "race",
            "x86_64",
            vec![("race.img".into(), up.url("/race.img"))],
        )])))
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(CacheConfig::default(), dir.path().join("cache"), cat).unwrap();
    // Cached by an operator (prefetch): indexed, served as a hit.
    cache.prefetch("race", Some(Arch::X86_64)).await.unwrap();
    assert_eq!(up.gets("/race.img"), 1);
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), vec![b'O'; OUTSIDE_LEN]).unwrap();

    let c = cache.clone();
    let srv = common::serve(&dir.path().join("data"), move |_| {
        vec![Arc::new(CacheExtension::new(c))]
    })
    .await;
    let url: hyper::Uri = format!("http://{}/cache/race/x86_64/race.img", srv.addr)
        .parse()
        .unwrap();

    // The flipper: the cached name becomes, by atomic renames, in turn the
    // regular file (a hard link to it), a symlink to the outside file by
    // absolute path, and one by a relative path.
    let stop = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicU64::new(0));
    let files = dir.path().join("cache/files/race/x86_64");
    let keep = files.join(".keep");
    std::fs::hard_link(files.join("race.img"), &keep).unwrap();
    let flipper = {
        let (stop, flips, files) = (stop.clone(), flips.clone(), files.clone());
        let abs = outside.join("secret");
        std::thread::spawn(move || {
            let name = files.join("race.img");
            let tmp = files.join(".flip");
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&tmp);
                match i % 4 {
                    0 => std::os::unix::fs::symlink(&abs, &tmp).unwrap(),
                    2 => std::os::unix::fs::symlink("../../../../outside/secret", &tmp).unwrap(),
                    _ => std::fs::hard_link(&keep, &tmp).unwrap(),
                }
                std::fs::rename(&tmp, &name).unwrap();
                i += 1;
                flips.fetch_add(1, Ordering::Relaxed);
                std::thread::yield_now();
            }
            // Leave the regular file in place.
            let _ = std::fs::remove_file(&tmp);
            std::fs::hard_link(&keep, &tmp).unwrap();
            std::fs::rename(&tmp, &name).unwrap();
        })
    };

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            // (ok, refused, other status, outside bytes, wrong bodies)
            let mut out = [0u64; 5];
            for _ in 0..REQUESTS / CLIENTS {
                let resp = tokio::time::timeout(Duration::from_secs(60), client.get(url.clone()))
                    .await
                    .expect("request timed out")
                    .expect("request failed");
                let status = resp.status();
                let body =
                    tokio::time::timeout(Duration::from_secs(60), resp.into_body().collect())
                        .await
                        .expect("body timed out")
                        .expect("body failed")
                        .to_bytes();
                out[3] += body.iter().filter(|b| **b == b'O').count() as u64;
                match status.as_u16() {
                    200 => {
                        out[0] += 1;
                        if body.len() != INSIDE_LEN || body.iter().any(|b| *b != b'I') {
                            out[4] += 1;
                        }
                    }
                    404 => out[1] += 1,
                    _ => out[2] += 1,
                }
            }
            out
        });
    }
    let mut total = [0u64; 5];
    while let Some(r) = tasks.join_next().await {
        for (t, x) in total.iter_mut().zip(r.unwrap()) {
            *t += x;
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    let [ok, refused, other, outside_bytes, wrong] = total;
    eprintln!(
        "symlink race: {} requests, {ok} served (inside file), {refused} refused (symlink), {other} other, {} flips, {outside_bytes} bytes from outside",
        ok + refused + other,
        flips.load(Ordering::Relaxed)
    );
    assert_eq!(ok + refused + other, REQUESTS);
    assert_eq!(outside_bytes, 0, "bytes of the outside file were served");
    assert_eq!(
        wrong, 0,
        "a 200 carried something else than the inside file"
    );
    assert_eq!(other, 0, "unexpected statuses");
    // Both states were seen (the race really ran).
    assert!(ok > 0, "never served the regular file");
    assert!(
        cache.counters()["refused_file"] > 0,
        "never saw the symlink: {:?}",
        cache.counters()
    );
    // The same counters are the cache's /metrics series.
    let mut r = prometheus_client::registry::Registry::default();
    cache.register(&mut r);
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &r).unwrap();
    for line in [
        format!(
            "kindling_cache_refused_total{{reason=\"file\"}} {}\n",
            cache.counters()["refused_file"]
        ),
        "kindling_cache_refused_total{reason=\"head\"} 0\n".into(),
        "kindling_cache_fetches_total 1\n".into(),
        "# TYPE kindling_cache_fetches_total counter\n".into(),
    ] {
        assert!(text.contains(&line), "{line} missing in\n{text}");
    }
    // Still held and served afterwards; nothing fetched again.
    let (code, body) = common::curl(&["--fail", &url.to_string()]).await;
    assert_eq!((code, body.len()), (0, INSIDE_LEN));
    assert_eq!(up.gets("/race.img"), 1);
    assert_eq!(cache.held().len(), 1);
}

// ---------------------------------------------------------------------------
// 2. Who starts upstream fetches.

/// curl from a chosen loopback address: (HTTP status, headers, body).
async fn curl_from(from: &str, args: &[&str]) -> (u16, String, Vec<u8>) {
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "120",
            "--interface",
            from,
            "-D",
            "/dev/stderr",
            "-w",
            "\n%{http_code}",
        ])
        .args(args)
        .output()
        .await
        .expect("curl is installed");
    let mut body = out.stdout;
    let nl = body.iter().rposition(|b| *b == b'\n').unwrap();
    let code: u16 = std::str::from_utf8(&body[nl + 1..])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    body.truncate(nl);
    (
        code,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        body,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_fetches_only_for_routed_gets_within_client_limits() {
    let up = Upstream::start().await;
    let mut files = Vec::new();
    for i in 1..=6 {
        let p = format!("/a{i}");
        let data = upstream::data(100_000 + i * 1000, i as u64);
        up.put(&p, data.clone());
        files.push((format!("a{i}"), up.url(&p), data));
    }
    let big = upstream::data(4 << 20, 99);
    up.put("/big", big.clone());
    up.put("/g", b"gamma".to_vec());
    let entries = catalog(&[
        (
            "alpha",
            "x86_64",
            files
                .iter()
                .map(|(n, u, _)| (n.clone(), u.clone()))
                .collect(),
        ),
        ("beta", "x86_64", vec![("big".into(), up.url("/big"))]),
        ("gamma", "arm64", vec![("g".into(), up.url("/g"))]),
    ]);
    let cfg = menu_config(entries);
    let cache_cfg = CacheConfig {
        client_max_fetches: 1,
        client_miss_burst: 3,
        // No refill: the bucket's state does not depend on how fast the
        // test runs.
        client_misses_per_minute: 0,
        ..CacheConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let cat = Arc::new(Catalog::load(&cfg).unwrap());
    let cache = Cache::open(cache_cfg, dir.path().join("cache"), cat.clone()).unwrap();
    let menu = Arc::new(Menu::new(cfg, cat, None, true));
    let c = cache.clone();
    let srv = common::serve(&dir.path().join("data"), move |_| {
        vec![
            Arc::new(CacheExtension::new(c.clone())),
            Arc::new(MenuExtension::new(menu, None).with_cache(Some(c))),
        ]
    })
    .await;
    let base = format!("http://{}", srv.addr);
    let url = |e: &str, a: &str, f: &str| format!("{base}/cache/{e}/{a}/{f}");
    let a1 = url("alpha", "x86_64", "a1");
    let menu_url = format!("{base}/menu.ipxe?arch=x86_64&platform=efi");
    let (one, two, three) = ("127.0.0.1", "127.0.0.2", "127.0.0.3");

    // HEAD of an uncached file: 404, no fetch.
    let (code, _, _) = curl_from(one, &["-I", &a1]).await;
    assert_eq!(code, 404);
    // GET from a client no menu routed to anything: 404, no fetch.
    let (code, _, _) = curl_from(one, &[&a1]).await;
    assert_eq!(code, 404);
    assert_eq!(up.gets("/a1"), 0);

    // The client is handed the x86_64 menu: routed to alpha and beta.
    let (code, _, m) = curl_from(one, &[&menu_url]).await;
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&m).contains("/cache/alpha/x86_64/a1"));
    // HEAD still never fetches.
    let (code, _, _) = curl_from(one, &["-I", &a1]).await;
    assert_eq!(code, 404);
    assert_eq!(up.gets("/a1"), 0);
    // An entry it is not routed to (arm64 only): no fetch.
    let (code, _, _) = curl_from(one, &[&url("gamma", "arm64", "g")]).await;
    assert_eq!(code, 404);
    assert_eq!(up.gets("/g"), 0);

    // A routed GET fetches (once), and is served.
    let (code, _, body) = curl_from(one, &[&a1]).await;
    assert_eq!(code, 200);
    assert_eq!(body, files[0].2);
    assert_eq!(up.gets("/a1"), 1);
    // HEAD of a cached file: answered from disk.
    let (code, head, _) = curl_from(one, &["-I", &a1]).await;
    assert_eq!(code, 200);
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains(&format!("content-length: {}", files[0].2.len())),
        "{head}"
    );
    assert!(head.contains("last-modified: "), "{head}");
    assert!(head.contains("x-kindling-cache: hit"), "{head}");
    // Range from disk.
    let (code, _, body) = curl_from(one, &["-r", "10-19", &a1]).await;
    assert_eq!((code, &body[..]), (206, &files[0].2[10..20]));

    // Per-client bucket: three misses in all, the fourth is refused.
    for (i, f) in files.iter().enumerate().skip(1).take(2) {
        let (code, _, body) = curl_from(one, &[&url("alpha", "x86_64", &f.0)]).await;
        assert_eq!(code, 200, "a{}", i + 1);
        assert_eq!(body, f.2);
    }
    let a4 = url("alpha", "x86_64", "a4");
    let (code, head, body) = curl_from(one, &[&a4]).await;
    assert_eq!(code, 429, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: "),
        "{head}"
    );
    assert!(
        String::from_utf8_lossy(&body).contains("too many cache misses"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(up.gets("/a4"), 0);
    // Cached files are still served to that client (hits are free).
    let (code, _, body) = curl_from(one, &[&a1]).await;
    assert_eq!((code, body), (200, files[0].2.clone()));

    // Another client, handed the menu, is served meanwhile.
    assert_eq!(curl_from(two, &[&menu_url]).await.0, 200);
    let (code, _, body) = curl_from(two, &[&a4]).await;
    assert_eq!(code, 200);
    assert_eq!(body, files[3].2);
    assert_eq!(up.gets("/a4"), 1);

    // Running fetches per client: a third client holds one (upstream gated),
    // a second miss of its own is refused; it may still join the running one.
    assert_eq!(curl_from(three, &[&menu_url]).await.0, 200);
    up.close_gate_after(1 << 20);
    let held = {
        let u = url("beta", "x86_64", "big");
        tokio::spawn(async move { curl_from(three, &[&u]).await })
    };
    for _ in 0..3000 {
        if cache.in_progress().iter().any(|p| p.0 == "beta/x86_64/big") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, _, body) = curl_from(three, &[&url("alpha", "x86_64", "a5")]).await;
    assert_eq!(code, 429);
    assert!(
        String::from_utf8_lossy(&body).contains("downloads from upstream running"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(up.gets("/a5"), 0);
    // Client two is not held up by client three.
    let (code, _, body) = curl_from(two, &[&url("alpha", "x86_64", "a5")]).await;
    assert_eq!((code, body), (200, files[4].2.clone()));
    up.open_gate();
    let (code, _, body) = held.await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(body, big);
    assert_eq!(up.gets("/big"), 1);

    // Every refusal was counted.
    let k = cache.counters();
    assert_eq!(k["refused_head"], 2, "{k:?}");
    assert_eq!(k["refused_not_routed"], 2, "{k:?}");
    assert_eq!(k["refused_client_rate"], 1, "{k:?}");
    assert_eq!(k["refused_client_busy"], 1, "{k:?}");
    assert_eq!(k["fetches"], 6, "{k:?}");
    let (code, _, idx) = curl_from(one, &[&format!("{base}/cache/index.json")]).await;
    assert_eq!(code, 200);
    let idx: serde_json::Value = serde_json::from_slice(&idx).unwrap();
    assert_eq!(idx["counters"]["refused_client_busy"], 1);
}

/// A profile that boots from `/cache/` routes every client to that entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_naming_a_cache_file_routes_it() {
    let up = Upstream::start().await;
    up.put("/k", b"kernel".to_vec());
    up.put("/o", b"other".to_vec());
    let cfg = menu_config(catalog(&[
        ("prof", "x86_64", vec![("k".into(), up.url("/k"))]),
        ("other", "x86_64", vec![("o".into(), up.url("/o"))]),
    ]));
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("profiles")).unwrap();
    std::fs::create_dir_all(data.path().join("groups")).unwrap();
    std::fs::write(
        data.path().join("profiles/p.json"),
        r#"{"id":"p","boot":{"kernel":"http://10.0.0.2:8080/cache/prof/x86_64/k","args":["console=ttyS0"]}}"#,
    )
    .unwrap();
    let endpoints =
        kindling_menu::Endpoints::build(&cfg, &CacheConfig::default(), data.path(), None).unwrap();
    let srv = common::serve(data.path(), |_| {
        let d: Arc<dyn kindling_menu::MenuDefaults> = Arc::new(kindling_menu::GroupDefaults);
        endpoints.extensions(Some(d))
    })
    .await;
    let base = format!("http://{}", srv.addr);
    let (code, _, body) = curl_from("127.0.0.1", &[&format!("{base}/cache/prof/x86_64/k")]).await;
    assert_eq!((code, &body[..]), (200, &b"kernel"[..]));
    let (code, _, _) = curl_from("127.0.0.1", &[&format!("{base}/cache/other/x86_64/o")]).await;
    assert_eq!(code, 404);
    assert_eq!((up.gets("/k"), up.gets("/o")), (1, 0));
}

// ---------------------------------------------------------------------------
// 3. The Host header never reaches a menu's URLs.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn menu_urls_ignore_the_host_header() {
    let up = Upstream::start().await;
    let entries = catalog(&[("alpha", "x86_64", vec![("k".into(), up.url("/k"))])]);
    for base_url in [None, Some("http://boot.lan:8080/")] {
        let cfg = MenuConfig {
            base_url: base_url.map(str::to_string),
            ..menu_config(entries.clone())
        };
        let data = tempfile::tempdir().unwrap();
        let endpoints =
            kindling_menu::Endpoints::build(&cfg, &CacheConfig::default(), data.path(), None)
                .unwrap();
        let srv = common::serve(data.path(), |_| endpoints.extensions(None)).await;
        let want = match base_url {
            Some(_) => "http://boot.lan:8080".to_string(),
            None => format!("http://{}", srv.addr),
        };
        for q in ["", "?arch=x86_64&platform=efi", "?arch=i386"] {
            let url = format!("http://{}/menu.ipxe{q}", srv.addr);
            for host in ["evil.example:666", "evil.example", "[::1]:1"] {
                let (code, body) =
                    common::curl(&["--fail", "-H", &format!("Host: {host}"), &url]).await;
                let body = String::from_utf8(body).unwrap();
                assert_eq!(code, 0, "{url} Host: {host}");
                assert!(!body.contains("evil"), "Host copied into the menu:\n{body}");
                assert!(!body.contains("[::1]:1"), "Host copied:\n{body}");
                assert!(
                    body.contains(&format!("{want}/")),
                    "{want} missing:\n{body}"
                );
                if q.contains("x86_64") {
                    assert!(
                        body.contains(&format!("kernel {want}/cache/alpha/x86_64/k")),
                        "{body}"
                    );
                }
            }
        }
    }
}
