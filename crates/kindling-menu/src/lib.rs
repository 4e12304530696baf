//! Kindling's distribution menus and the pull-through cache behind them.
//!
//! * [`catalog`]: boot entries (a shipped TOML catalog plus `[menu]` additions).
//! * [`menu`]: `/menu.ipxe`, generated per architecture and firmware.
//! * [`check`]: an iPXE script checker (labels, targets, commands).
//! * [`cache`]: `/cache/<entry>/<arch>/<file>`, one upstream fetch per file,
//!   streamed to every waiting client, verified before it is kept.
//! * [`ext`]: both as `kindling_http::Extension`s; [`cli`]: `kindling cache`.

// A `Reply` is moved once per request.
#![allow(clippy::result_large_err)]

pub mod cache;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod config;
pub mod ext;
pub mod fcos;
pub mod guard;
pub mod menu;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cache::{Cache, CacheError, Fill, Held};
pub use catalog::{Arch, Catalog, CatalogError, Entry};
pub use config::{CacheConfig, MachineDefault, MenuConfig};
pub use ext::{CacheExtension, GroupDefaults, MenuDefaults, MenuExtension};
pub use menu::{Choice, Menu, MenuRequest, Platform};

/// Errors building the endpoints.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("menu catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("cache: {0}")]
    Cache(#[from] CacheError),
}

/// The menu and cache, built from `[menu]` and `[cache]` (the fallible
/// part), ready to become extensions.
pub struct Endpoints {
    pub catalog: Arc<Catalog>,
    /// `None` when `[cache] enabled = false`.
    pub cache: Option<Arc<Cache>>,
    /// `None` when `[menu] enabled = false`.
    pub menu: Option<Arc<Menu>>,
    /// Soft configuration mistakes to log (unknown default ids, bad MACs).
    pub warnings: Vec<String>,
}

impl Endpoints {
    /// `assets_dir` is where `kindling fcos pull` keeps Fedora CoreOS
    /// (`<data_dir>/assets`, served under `/assets/`). Needs a tokio runtime.
    pub fn build(
        menu_cfg: &MenuConfig,
        cache_cfg: &CacheConfig,
        data_dir: &Path,
        assets_dir: Option<PathBuf>,
    ) -> Result<Endpoints, SetupError> {
        let catalog = Arc::new(Catalog::load(menu_cfg)?);
        let cache = if cache_cfg.enabled {
            Some(Cache::open(
                cache_cfg.clone(),
                cache_cfg.dir_for(data_dir),
                catalog.clone(),
            )?)
        } else {
            None
        };
        let menu = menu_cfg.enabled.then(|| {
            Arc::new(Menu::new(
                menu_cfg.clone(),
                catalog.clone(),
                assets_dir,
                cache_cfg.enabled,
            ))
        });
        let warnings = menu_cfg.problems(&catalog);
        Ok(Endpoints {
            catalog,
            cache,
            menu,
            warnings,
        })
    }

    /// The extensions. `defaults` supplies groups' `menu_default` and the
    /// profiles' cache routes ([`GroupDefaults`]), read from the snapshot each
    /// request carries.
    pub fn extensions(
        &self,
        defaults: Option<Arc<dyn MenuDefaults>>,
    ) -> Vec<Arc<dyn kindling_http::Extension>> {
        let mut out: Vec<Arc<dyn kindling_http::Extension>> = Vec::new();
        if let Some(c) = &self.cache {
            out.push(Arc::new(
                CacheExtension::new(c.clone()).with_profiles(defaults.clone()),
            ));
        }
        if let Some(m) = &self.menu {
            out.push(Arc::new(
                MenuExtension::new(m.clone(), defaults).with_cache(self.cache.clone()),
            ));
        }
        out
    }
}

/// [`Endpoints::build`] then [`Endpoints::extensions`].
pub fn extensions(
    menu_cfg: &MenuConfig,
    cache_cfg: &CacheConfig,
    data_dir: &Path,
    assets_dir: Option<PathBuf>,
    defaults: Option<Arc<dyn MenuDefaults>>,
) -> Result<Vec<Arc<dyn kindling_http::Extension>>, SetupError> {
    let e = Endpoints::build(menu_cfg, cache_cfg, data_dir, assets_dir)?;
    for w in &e.warnings {
        tracing::warn!(target: "kindling::menu", "{w}");
    }
    Ok(e.extensions(defaults))
}
