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
pub mod menu;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cache::{Cache, CacheError, Held};
pub use catalog::{Arch, Catalog, CatalogError, Entry};
pub use config::{CacheConfig, MachineDefault, MenuConfig};
pub use ext::{CacheExtension, MenuDefaults, MenuExtension};
pub use menu::{Choice, Menu, MenuRequest, Platform};

/// Errors building the endpoints.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("menu catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("cache: {0}")]
    Cache(#[from] CacheError),
}

/// Builds the `/menu.ipxe` and `/cache/` extensions from `[menu]` and
/// `[cache]`. `assets_dir` is where `kindling fcos pull` keeps Fedora CoreOS
/// (`<data_dir>/assets`); `defaults` supplies groups' `menu_default` (pass a
/// `Weak<kindling_http::Shared>`, e.g. from `Arc::new_cyclic`).
/// Must be called inside a tokio runtime.
pub fn extensions(
    menu_cfg: &MenuConfig,
    cache_cfg: &CacheConfig,
    data_dir: &Path,
    assets_dir: Option<PathBuf>,
    defaults: Option<Arc<dyn MenuDefaults>>,
) -> Result<Vec<Arc<dyn kindling_http::Extension>>, SetupError> {
    let catalog = Arc::new(Catalog::load(menu_cfg)?);
    let mut out: Vec<Arc<dyn kindling_http::Extension>> = Vec::new();
    if cache_cfg.enabled {
        let cache = Cache::open(
            cache_cfg.clone(),
            cache_cfg.dir_for(data_dir),
            catalog.clone(),
        )?;
        out.push(Arc::new(CacheExtension::new(cache)));
    }
    if menu_cfg.enabled {
        let menu = Arc::new(Menu::new(
            menu_cfg.clone(),
            catalog,
            assets_dir,
            cache_cfg.enabled,
        ));
        out.push(Arc::new(MenuExtension::new(menu, defaults)));
    }
    Ok(out)
}
