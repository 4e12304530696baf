//! A real iPXE (QEMU's NIC ROM, under TCG) boots a menu entry whose kernel
//! comes through the cache from the fixture upstream.
//!
//! Networking is QEMU's user-mode stack (slirp): its DHCP lives inside the
//! QEMU process and never touches a host interface; the guest reaches
//! 127.0.0.1 as 10.0.2.2. The "kernel" is Debian's `ipxe.lkrn`, which runs
//! its kernel command line as an iPXE script: it prints a marker.
//! Needs qemu-system-x86, ipxe-qemu (NIC ROM) and ipxe (/boot/ipxe.lkrn).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::upstream::{self, Upstream};
use kindling_menu::{
    Cache, CacheConfig, CacheExtension, Catalog, MachineDefault, Menu, MenuConfig, MenuExtension,
};

const MARKER: &str = "KINDLING-CACHE-BOOT-OK";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipxe_boots_menu_entry_through_cache() {
    let lkrn = std::fs::read("/boot/ipxe.lkrn").expect("/boot/ipxe.lkrn (apt-get install -y ipxe)");
    let up = Upstream::start().await;
    up.put("/ipxe.lkrn", lkrn.clone());
    let entry: kindling_menu::Entry = toml::from_str(&format!(
        "id = \"lkrn\"\ntitle = \"iPXE via the cache\"\n[arch.x86_64]\nkernel = \"ipxe.lkrn\"\nargs = \"echo {MARKER}\"\n[arch.x86_64.files.\"ipxe.lkrn\"]\nurl = \"{}\"\nsha256 = \"{}\"\n",
        up.url("/ipxe.lkrn"),
        upstream::sha256_hex(&lkrn)
    ))
    .unwrap();
    let (mac, mac2) = ("52:54:00:4b:49:4e", "52:54:00:4b:49:4f");
    // The guest reaches the host as 10.0.2.2 (QEMU user-mode networking),
    // while the server sees its connections arrive on 127.0.0.1: the
    // menus' URLs need `base_url` (they never copy the Host header).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = MenuConfig {
        base_url: Some(format!("http://10.0.2.2:{port}")),
        entries: vec![entry],
        machines: vec![
            MachineDefault {
                mac: mac.into(),
                entry: "lkrn".into(),
                timeout_secs: 0,
            },
            MachineDefault {
                mac: mac2.into(),
                entry: "lkrn".into(),
                timeout_secs: 1,
            },
        ],
        ..MenuConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let catalog = Arc::new(Catalog::load(&cfg).unwrap());
    let cache = Cache::open(
        CacheConfig::default(),
        dir.path().join("cache"),
        catalog.clone(),
    )
    .unwrap();
    let menu = Arc::new(Menu::new(cfg, catalog, None, true));
    let c = cache.clone();
    // The menu routes the machine to its entries: its GETs may fetch them.
    let srv = common::serve_on(listener, &dir.path().join("data"), move |_| {
        vec![
            Arc::new(CacheExtension::new(c.clone())),
            Arc::new(MenuExtension::new(menu, None).with_cache(Some(c))),
        ]
    })
    .await;
    assert_eq!(srv.addr.port(), port);
    // 1. Straight to the entry (timeout 0): the first fetch goes upstream.
    let log = boot(dir.path(), port, mac).await;
    assert_booted(&log);
    assert!(
        !log.contains("Kindling boot menu"),
        "menu shown although the default has no timeout"
    );
    assert_eq!(up.gets("/ipxe.lkrn"), 1);
    // 2. A machine that sees the menu for 1 s: real iPXE runs menu/item/choose,
    // the default wins, the kernel comes from the warm cache.
    let log = boot(dir.path(), port, mac2).await;
    assert_booted(&log);
    assert!(
        log.contains("Kindling boot menu (x86_64 pcbios)"),
        "no menu:\n{log}"
    );
    assert_eq!(
        up.gets("/ipxe.lkrn"),
        1,
        "the second boot must come from the cache"
    );
    let held = cache.held();
    assert_eq!(held.len(), 1);
    assert!(held[0].verified);
}

fn assert_booted(log: &str) {
    assert!(
        log.contains("Booting iPXE via the cache"),
        "the entry was not chosen:\n{log}"
    );
    let fetched = log
        .find("/cache/lkrn/x86_64/ipxe.lkrn... ok")
        .unwrap_or_else(|| panic!("kernel not fetched through the cache:\n{log}"));
    assert!(
        log[fetched..].contains(MARKER),
        "the cached kernel did not run:\n{log}"
    );
}

/// Boots a QEMU VM (TCG, SeaBIOS + the virtio NIC's iPXE ROM) with this MAC
/// and returns its serial output once the marker appeared (or 180 s passed).
async fn boot(dir: &std::path::Path, port: u16, mac: &str) -> String {
    let serial = dir.join(format!("serial-{}.log", mac.replace(':', "")));
    let mut qemu = tokio::process::Command::new("qemu-system-x86_64")
        .args(["-machine", "q35", "-accel", "tcg", "-m", "256", "-smp", "1"])
        .args([
            "-nodefaults",
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
        ])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-netdev")
        .arg(format!(
            "user,id=n0,ipv6=off,bootfile=http://10.0.2.2:{}/menu.ipxe",
            port
        ))
        .arg("-device")
        .arg(format!("virtio-net-pci,netdev=n0,mac={mac},bootindex=1"))
        .args(["-boot", "n"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("qemu-system-x86_64 (apt-get install -y qemu-system-x86 ipxe-qemu)");

    let mut log = String::new();
    for _ in 0..900 {
        log = String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
        if log.contains(MARKER) {
            break;
        }
        if let Ok(Some(st)) = qemu.try_wait() {
            panic!("qemu exited early ({st}):\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if std::env::var_os("KINDLING_SHOW_SERIAL").is_some() {
        eprintln!("{log}");
    }
    let _ = qemu.kill().await;
    let _ = qemu.wait().await;
    log
}
