//! A minimal server for benchmarks and manual tests: kindling_http with the
//! cache (and menu) extensions, one catalog entry per `--file NAME=URL`.
//!
//! `cache-server --listen 127.0.0.1:18082 --dir /tmp/c --file blob.bin=http://127.0.0.1:18081/blob.bin`
//! then `curl http://127.0.0.1:18082/cache/bench/x86_64/blob.bin`.
//!
//! The loopback client (127.0.0.1) counts as a machine handed the menu of
//! the `bench` entry, so its GETs may start the upstream fetch (see "Who may
//! start an upstream fetch" in docs/menus.md); other clients fetch
//! `/menu.ipxe?arch=x86_64` first.

use std::sync::Arc;

use kindling_menu::{Cache, CacheConfig, CacheExtension, Catalog, Menu, MenuConfig, MenuExtension};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen = "127.0.0.1:18082".to_string();
    let mut dir = std::env::temp_dir().join("kindling-cache-server");
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs a value")?,
            "--dir" => dir = args.next().ok_or("--dir needs a value")?.into(),
            "--file" => files.push(args.next().ok_or("--file needs NAME=URL")?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let mut toml = String::from("id = \"bench\"\ntitle = \"bench\"\n[arch.x86_64]\n");
    let first = files
        .first()
        .and_then(|f| f.split_once('='))
        .map(|(n, _)| n.to_string())
        .ok_or("at least one --file NAME=URL")?;
    toml.push_str(&format!("kernel = \"{first}\"\n"));
    for f in &files {
        let (n, u) = f.split_once('=').ok_or("--file needs NAME=URL")?;
        toml.push_str(&format!("[arch.x86_64.files.\"{n}\"]\nurl = \"{u}\"\n"));
    }
    let entry: kindling_menu::Entry = ::toml::from_str(&toml)?;
    let menu_cfg = MenuConfig {
        entries: vec![entry],
        ..MenuConfig::default()
    };
    let catalog = Arc::new(Catalog::load(&menu_cfg)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let cache = Cache::open(CacheConfig::default(), dir.join("cache"), catalog.clone())?;
        let menu = Arc::new(Menu::new(menu_cfg, catalog, None, true));
        let data = kindling_model::DataDir::new(dir.join("data"));
        data.ensure_layout()?;
        let snapshot = kindling_model::Loader::new(data.clone()).load();
        let mut shared = kindling_http::Shared::new(data, snapshot);
        cache.note_menu(
            std::net::Ipv4Addr::LOCALHOST.into(),
            kindling_menu::Arch::X86_64,
            vec!["bench".to_string()].into(),
        );
        shared.extensions = vec![
            Arc::new(CacheExtension::new(cache.clone())),
            Arc::new(MenuExtension::new(menu, None).with_cache(Some(cache))),
        ];
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        eprintln!("cache-server listening on {}", listener.local_addr()?);
        let cancel = tokio_util::sync::CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            c.cancel();
        });
        kindling_http::serve(listener, Arc::new(shared), cancel).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
