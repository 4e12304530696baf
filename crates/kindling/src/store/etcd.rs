//! The etcd store of `kindling serve` and `kindling store`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use kindling_etcd::mirror::{Mirror, Update};
use kindling_etcd::{EtcdObjects, Settings, Store};
use kindling_model::store::{MemLoader, Objects};
use kindling_model::{DataDir, Snapshot};
use tokio_util::sync::CancellationToken;

use crate::config::StoreConfig;

pub fn settings(cfg: &StoreConfig) -> Settings {
    Settings {
        endpoints: cfg.endpoints.clone(),
        prefix: cfg.prefix.clone(),
        ca_file: cfg.ca_file.clone(),
        cert_file: cfg.cert_file.clone(),
        key_file: cfg.key_file.clone(),
        timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
    }
}

/// A runtime for the command-line tools' etcd calls (blocking callers use its handle).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The etcd store of a running server: the connection, the mirror and the loader that
/// turns the mirror's objects into snapshots.
pub struct EtcdSource {
    store: Store,
    mirror: Arc<Mirror>,
    loader: MemLoader,
    /// The machine records of the first load.
    records: kindling_etcd::mirror::Records,
}

impl EtcdSource {
    pub async fn open(cfg: &StoreConfig) -> Result<(EtcdSource, Snapshot)> {
        let s = settings(cfg);
        let store = Store::connect(&s).await.context("[store] etcd")?;
        let first = Duration::from_secs(cfg.first_load_secs);
        let (mirror, state) = Mirror::load(store.clone(), first).await.with_context(|| {
            format!(
                "[store] etcd: no first load from {} within {} s",
                cfg.endpoints.join(", "),
                cfg.first_load_secs
            )
        })?;
        let mut loader = MemLoader::new();
        let snapshot = loader.load(state.objects);
        tracing::info!(
            endpoints = %cfg.endpoints.join(","), prefix = %store.prefix(),
            revision = mirror.health().revision(), "etcd store loaded"
        );
        crate::reload::log_snapshot(&snapshot, "loaded from etcd");
        let source = EtcdSource {
            store,
            mirror: Arc::new(mirror),
            loader,
            records: state.machines,
        };
        Ok((source, snapshot))
    }

    pub fn store(&self) -> Store {
        self.store.clone()
    }

    pub(super) fn remote(&self) -> Arc<EtcdObjects> {
        Arc::new(EtcdObjects::new(
            self.store.clone(),
            tokio::runtime::Handle::current(),
        ))
    }

    pub fn objects(&self, data: &DataDir) -> Objects {
        Objects::shared(data.clone(), self.remote())
    }

    /// The fleet's lifecycle store, loaded with the records of the first load.
    pub fn machines(&self, max_discovered: usize) -> (kindling_model::Machines, Vec<String>) {
        let records = self.records.iter().map(|(k, v)| (k.clone(), v.clone()));
        kindling_model::Machines::shared(self.remote(), records, max_discovered)
    }

    /// Follows etcd: every change becomes a new snapshot; API writes are answered once the
    /// copy holds them; SIGHUP is logged (the watch keeps the copy current).
    pub fn start(
        self,
        publisher: crate::publish::Publisher,
        machines: Option<Arc<kindling_model::Machines>>,
        mut asked: tokio::sync::mpsc::Receiver<kindling_api::ReloadRequest>,
        cancel: CancellationToken,
    ) -> std::io::Result<()> {
        let health = self.mirror.health();
        publisher
            .ops
            .metrics
            .add_families(Arc::new(move |r| health.register(r)));
        let mut loader = self.loader;
        let publish = Box::new(move |u: Update| {
            if let Some(m) = &machines {
                for (name, bytes) in &u.machines {
                    if let Some(p) = m.apply_shared(name, bytes.as_deref()) {
                        tracing::warn!(target: "kindling::machines", "{p}");
                    }
                }
            }
            if !u.objects_changed {
                return;
            }
            let snap = loader.load(u.objects);
            // Groups and profiles counted in `changed_files`; templates changed too when
            // only they did: the snapshot carries them, so it is swapped in either way.
            let snap = publisher.publish(snap);
            if snap.changed_files > 0 {
                crate::reload::log_snapshot(
                    &snap,
                    &format!(
                        "updated from etcd ({} group or profile file(s) changed)",
                        snap.changed_files
                    ),
                );
            }
        });
        self.mirror.follow(publish, cancel.clone());
        let mirror = self.mirror;
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = hup.recv() => tracing::info!(
                        "SIGHUP: nothing to reload, the etcd store is followed by its watch"
                    ),
                    Some(req) = asked.recv() => {
                        let mirror = mirror.clone();
                        tokio::spawn(async move {
                            if !mirror.settle(kindling_api::SETTLE).await {
                                tracing::warn!(
                                    "the in-memory copy of etcd did not show the write within 5 s; \
                                     the write stands and the watch brings it"
                                );
                            }
                            let _ = req.done.send(());
                        });
                    }
                }
            }
        });
        Ok(())
    }
}

/// `kindling store import DIR`: every object of a data directory into etcd. Groups and
/// profiles are checked as the API checks them; one that does not load is refused (named)
/// and nothing of it is written. Returns (written, refused).
pub fn import(cfg: &StoreConfig, dir: &Path) -> Result<(usize, Vec<String>)> {
    let rt = runtime()?;
    let store = rt.block_on(Store::connect(&settings(cfg)))?;
    let files = super::files::read_tree(dir)?;
    rt.block_on(async {
        let mut written = 0;
        let mut refused = Vec::new();
        for (rel, bytes) in files {
            if let Err(why) = super::files::check(&rel, &bytes) {
                refused.push(format!("{rel}: {why}"));
                continue;
            }
            kindling_etcd::put(&store, &rel, bytes)
                .await
                .with_context(|| format!("writing {rel} to etcd"))?;
            written += 1;
        }
        Ok((written, refused))
    })
}

/// `kindling store export DIR`: every object in etcd written as files (atomically) into a
/// data directory, at one revision. Returns (written, revision).
pub fn export(cfg: &StoreConfig, dir: &Path) -> Result<(usize, i64)> {
    let rt = runtime()?;
    let store = rt.block_on(Store::connect(&settings(cfg)))?;
    let (objects, rev) = rt.block_on(kindling_etcd::mirror::read_all(&store))?;
    let mut n = 0;
    for (rel, o) in objects.iter() {
        // A key that cannot be a file here (`ignition/a` and `ignition/a/b`) is named and
        // skipped; the rest is exported.
        match super::files::write(dir, rel, &o.bytes) {
            Ok(()) => n += 1,
            Err(e) => eprintln!("kindling: not exported: {e:#}"),
        }
    }
    Ok((n, rev))
}

/// This server's name in elections: host name and HTTP address.
pub fn server_name(cfg: &crate::config::Config) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}@{}", host.trim(), cfg.http.listen)
}

/// Fedora CoreOS tracking in a fleet: only the holder of the `fcos` election tracks the
/// streams (downloads, verifies, switches its local profile); each profile it switches is
/// then written to the shared store, where every server serves it.
pub async fn lead_fcos(
    store: Store,
    me: String,
    cfg: kindling_fcos::FcosConfig,
    data: std::path::PathBuf,
    status: Arc<kindling_fcos::FcosStatus>,
    ops: Arc<kindling_ops::Ops>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    use kindling_etcd::election::{Leadership, lead};
    let leadership = Arc::new(Leadership::default());
    let l = leadership.clone();
    ops.metrics
        .add_families(Arc::new(move |r| l.register("fcos", r)));
    let objects = Objects::shared(
        DataDir::new(&data),
        Arc::new(EtcdObjects::new(
            store.clone(),
            tokio::runtime::Handle::current(),
        )),
    );
    lead(store, "fcos", me, leadership, cancel, move |stop| {
        let (cfg, data, status, objects) =
            (cfg.clone(), data.clone(), status.clone(), objects.clone());
        async move {
            let publish = publish_profiles(data.clone(), objects, stop.clone());
            tokio::join!(kindling_fcos::track(cfg, data, status, stop), publish);
        }
    })
    .await;
    Ok(())
}

/// Writes the tracker's `profiles/fedora-coreos-*.json` to the shared store whenever one
/// changes during this term (checked every 2 s), until `stop`. A local profile from an
/// earlier term is written only when the store has none (another leader may have switched
/// it since).
async fn publish_profiles(data: std::path::PathBuf, objects: Objects, stop: CancellationToken) {
    let mut written: std::collections::HashMap<String, Vec<u8>> = Default::default();
    let mut first = true;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let dir = data.join("profiles");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_suffix(".json")
                .filter(|id| id.starts_with("fedora-coreos-"))
            else {
                continue;
            };
            let Ok(bytes) = std::fs::read(e.path()) else {
                continue;
            };
            if written.get(id) == Some(&bytes) {
                continue;
            }
            if first {
                let (o, i) = (objects.clone(), id.to_string());
                let stored = tokio::task::spawn_blocking(move || {
                    o.get(kindling_model::store::Kind::Profile, &i)
                })
                .await;
                if matches!(stored, Ok(Ok(_))) {
                    written.insert(id.to_string(), bytes);
                    continue;
                }
            }
            // A profile from an earlier term goes in only where the store has none: another
            // leader may have switched it since (never roll the fleet back).
            let expect = if first {
                kindling_model::store::Expect::Absent
            } else {
                kindling_model::store::Expect::Anything
            };
            let (o, i, b) = (objects.clone(), id.to_string(), bytes.clone());
            let put = tokio::task::spawn_blocking(move || {
                o.put_expecting(kindling_model::store::Kind::Profile, &i, &b, &expect)
            })
            .await;
            match put {
                Ok(Err(kindling_model::store::ObjectError::Changed { .. })) => {
                    written.insert(id.to_string(), bytes);
                }
                Ok(Ok(_)) => {
                    tracing::info!(profile = %id, "fcos: profile written to the shared store");
                    written.insert(id.to_string(), bytes);
                }
                Ok(Err(e)) => {
                    tracing::warn!(profile = %id, error = %e, "fcos: cannot write the profile to the shared store; trying again")
                }
                Err(_) => {}
            }
        }
        first = false;
    }
}
