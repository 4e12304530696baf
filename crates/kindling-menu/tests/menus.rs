//! Every generated menu passes the iPXE checker; /menu.ipxe through a real
//! kindling_http server with curl; per-MAC defaults from config and groups.

mod common;

use std::sync::Arc;

use kindling_menu::check::check_script;
use kindling_menu::{Arch, Catalog, Choice, Menu, MenuConfig, MenuRequest, Platform};

fn fcos_assets(dir: &std::path::Path) {
    let s = dir.join("fedora-coreos/stable");
    let r = s.join("43.20260413.3.2");
    std::fs::create_dir_all(&r).unwrap();
    std::fs::write(s.join("state.json"), r#"{"stream":"stable","arch":"x86_64","current":"43.20260413.3.2","releases":["43.20260413.3.2"]}"#).unwrap();
    for f in [
        "live-kernel.x86_64",
        "live-initramfs.x86_64.img",
        "live-rootfs.x86_64.img",
    ] {
        std::fs::write(r.join(format!("fedora-coreos-43.20260413.3.2-{f}")), "x").unwrap();
    }
}

fn assert_parses(script: &str, what: &str) {
    let problems = check_script(script);
    assert!(problems.is_empty(), "{what}: {problems:?}\n{script}");
}

#[test]
fn every_generated_menu_parses() {
    let assets = tempfile::tempdir().unwrap();
    fcos_assets(assets.path());
    let mut cfg = MenuConfig::default();
    // An operator addition with a pinned checksum and odd characters in the title.
    let extra: toml::Table = toml::from_str(
        r#"
id = "custom"
title = "Custom ${evil} thing"
section = "Mine"
[arch.arm64]
kernel = "k"
initrd = ["a/i1", "i2"]
args = "console=ttyAMA0 x={file:a/i1} mac=${mac}"
[arch.arm64.files.k]
url = "http://example.invalid/k"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[arch.arm64.files."a/i1"]
url = "http://example.invalid/i1"
[arch.arm64.files.i2]
url = "http://example.invalid/i2"
"#,
    )
    .unwrap();
    cfg.entries.push(extra.try_into().unwrap());
    let catalog = Arc::new(Catalog::load(&cfg).unwrap());
    let mut count = 0;
    for cache in [true, false] {
        for with_fcos in [true, false] {
            let menu = Menu::new(
                cfg.clone(),
                catalog.clone(),
                with_fcos.then(|| assets.path().to_path_buf()),
                cache,
            );
            for arch in Arch::ALL {
                for platform in [Platform::Efi, Platform::Pcbios] {
                    let offered = menu.offered(arch, platform);
                    assert!(
                        offered.contains(&"local-disk".to_string())
                            && offered.contains(&"shell".to_string())
                    );
                    assert_eq!(
                        offered.contains(&"fedora-coreos-stable".to_string()),
                        with_fcos && arch == Arch::X86_64
                    );
                    let mut choices = vec![None];
                    for id in offered.iter().chain([&"not-an-entry".to_string()]) {
                        for t in [0, 7] {
                            choices.push(Some(Choice {
                                entry: id.clone(),
                                timeout_secs: t,
                            }));
                        }
                    }
                    for choice in choices {
                        let req = MenuRequest {
                            arch,
                            platform,
                            base: "http://10.0.0.2:8080".into(),
                            choice: choice.clone(),
                        };
                        let script = menu.render(&req);
                        assert_parses(
                            &script,
                            &format!(
                                "{arch:?} {platform:?} cache={cache} fcos={with_fcos} {choice:?}"
                            ),
                        );
                        for id in &offered {
                            assert!(script.contains(&format!("\n:e-{id}\n")), "{id} missing");
                        }
                        if let Some(c) = &choice
                            && offered.contains(&c.entry)
                        {
                            assert!(script.contains(&format!("--default e-{}", c.entry)));
                            assert_eq!(
                                script.contains(&format!("goto e-{}\n:start", c.entry)),
                                c.timeout_secs == 0
                            );
                        }
                        assert!(
                            !script.contains("${evil}"),
                            "menu text must not expand variables"
                        );
                        count += 1;
                    }
                }
            }
            assert_parses(&menu.bootstrap("http://h:1"), "bootstrap");
        }
    }
    assert!(count > 100, "{count}");
}

#[test]
fn menu_contents_per_platform() {
    let assets = tempfile::tempdir().unwrap();
    fcos_assets(assets.path());
    let cfg = MenuConfig::default();
    let catalog = Arc::new(Catalog::load(&cfg).unwrap());
    let menu = Menu::new(cfg, catalog, Some(assets.path().into()), true);
    let r = |arch, platform| {
        menu.render(&MenuRequest {
            arch,
            platform,
            base: "http://k:8080".into(),
            choice: None,
        })
    };
    let bios = r(Arch::X86_64, Platform::Pcbios);
    assert!(bios.contains("sanboot --no-describe --drive 0x80"));
    assert!(
        bios.contains("chain --autofree http://k:8080/cache/netboot-xyz/x86_64/netboot.xyz.lkrn")
    );
    assert!(bios.contains("kernel http://k:8080/cache/debian/x86_64/linux initrd=initrd.gz vga=788 --- quiet || goto failed"));
    assert!(bios.contains("initrd --name initrd.gz http://k:8080/cache/debian/x86_64/initrd.gz"));
    assert!(bios.contains("modloop=http://k:8080/cache/alpine/x86_64/modloop-lts"));
    assert!(bios.contains("archiso_http_srv=http://k:8080/cache/arch/x86_64/"));
    assert!(bios.contains("coreos.live.rootfs_url=http://k:8080/assets/fedora-coreos/stable/43.20260413.3.2/fedora-coreos-43.20260413.3.2-live-rootfs.x86_64.img"));
    assert!(bios.contains("initrd --name main http://k:8080/assets/fedora-coreos/stable/43.20260413.3.2/fedora-coreos-43.20260413.3.2-live-initramfs.x86_64.img"));
    assert!(bios.contains("ignition.config.url=http://k:8080/ignition?mac=${mac:hexhyp}"));
    assert!(bios.contains("choose --default e-local-disk --timeout 10000 selected"));
    let efi = r(Arch::X86_64, Platform::Efi);
    assert!(efi.contains(":e-local-disk\necho Leaving iPXE"));
    assert!(efi.contains("netboot.xyz.efi"));
    let arm = r(Arch::Arm64, Platform::Efi);
    assert!(!arm.contains("e-arch") && !arm.contains("e-rocky") && !arm.contains("fedora-coreos"));
    assert!(arm.contains("netboot.xyz-arm64.efi") && arm.contains("/cache/debian/arm64/linux"));
    let arm_bios = r(Arch::Arm64, Platform::Pcbios);
    assert!(!arm_bios.contains("netboot-xyz"), "no BIOS image for arm64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn menu_over_http_with_mac_defaults() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("groups")).unwrap();
    std::fs::create_dir_all(data.path().join("profiles")).unwrap();
    std::fs::write(
        data.path().join("profiles/p.json"),
        r#"{"id":"p","boot":{"kernel":"/k"}}"#,
    )
    .unwrap();
    std::fs::write(
        data.path().join("groups/netboot.json"),
        r#"{"id":"netboot","profile":"p","selector":{"mac":"02:1a:4a:16:01:9c"},"metadata":{"menu_default":"debian","menu_timeout":4}}"#,
    )
    .unwrap();
    let mut cfg = MenuConfig::default();
    cfg.machines.push(kindling_menu::MachineDefault {
        mac: "52-54-00-AA-BB-CC".into(),
        entry: "alpine".into(),
        timeout_secs: 0,
    });
    // The wiring `kindling serve` uses: build, then extensions reading groups' defaults.
    let cache_cfg = kindling_menu::CacheConfig::default();
    let endpoints = kindling_menu::Endpoints::build(
        &cfg,
        &cache_cfg,
        data.path(),
        Some(data.path().join("assets")),
    )
    .unwrap();
    assert!(endpoints.warnings.is_empty(), "{:?}", endpoints.warnings);
    let srv = common::serve(data.path(), |_| {
        let d: Arc<dyn kindling_menu::MenuDefaults> = Arc::new(kindling_menu::GroupDefaults);
        endpoints.extensions(Some(d))
    })
    .await;
    let base = format!("http://{}", srv.addr);
    let get = |q: &str| {
        let url = format!("{base}/menu.ipxe{q}");
        async move {
            let (code, body) = common::curl(&["--fail", &url]).await;
            assert_eq!(code, 0, "{url}");
            String::from_utf8(body).unwrap()
        }
    };
    // Bare URL: a bootstrap that asks again with the machine's details.
    let boot = get("").await;
    assert_parses(&boot, "bootstrap");
    assert!(boot.contains(&format!("chain --autofree {base}/menu.ipxe?arch=${{buildarch}}&platform=${{platform}}&mac=${{mac:hexhyp}}")), "{boot}");
    // What iPXE then asks for (i386 = undionly.kpxe on BIOS).
    let m = get("?arch=i386&platform=pcbios&mac=00-11-22-33-44-55").await;
    assert_parses(&m, "plain");
    assert!(m.contains("--default e-local-disk --timeout 10000"));
    assert!(m.contains(&format!("kernel {base}/cache/debian/x86_64/linux")));
    // Config rule: straight to alpine.
    let m = get("?arch=x86_64&platform=efi&mac=52-54-00-aa-bb-cc").await;
    assert_parses(&m, "config rule");
    assert!(m.contains("goto e-alpine\n:start"), "{m}");
    // Group metadata: debian with a 4 s menu.
    let m = get("?arch=x86_64&platform=efi&mac=02-1a-4a-16-01-9c").await;
    assert_parses(&m, "group");
    assert!(
        m.contains("choose --default e-debian --timeout 4000 selected"),
        "{m}"
    );
    // Unknown architecture: a script that says so.
    let m = get("?arch=riscv64").await;
    assert_parses(&m, "unknown arch");
    assert!(m.contains("no menu for architecture riscv64"));
}

/// Prints a sample menu (`cargo test -p kindling-menu --test menus sample -- --nocapture --ignored`).
#[test]
#[ignore]
fn sample() {
    let cfg = MenuConfig::default();
    let catalog = Arc::new(Catalog::load(&cfg).unwrap());
    let menu = Menu::new(cfg, catalog, None, true);
    print!(
        "{}",
        menu.render(&MenuRequest {
            arch: Arch::X86_64,
            platform: Platform::Efi,
            base: "http://10.0.0.2:8080".into(),
            choice: None
        })
    );
}
