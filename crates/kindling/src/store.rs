//! `[store]`: where groups, profiles and templates live. `dir` (the default): the data
//! directory, reloaded when it changes. `etcd`: a shared store for a fleet of servers;
//! each server keeps an in-memory copy (a range read at one revision, then a watch) and
//! serves from it, so the request path never waits on etcd. Also `kindling store
//! import|export` between a data directory and etcd.

use anyhow::Result;
use kindling_model::{DataDir, Loader, Snapshot, store::Objects};

pub use crate::config::{Backend, StoreConfig};

/// A fleet's shared store (what its singletons campaign in).
#[cfg(feature = "etcd")]
pub type Fleet = kindling_etcd::Store;
#[cfg(not(feature = "etcd"))]
pub type Fleet = std::convert::Infallible;

/// Where `kindling serve` gets its objects from.
pub enum Source {
    Dir(Loader),
    #[cfg(feature = "etcd")]
    Etcd(Box<etcd::EtcdSource>),
}

impl Source {
    /// Opens the store and makes the first snapshot.
    pub async fn open(cfg: &StoreConfig, data: &DataDir) -> Result<(Source, Snapshot)> {
        match cfg.backend {
            Backend::Dir => {
                let mut loader = Loader::new(data.clone());
                let snapshot = loader.load();
                crate::reload::log_snapshot(&snapshot, "loaded");
                kindling_ops::give_back_freed_memory();
                Ok((Source::Dir(loader), snapshot))
            }
            #[cfg(feature = "etcd")]
            Backend::Etcd => {
                let (source, snapshot) = etcd::EtcdSource::open(cfg).await?;
                Ok((Source::Etcd(Box::new(source)), snapshot))
            }
            #[cfg(not(feature = "etcd"))]
            Backend::Etcd => anyhow::bail!("this build has no etcd support"),
        }
    }

    /// The lifecycle store of a fleet (in its shared store), `None` for a data directory
    /// (the state directory keeps it).
    pub fn machines(
        &self,
        max_discovered: usize,
    ) -> Option<(kindling_model::Machines, Vec<String>)> {
        match self {
            Source::Dir(_) => {
                let _ = max_discovered;
                None
            }
            #[cfg(feature = "etcd")]
            Source::Etcd(e) => Some(e.machines(max_discovered)),
        }
    }

    /// The fleet's shared store, for its singletons (`None` for a data directory).
    pub fn fleet(&self) -> Option<Fleet> {
        match self {
            Source::Dir(_) => None,
            #[cfg(feature = "etcd")]
            Source::Etcd(e) => Some(e.store()),
        }
    }

    /// Full DHCP mode's leases in the fleet's store (`None` for a data directory: the
    /// lease file is the whole truth of one server).
    pub fn shared_leases(
        &self,
        cfg: &crate::config::Config,
    ) -> Option<std::sync::Arc<dyn kindling_dhcp::SharedLeases>> {
        match self {
            Source::Dir(_) => {
                let _ = cfg;
                None
            }
            #[cfg(feature = "etcd")]
            Source::Etcd(e) => Some(std::sync::Arc::new(leases::FleetLeases::new(
                e.remote(),
                &etcd::server_name(cfg),
            ))),
        }
    }

    /// The write side the management APIs use.
    pub fn objects(&self, data: &DataDir) -> Objects {
        match self {
            Source::Dir(_) => Objects::new(data.clone()),
            #[cfg(feature = "etcd")]
            Source::Etcd(e) => e.objects(data),
        }
    }
}

/// The objects of the `kindling group|profile|ignition|generic` commands without
/// `--server`: the data directory's, or etcd's (kept with the runtime its calls use).
pub struct CliObjects {
    pub objects: Objects,
    _runtime: Option<tokio::runtime::Runtime>,
}

pub fn cli_objects(cfg: &StoreConfig, data: &std::path::Path) -> Result<CliObjects> {
    let dir = DataDir::new(data);
    match cfg.backend {
        Backend::Dir => Ok(CliObjects {
            objects: Objects::new(dir),
            _runtime: None,
        }),
        #[cfg(feature = "etcd")]
        Backend::Etcd => {
            let runtime = etcd::runtime()?;
            let store = runtime.block_on(kindling_etcd::Store::connect(&etcd::settings(cfg)))?;
            let remote = kindling_etcd::EtcdObjects::new(store, runtime.handle().clone());
            Ok(CliObjects {
                objects: Objects::shared(dir, std::sync::Arc::new(remote)),
                _runtime: Some(runtime),
            })
        }
        #[cfg(not(feature = "etcd"))]
        Backend::Etcd => anyhow::bail!("this build has no etcd support"),
    }
}

/// For `kindling check` and `kindling select` on an etcd store: its objects exported into
/// a temporary data directory (`None` for the directory backend).
pub fn exported_for_check(cfg: &StoreConfig) -> Result<Option<tempfile::TempDir>> {
    if cfg.backend == Backend::Dir {
        return Ok(None);
    }
    let errors = cfg.check();
    anyhow::ensure!(errors.is_empty(), "{}", errors.join("; "));
    #[cfg(feature = "etcd")]
    {
        // A new directory of a random name, mode 0700 (the objects include Ignition
        // secrets), removed on drop.
        let tree = tempfile::Builder::new()
            .prefix("kindling-check-")
            .tempdir()?;
        let (n, rev) = etcd::export(cfg, tree.path())?;
        eprintln!(
            "kindling: reading the etcd store ({} under {}): {n} object(s) at revision {rev}",
            cfg.endpoints.join(","),
            cfg.prefix
        );
        Ok(Some(tree))
    }
    #[cfg(not(feature = "etcd"))]
    anyhow::bail!("this build has no etcd support")
}

#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "etcd")]
mod files;
#[cfg(feature = "etcd")]
pub mod leases;
