//! `/menu.ipxe`: iPXE menus generated from the catalog, one per architecture
//! and firmware platform.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use crate::catalog::{self, Arch, ArchSpec, Catalog, Entry, Kind};
use crate::config::MenuConfig;
use crate::fcos::{self, FcosLive};

/// iPXE's `${platform}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Efi,
    Pcbios,
}

impl Platform {
    pub fn parse(s: &str) -> Option<Platform> {
        match s {
            "efi" => Some(Platform::Efi),
            "pcbios" => Some(Platform::Pcbios),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Efi => "efi",
            Platform::Pcbios => "pcbios",
        }
    }
}

/// The entry a machine should get by default, and how long the menu shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub entry: String,
    /// 0 = boot it straight away (the menu appears only if it fails).
    pub timeout_secs: u64,
}

/// One menu to render.
#[derive(Debug, Clone)]
pub struct MenuRequest {
    pub arch: Arch,
    pub platform: Platform,
    /// `http://host:port` of this server as the machine reaches it.
    pub base: String,
    /// A per-machine default, if any.
    pub choice: Option<Choice>,
}

/// The menu generator.
pub struct Menu {
    cfg: MenuConfig,
    catalog: Arc<Catalog>,
    assets_dir: Option<PathBuf>,
    cache: bool,
}

/// Label of an entry in generated scripts.
fn label(id: &str) -> String {
    format!("e-{id}")
}

/// Menu text is not allowed to expand iPXE variables.
fn text(s: &str) -> String {
    s.replace("${", "$ {").replace(['\r', '\n'], " ")
}

/// What one menu line boots.
enum Item<'a> {
    Catalog(&'a Entry, Option<&'a ArchSpec>),
    Fcos(FcosLive),
}

impl Menu {
    /// `assets_dir`: where `kindling fcos pull` keeps Fedora CoreOS (served
    /// under `/assets/`); `cache`: whether file URLs go through `/cache/`.
    pub fn new(
        cfg: MenuConfig,
        catalog: Arc<Catalog>,
        assets_dir: Option<PathBuf>,
        cache: bool,
    ) -> Menu {
        Menu {
            cfg,
            catalog,
            assets_dir,
            cache,
        }
    }

    pub fn config(&self) -> &MenuConfig {
        &self.cfg
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The per-MAC default from `[[menu.machines]]` (MAC normalised).
    pub fn machine_choice(&self, mac: &str) -> Option<Choice> {
        let want = kindling_model::mac::normalize_mac(mac)?;
        self.cfg
            .machines
            .iter()
            .find(|m| kindling_model::mac::normalize_mac(&m.mac).as_deref() == Some(want.as_str()))
            .map(|m| Choice {
                entry: m.entry.clone(),
                timeout_secs: m.timeout_secs,
            })
    }

    /// A script that re-fetches the menu with the machine's architecture,
    /// platform and MAC (for clients sent to a bare `/menu.ipxe`).
    pub fn bootstrap(&self, base: &str) -> String {
        format!(
            "#!ipxe\n# Kindling: fetch the menu for this machine's architecture and firmware\nchain --autofree {base}/menu.ipxe?arch=${{buildarch}}&platform=${{platform}}&mac=${{mac:hexhyp}}&uuid=${{uuid}}\n"
        )
    }

    fn items(&self, arch: Arch, platform: Platform) -> Vec<Item<'_>> {
        let mut out = Vec::new();
        if let Some(assets) = &self.assets_dir {
            for s in &self.cfg.fcos_streams {
                if let Some(f) = fcos::discover(assets, s, arch) {
                    out.push(Item::Fcos(f));
                }
            }
        }
        for e in self.catalog.entries() {
            if !e.supports(arch) {
                continue;
            }
            let spec = e.arch.get(&arch);
            if e.kind == Kind::Chain {
                let img = spec.and_then(|s| match platform {
                    Platform::Efi => s.chain_efi.as_ref(),
                    Platform::Pcbios => s.chain_pcbios.as_ref(),
                });
                if img.is_none() {
                    continue;
                }
            }
            out.push(Item::Catalog(e, spec));
        }
        out
    }

    /// Ids offered on this architecture and platform, in menu order.
    pub fn offered(&self, arch: Arch, platform: Platform) -> Vec<String> {
        self.items(arch, platform)
            .iter()
            .map(|i| match i {
                Item::Catalog(e, _) => e.id.clone(),
                Item::Fcos(f) => f.id(),
            })
            .collect()
    }

    fn file_url(&self, base: &str, e: &Entry, arch: Arch, spec: &ArchSpec, name: &str) -> String {
        if self.cache {
            format!("{base}/cache/{}/{}/{name}", e.id, arch.as_str())
        } else {
            spec.files
                .get(name)
                .map(|f| f.url.clone())
                .unwrap_or_default()
        }
    }

    fn dir_url(&self, base: &str, e: &Entry, arch: Arch, spec: &ArchSpec) -> String {
        if self.cache {
            format!("{base}/cache/{}/{}/", e.id, arch.as_str())
        } else {
            spec.dir_url.clone().unwrap_or_default()
        }
    }

    /// Renders the menu script.
    pub fn render(&self, req: &MenuRequest) -> String {
        let base = req.base.trim_end_matches('/');
        let items = self.items(req.arch, req.platform);
        let ids: Vec<String> = items
            .iter()
            .map(|i| match i {
                Item::Catalog(e, _) => e.id.clone(),
                Item::Fcos(f) => f.id(),
            })
            .collect();
        let pick = |id: &str| ids.iter().any(|x| x == id).then(|| id.to_string());
        let (default, timeout, direct) = match req
            .choice
            .as_ref()
            .and_then(|c| pick(&c.entry).map(|id| (id, c.timeout_secs)))
        {
            Some((id, 0)) => (Some(id), self.cfg.timeout_secs, true),
            Some((id, t)) => (Some(id), t, false),
            None => (
                pick(&self.cfg.default_entry).or_else(|| ids.first().cloned()),
                self.cfg.timeout_secs,
                false,
            ),
        };
        let mut s = String::new();
        let _ = writeln!(s, "#!ipxe");
        let _ = writeln!(
            s,
            "# Kindling boot menu for {} ({}), generated from the catalog",
            req.arch.as_str(),
            req.platform.as_str()
        );
        if direct && let Some(d) = &default {
            let _ = writeln!(s, "goto {}", label(d));
        }
        let _ = writeln!(s, ":start");
        let _ = writeln!(
            s,
            "menu {} ({} {})",
            text(&self.cfg.title),
            req.arch.as_str(),
            req.platform.as_str()
        );
        let mut section: Option<String> = None;
        for (item, id) in items.iter().zip(&ids) {
            let (sec, title) = match item {
                Item::Catalog(e, _) => (
                    e.section.clone().unwrap_or_else(|| "Other".into()),
                    e.title.clone(),
                ),
                Item::Fcos(f) => (
                    "Fedora CoreOS (local)".to_string(),
                    format!("Fedora CoreOS {} {} (live)", f.stream, f.release),
                ),
            };
            if section.as_deref() != Some(sec.as_str()) {
                let _ = writeln!(s, "item --gap -- {}", text(&sec));
                section = Some(sec);
            }
            let _ = writeln!(s, "item {} {}", label(id), text(&title));
        }
        let mut choose = String::from("choose");
        if let Some(d) = &default {
            let _ = write!(choose, " --default {}", label(d));
        }
        if timeout > 0 {
            let _ = write!(choose, " --timeout {}", timeout.saturating_mul(1000));
        }
        let _ = writeln!(s, "{choose} selected || goto cancelled");
        let _ = writeln!(s, "goto ${{selected}}");
        for (item, id) in items.iter().zip(&ids) {
            let _ = writeln!(s);
            let _ = writeln!(s, ":{}", label(id));
            match item {
                Item::Fcos(f) => self.render_fcos(&mut s, base, f),
                Item::Catalog(e, spec) => self.render_entry(&mut s, base, req, e, *spec),
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(s, ":failed");
        let _ = writeln!(s, "echo Boot failed: ${{errno}}");
        let _ = writeln!(
            s,
            "prompt --timeout 10000 Press any key to return to the menu || goto start"
        );
        let _ = writeln!(s, "goto start");
        let _ = writeln!(s);
        let _ = writeln!(s, ":cancelled");
        let _ = writeln!(
            s,
            "echo Menu cancelled: iPXE shell (type exit to return to the menu)"
        );
        let _ = writeln!(s, "shell");
        let _ = writeln!(s, "goto start");
        s
    }

    fn render_fcos(&self, s: &mut String, base: &str, f: &FcosLive) {
        let dir = format!("{base}{}", f.asset_dir());
        let _ = writeln!(s, "echo Booting Fedora CoreOS {} {}", f.stream, f.release);
        let mut args = format!(
            "initrd=main coreos.live.rootfs_url={dir}/{} ignition.firstboot ignition.platform.id=metal ignition.config.url={base}/ignition?mac=${{mac:hexhyp}}",
            f.rootfs
        );
        if !self.cfg.fcos_args.trim().is_empty() {
            args.push(' ');
            args.push_str(self.cfg.fcos_args.trim());
        }
        let _ = writeln!(s, "kernel {dir}/{} {args} || goto failed", f.kernel);
        let _ = writeln!(s, "initrd --name main {dir}/{} || goto failed", f.initramfs);
        let _ = writeln!(s, "boot || goto failed");
    }

    fn render_entry(
        &self,
        s: &mut String,
        base: &str,
        req: &MenuRequest,
        e: &Entry,
        spec: Option<&ArchSpec>,
    ) {
        match (e.kind, spec) {
            (Kind::LocalDisk, _) => match req.platform {
                Platform::Pcbios => {
                    let _ = writeln!(s, "sanboot --no-describe --drive 0x80 || goto failed");
                }
                Platform::Efi => {
                    let _ = writeln!(s, "echo Leaving iPXE: the firmware boots the next device");
                    let _ = writeln!(s, "exit");
                    let _ = writeln!(s, "goto failed");
                }
            },
            (Kind::Shell, _) => {
                let _ = writeln!(s, "shell");
                let _ = writeln!(s, "goto start");
            }
            (Kind::Chain, Some(spec)) => {
                let img = match req.platform {
                    Platform::Efi => spec.chain_efi.as_deref(),
                    Platform::Pcbios => spec.chain_pcbios.as_deref(),
                }
                .unwrap_or_default();
                let url = self.file_url(base, e, req.arch, spec, img);
                let _ = writeln!(s, "chain --autofree {url} || goto failed");
                let _ = writeln!(s, "goto start");
            }
            (Kind::Linux, Some(spec)) => {
                let _ = writeln!(s, "echo Booting {}", text(&e.title));
                let kernel = spec.kernel.as_deref().unwrap_or_default();
                let mut args = String::new();
                for i in &spec.initrd {
                    let _ = write!(args, "initrd={} ", initrd_name(i));
                }
                let file_url = |n: &str| self.file_url(base, e, req.arch, spec, n);
                args.push_str(&catalog::expand(
                    &spec.args,
                    &file_url,
                    &self.dir_url(base, e, req.arch, spec),
                ));
                let _ = writeln!(
                    s,
                    "kernel {} {} || goto failed",
                    file_url(kernel),
                    args.trim_end()
                );
                for i in &spec.initrd {
                    let _ = writeln!(
                        s,
                        "initrd --name {} {} || goto failed",
                        initrd_name(i),
                        file_url(i)
                    );
                }
                let _ = writeln!(s, "boot || goto failed");
            }
            (Kind::Linux | Kind::Chain, None) => {
                let _ = writeln!(
                    s,
                    "echo {} is not available on {}",
                    text(&e.title),
                    req.arch.as_str()
                );
                let _ = writeln!(s, "goto failed");
            }
        }
    }
}

/// The name an initrd gets in iPXE (and `initrd=` on the command line).
fn initrd_name(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}
