//! `kindling cache prefetch` (directly and through a running server) and `ls`.

mod common;

use std::sync::Arc;

use clap::Parser;
use common::upstream::{self, Upstream};
use kindling_menu::cli::{self, CacheArgs};
use kindling_menu::{Cache, CacheConfig, CacheExtension, Catalog, MenuConfig};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: CacheArgs,
}

fn args(a: &[&str]) -> CacheArgs {
    Cli::try_parse_from(std::iter::once("cache").chain(a.iter().copied()))
        .unwrap()
        .args
}

#[test]
fn prefetch_direct_and_via_server_then_ls() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(Upstream::start());
    let (a, b) = (upstream::data(300_000, 1), upstream::data(200_000, 2));
    up.put("/k", a.clone());
    up.put("/i", b.clone());
    up.put(
        "/SUMS",
        format!(
            "{}  k\n{}  i\n",
            upstream::sha256_hex(&a),
            upstream::sha256_hex(&b)
        )
        .into_bytes(),
    );
    let entry: kindling_menu::Entry = toml::from_str(&format!(
        "id = \"tiny\"\ntitle = \"Tiny\"\n[arch.x86_64]\nkernel = \"k\"\ninitrd = [\"i\"]\nsums = {{ url = \"{}\" }}\n[arch.x86_64.files.k]\nurl = \"{}\"\nsums_name = \"k\"\n[arch.x86_64.files.i]\nurl = \"{}\"\nsums_name = \"i\"\n",
        up.url("/SUMS"),
        up.url("/k"),
        up.url("/i")
    ))
    .unwrap();
    let menu = MenuConfig {
        entries: vec![entry],
        ..MenuConfig::default()
    };
    let data = tempfile::tempdir().unwrap();
    let cache_cfg = CacheConfig::default();

    // Unknown entry: an error naming it.
    let e = cli::run(&args(&["prefetch", "nope"]), &menu, &cache_cfg, data.path()).unwrap_err();
    assert!(e.to_string().contains("\"nope\""), "{e}");

    // Direct.
    let code = cli::run(&args(&["prefetch", "tiny"]), &menu, &cache_cfg, data.path()).unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("cache/index.json")).unwrap())
            .unwrap();
    let files = idx["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert!(files.iter().all(|f| f["verified"] == true));
    assert_eq!(
        std::fs::read(data.path().join("cache/files/tiny/x86_64/k")).unwrap(),
        a
    );
    assert_eq!(
        cli::run(&args(&["ls"]), &menu, &cache_cfg, data.path()).unwrap(),
        std::process::ExitCode::SUCCESS
    );
    assert_eq!(up.gets("/k"), 1);

    // Through a running server with its own cache directory.
    let data2 = tempfile::tempdir().unwrap();
    let catalog = Arc::new(Catalog::load(&menu).unwrap());
    let srv = rt.block_on(async {
        let cache = Cache::open(cache_cfg.clone(), data2.path().join("cache"), catalog).unwrap();
        let c = cache.clone();
        let srv = common::serve(&data2.path().join("data"), move |_| {
            vec![Arc::new(CacheExtension::new(c))]
        })
        .await;
        (srv, cache)
    });
    let base = format!("http://{}", srv.0.addr);
    // Without the server's operator token (another cache directory) the
    // GETs are anonymous, and no machine is routed to "tiny": refused.
    let code = cli::run(
        &args(&["prefetch", "--server", &base, "--arch", "x86_64", "tiny"]),
        &menu,
        &cache_cfg,
        data.path(),
    )
    .unwrap();
    assert_eq!(code, std::process::ExitCode::from(1));
    assert_eq!(srv.1.held().len(), 0);
    assert_eq!(up.gets("/k"), 1);
    // With the same configuration as the server (its cache directory, so
    // its operator token): the server fetches.
    let server_cfg = CacheConfig {
        dir: Some(data2.path().join("cache")),
        ..cache_cfg.clone()
    };
    let code = cli::run(
        &args(&["prefetch", "--server", &base, "--arch", "x86_64", "tiny"]),
        &menu,
        &server_cfg,
        data.path(),
    )
    .unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert_eq!(srv.1.held().len(), 2);
    assert_eq!(up.gets("/k"), 2);
    // Bad architecture.
    assert!(
        cli::run(
            &args(&["prefetch", "--arch", "mips", "tiny"]),
            &menu,
            &cache_cfg,
            data.path()
        )
        .is_err()
    );
    drop(srv);
}

#[test]
fn reopen_keeps_indexed_files_and_drops_strays() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(Upstream::start());
    up.put("/k", upstream::data(1000, 3));
    let entry: kindling_menu::Entry = toml::from_str(&format!(
        "id = \"e\"\ntitle = \"E\"\n[arch.x86_64]\nkernel = \"k\"\n[arch.x86_64.files.k]\nurl = \"{}\"\n",
        up.url("/k")
    ))
    .unwrap();
    let menu = MenuConfig {
        entries: vec![entry],
        ..MenuConfig::default()
    };
    let catalog = Arc::new(Catalog::load(&menu).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let cdir = dir.path().join("cache");
    rt.block_on(async {
        let c = Cache::open(CacheConfig::default(), cdir.clone(), catalog.clone()).unwrap();
        c.prefetch("e", None).await.unwrap();
    });
    std::fs::write(cdir.join("files/e/x86_64/stray"), "x").unwrap();
    std::fs::write(cdir.join("tmp/old.part"), "x").unwrap();
    rt.block_on(async {
        let c = Cache::open(CacheConfig::default(), cdir.clone(), catalog.clone()).unwrap();
        assert_eq!(c.held().len(), 1);
        // Served from disk: no second upstream GET.
        c.prefetch("e", None).await.unwrap();
    });
    assert_eq!(up.gets("/k"), 1);
    assert!(!cdir.join("files/e/x86_64/stray").exists());
    assert!(!cdir.join("tmp/old.part").exists());
    // A lost file drops its index entry.
    std::fs::remove_file(cdir.join("files/e/x86_64/k")).unwrap();
    let c = rt.block_on(async {
        Cache::open(CacheConfig::default(), cdir.clone(), catalog.clone()).unwrap()
    });
    assert!(c.held().is_empty());
}
