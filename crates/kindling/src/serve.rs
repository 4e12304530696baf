//! `kindling serve`: the wiring. [`run_server`] is the sequence of steps; each
//! step below sets up one listener or one group of background tasks. Every
//! socket is bound before `READY=1`; shutdown cancels one token and joins one
//! `JoinSet`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use kindling_model::{DataDir, Snapshot};
use kindling_ops::Ops;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{self, AdminPlan, Config};
use crate::{Cli, ServeArgs, listeners, reload, sdnotify};

/// The tasks of the running server and the token that ends them all.
struct Tasks {
    cancel: CancellationToken,
    set: tokio::task::JoinSet<std::io::Result<()>>,
}

/// The admin listener's settings, credentials read (before anything is bound).
struct AdminSetup {
    plan: Option<AdminPlan>,
    token: Option<Vec<u8>>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

/// The gRPC API's address and TLS (client certificates required), when it is on.
struct RpcSetup {
    listen: SocketAddr,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
}

pub(crate) async fn run_server(cli: &Cli, args: &ServeArgs, mut cfg: Config) -> Result<()> {
    let started = std::time::Instant::now();
    let admin = admin_setup(args, &cfg)?;
    let rpc = rpc_setup(args, &cfg)?;
    let (data_path, data) = open_data_dir(cli, &cfg)?;
    let (source, snapshot) = crate::store::Source::open(&cfg.store, &data).await?;
    let ops = open_ops(cli, &mut cfg, &data_path, &snapshot);
    let machines = open_machines(cli, &cfg, &ops, &source);
    let (shared, cache) = boot_state(args, &cfg, &data, &data_path, &ops, &machines, snapshot)?;

    // Stop signals are caught from here on: systemd may send SIGTERM right after
    // READY=1, and a signal before the handler existed would end the process without
    // STOPPING=1 or a clean shutdown.
    let stop = stop_signals();
    let (listener, local) = bind_http(args, &cfg)?;
    // The address bound (`--http-listen` included) from here on: a fleet names its servers
    // by it.
    cfg.http.listen = local;
    let admin_listener = bind_admin(admin.plan.as_ref())?;
    let admin_local = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
    let rpc_listener = bind_rpc(rpc.as_ref())?;

    let mut tasks = Tasks {
        cancel: CancellationToken::new(),
        set: tokio::task::JoinSet::new(),
    };
    // TFTP first: the DHCP server advertises what it serves.
    start_tftp(&mut tasks, &cfg, &ops, &shared).await?;
    let dhcp = start_dhcp(&mut tasks, &cfg, local, &ops, &shared, &source).await?;
    start_dhcp6(&mut tasks, &cfg, local, &ops).await?;
    // API writes ask the reload loop for a snapshot that holds them.
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(64);
    // One write path for both APIs: one lock for preconditions, one reload channel.
    let objects = source.objects(&data);
    let fleet = source.fleet();
    let publisher = crate::publish::Publisher {
        shared: shared.clone(),
        ops: ops.clone(),
        dhcp,
    };
    start_reload(
        &mut tasks, source, publisher, &machines, &cfg, args, reload_rx,
    )?;
    start_http(&mut tasks, listener, local, &shared, &cfg, &ops);
    let swept = objects.sweep_temporaries();
    if swept > 0 {
        tracing::info!(
            swept,
            "removed the temporary files of writes a crash interrupted"
        );
    }
    let api = kindling_api::Api::new(objects, shared.snapshot.clone(), reload_tx);
    let management = management_apis(&admin, &api, machines.as_ref());
    start_admin(
        &mut tasks,
        admin,
        admin_listener,
        admin_local,
        &cfg,
        &ops,
        management,
    );
    if let (Some(setup), Some(listener)) = (rpc, rpc_listener) {
        start_rpc(&mut tasks, setup, listener, api, &cfg, &ops);
    }
    start_fcos(&mut tasks, &cfg, &data_path, &ops, fleet);
    start_cache_feeder(&mut tasks, cache, &ops);
    announce_ready(&ops, local, admin_local, started);

    stop.await;
    shut_down(tasks, &ops).await;
    Ok(())
}

/// Checked before anything is bound: an exposed admin listener needs credentials.
fn admin_setup(args: &ServeArgs, cfg: &Config) -> Result<AdminSetup> {
    let plan = cfg
        .admin
        .plan(args.admin_listen.as_deref())
        .context("invalid [admin] configuration")?;
    let token = match plan.as_ref().and_then(|p| p.token_file.as_deref()) {
        Some(f) => Some(listeners::read_token(f)?),
        None => None,
    };
    let tls = match plan.as_ref().and_then(|p| p.tls.as_ref()) {
        Some((cert, key, ca)) => {
            Some(listeners::tls_config(cert, key, ca).context("setting up the admin TLS")?)
        }
        None => None,
    };
    Ok(AdminSetup { plan, token, tls })
}

/// Checked before anything is bound: the gRPC API always needs its certificates.
fn rpc_setup(args: &ServeArgs, cfg: &Config) -> Result<Option<RpcSetup>> {
    let Some(listen) = cfg
        .rpc
        .listen(args.rpc_address.as_deref())
        .map_err(anyhow::Error::msg)?
    else {
        return Ok(None);
    };
    let r = &cfg.rpc;
    let tls = listeners::tls_config(&r.cert_file, &r.key_file, &r.ca_file).context(
        "setting up the gRPC API's TLS ([rpc] cert_file, key_file, ca_file; client certificates are always required)",
    )?;
    Ok(Some(RpcSetup { listen, tls }))
}

/// The data directory, its missing areas created when it is writable.
fn open_data_dir(cli: &Cli, cfg: &Config) -> Result<(PathBuf, DataDir)> {
    let data_path = crate::resolve_data_dir(cli.data_dir.clone(), cfg);
    let data = DataDir::new(&data_path);
    match data.ensure_layout() {
        Ok(created) => {
            for c in &created {
                tracing::info!(path = %c.display(), "created missing data directory");
            }
        }
        // A read-only data directory (a matchbox directory mounted :ro, a package's
        // files) is served as it is: a missing area is simply empty.
        Err(e) if data_path.is_dir() => tracing::warn!(
            path = %data_path.display(),
            error = %e,
            "data directory is not writable; missing areas are served as empty"
        ),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("creating data directory {}", data_path.display()));
        }
    }
    tracing::info!(path = %data_path.display(), "data directory");
    Ok((data_path, data))
}

/// The state directory and `kindling-ops` (never fails: a journal that cannot be
/// written leaves timelines in memory only). Also settles the cache directory.
fn open_ops(cli: &Cli, cfg: &mut Config, data_path: &Path, snapshot: &Snapshot) -> Arc<Ops> {
    let state_dir = config::state_dir(cfg, cli.state_dir.as_deref());
    let old_journal = data_path.join("state");
    if old_journal != state_dir && old_journal.is_dir() {
        tracing::warn!(
            old = %old_journal.display(),
            new = %state_dir.display(),
            "a boot journal from an earlier Kindling is in the data directory; the journal now lives in the state directory (move the files there to keep the machines' history, or set [ops] state_dir)"
        );
    }
    tracing::info!(path = %state_dir.display(), "state directory (boot journal)");
    cfg.cache.dir = Some(config::cache_dir(cfg, cli.cache_dir.as_deref()));
    if cfg.dhcp.mode == kindling_dhcp::config::DhcpMode::Full && cfg.dhcp.lease_file.is_none() {
        // Full DHCP's lease log lives with the journal.
        if let Err(e) = std::fs::create_dir_all(&state_dir) {
            tracing::warn!(path = %state_dir.display(), error = %e, "cannot create the state directory");
        }
        cfg.dhcp.lease_file = Some(state_dir.join("dhcp-leases"));
    }
    let ops = kindling_ops::Ops::open(&cfg.ops, Some(&state_dir));
    ops.note_snapshot(snapshot);
    ops
}

/// The lifecycle store in `<state dir>/machines/` (`None` when `[machines] track` is off).
/// An unusable directory gives an unavailable store: boots go on, install-once machines
/// get a 503 rather than a guess.
fn open_machines(
    cli: &Cli,
    cfg: &Config,
    ops: &Arc<Ops>,
    source: &crate::store::Source,
) -> Option<Arc<kindling_model::Machines>> {
    if !cfg.machines.track {
        tracing::info!(
            "[machines] track = false: install_once is not acted on, discovered machines are not recorded"
        );
        return None;
    }
    let dir = config::state_dir(cfg, cli.state_dir.as_deref()).join("machines");
    // A fleet keeps the records in its shared store.
    let shared = source.machines(cfg.machines.max_discovered);
    let (machines, problems) = match shared
        .map(Ok)
        .unwrap_or_else(|| kindling_model::Machines::open(&dir, cfg.machines.max_discovered, true))
    {
        Ok(opened) => opened,
        Err(e) => {
            // As for the journal, an unusable state directory does not stop the boots;
            // install_once machines get a 503 instead of a guess.
            let why = format!("{}: {e}", dir.display());
            tracing::error!(
                target: "kindling::machines",
                "the machine lifecycle directory cannot be used ({why}): machines whose group or profile has install_once get 503 until it is fixed and the server restarted; discovered machines are not recorded"
            );
            let m = Arc::new(kindling_model::Machines::unavailable(&dir, e.to_string()));
            ops.set_machines(m.clone());
            return Some(m);
        }
    };
    for p in &problems {
        tracing::warn!(target: "kindling::machines", "{p}");
    }
    let (installed, discovered) = machines.counts();
    tracing::info!(
        target: "kindling::machines",
        store = if matches!(source, crate::store::Source::Dir(_)) { dir.display().to_string() } else { "etcd".into() },
        installed,
        discovered,
        "machine lifecycle state loaded"
    );
    let machines = Arc::new(machines);
    machines.start_writer();
    ops.set_machines(machines.clone());
    Some(machines)
}

/// What the boot listener serves: the matchbox endpoints, assets, menus, the
/// cache and ops' boot extensions. Returns the cache too (for its feeder).
fn boot_state(
    args: &ServeArgs,
    cfg: &Config,
    data: &DataDir,
    data_path: &Path,
    ops: &Arc<Ops>,
    machines: &Option<Arc<kindling_model::Machines>>,
    snapshot: Snapshot,
) -> Result<(
    Arc<kindling_http::Shared>,
    Option<Arc<kindling_menu::Cache>>,
)> {
    let mut shared = kindling_http::Shared::new(data.clone(), snapshot);
    shared.assets_dir = if cfg.http.assets {
        Some(
            args.assets_dir
                .clone()
                .or(cfg.http.assets_dir.clone())
                .unwrap_or_else(|| data.area(kindling_model::Area::Assets)),
        )
    } else {
        None
    };
    shared.boot_files = cfg.tftp.named_files().into_iter().collect();
    shared.asset_listings = cfg.http.asset_listings;
    if cfg.http.ignition_binding {
        tracing::info!(
            "ignition binding on: /ignition, /generic, /cloud and /metadata answer a MAC only to the address it boots from"
        );
        shared.binding = Some(ops.clone());
    }
    shared.translator = Some(Arc::new(ButaneTranslator));
    shared.machines = machines.clone();
    if !cfg.machines.discovery_profile.is_empty() {
        tracing::info!(
            profile = %cfg.machines.discovery_profile,
            "machines no group selects get the discovery profile"
        );
        shared.discovery_profile = Some(cfg.machines.discovery_profile.clone());
    }
    let endpoints = kindling_menu::Endpoints::build(
        &cfg.menu,
        &cfg.cache,
        data_path,
        shared.assets_dir.clone(),
    )
    .context("setting up boot menus and the cache")?;
    for w in &endpoints.warnings {
        tracing::warn!(target: "kindling::menu", "{w}");
    }
    // Menus read per-MAC defaults from the snapshot each request carries.
    let defaults: Arc<dyn kindling_menu::MenuDefaults> = Arc::new(kindling_menu::GroupDefaults);
    shared.extensions = endpoints.extensions(Some(defaults));
    shared.extensions.extend(ops.boot_extensions());
    shared.observer = Some(ops.clone());
    Ok((Arc::new(shared), endpoints.cache))
}

fn bind_http(args: &ServeArgs, cfg: &Config) -> Result<(TcpListener, SocketAddr)> {
    let listen = args.http_listen.unwrap_or(cfg.http.listen);
    let listener = crate::listeners::bind_tcp(listen).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "HTTP address {listen} is already in use (is matchbox or another Kindling still running? `ss -ltnp 'sport = :{}'` shows who)",
                listen.port()
            )
        } else {
            anyhow::anyhow!("binding HTTP {listen}: {e}")
        }
    })?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

fn bind_admin(plan: Option<&AdminPlan>) -> Result<Option<TcpListener>> {
    plan.map(|p| {
        crate::listeners::bind_tcp(p.listen)
            .with_context(|| format!("binding the admin listener {}", p.listen))
    })
    .transpose()
}

fn bind_rpc(setup: Option<&RpcSetup>) -> Result<Option<TcpListener>> {
    setup
        .map(|s| {
            crate::listeners::bind_tcp(s.listen)
                .with_context(|| format!("binding the gRPC API {} ([rpc] address)", s.listen))
        })
        .transpose()
}

async fn start_tftp(
    tasks: &mut Tasks,
    cfg: &Config,
    ops: &Arc<Ops>,
    shared: &Arc<kindling_http::Shared>,
) -> Result<()> {
    let mut tftp_cfg = cfg.tftp.clone();
    if !tftp_cfg.enabled {
        return Ok(());
    }
    tftp_cfg.max_transfers = cfg.tftp_transfers(crate::listeners::current_nofile());
    let mut server = kindling_tftp::TftpServer::bind(tftp_cfg.clone(), tftp_cfg.listen)
        .await
        .with_context(|| format!("starting TFTP on {}", tftp_cfg.listen))?
        .with_observer(ops.clone());
    // Secure Boot: GRUB's names (its configuration, assets) in front of the files.
    if let Some(s) = crate::secure_boot::tftp_source(&cfg.secure_boot, &cfg.dhcp, &tftp_cfg, shared)
    {
        server = server.with_source(s);
    }
    let stats = server.stats();
    ops.metrics
        .add_families(Arc::new(move |r| stats.register(r)));
    tracing::info!(tftp = %server.local_addr(), "TFTP ready");
    let c = tasks.cancel.clone();
    tasks
        .set
        .spawn(async move { server.run(c).await.map_err(std::io::Error::other) });
    Ok(())
}

/// Proxy DHCP, pointing at the boot listener's port; told what the groups of the
/// snapshot in force say (later ones: [`crate::publish::Publisher`]). Its handle, when on.
async fn start_dhcp(
    tasks: &mut Tasks,
    cfg: &Config,
    http: SocketAddr,
    ops: &Arc<Ops>,
    shared: &kindling_http::Shared,
    source: &crate::store::Source,
) -> Result<Option<kindling_dhcp::LeasesHandle>> {
    let mut dhcp_cfg = cfg.dhcp.clone();
    if !dhcp_cfg.enabled {
        return Ok(None);
    }
    dhcp_cfg.http_port = http.port();
    let server = kindling_dhcp::DhcpServer::bind_with_observer(&dhcp_cfg, ops.clone())
        .await
        .context("starting DHCP")?;
    let stats = server.stats_handle();
    ops.metrics
        .add_families(Arc::new(move |r| stats.register(r)));
    let handle = server.leases_handle();
    crate::publish::hand_over(&shared.snapshot.load(), &handle);
    ops.add_dhcp_leases(handle.clone());
    // A fleet's servers claim each ACK's lease in the shared store first.
    if cfg.dhcp.mode == kindling_dhcp::config::DhcpMode::Full
        && let Some(shared) = source.shared_leases(cfg)
    {
        tracing::info!(
            keys = %format!("{}dhcp-leases/", cfg.store.prefix),
            "full DHCP mode in a fleet: each lease is claimed in the shared store before its ACK"
        );
        server.share_leases(shared);
    }
    server.warn_unserved(cfg.unserved_for_replies());
    for l in server.listeners() {
        tracing::info!(iface = %l.iface, address = %l.server_ip, port = l.port, "proxy DHCP ready");
    }
    let c = tasks.cancel.clone();
    tasks.set.spawn(async move {
        server.run(c).await;
        Ok(())
    });
    Ok(Some(handle))
}

/// DHCPv6 (`[dhcp.v6]`): addresses and boot URLs for HTTP Boot and iPXE over IPv6.
async fn start_dhcp6(
    tasks: &mut Tasks,
    cfg: &Config,
    http: SocketAddr,
    ops: &Arc<Ops>,
) -> Result<()> {
    if !cfg.dhcp.v6.enabled {
        return Ok(());
    }
    let mut c = cfg.dhcp.clone();
    c.http_port = http.port();
    let server = kindling_dhcp::v6::Dhcp6Server::bind(&c)
        .await
        .context("starting DHCPv6")?
        .with_observer(ops.clone());
    for l in server.listeners() {
        tracing::info!(iface = %l.iface, address = %l.server_addr, "DHCPv6 ready");
    }
    let stats = server.stats_handle();
    ops.metrics
        .add_families(Arc::new(move |r| stats.register(r)));
    let cancel = tasks.cancel.clone();
    tasks.set.spawn(async move {
        server.run(cancel).await;
        Ok(())
    });
    Ok(())
}

/// The reload loop: inotify, SIGHUP and the periodic re-check swap in new snapshots.
/// Keeps the snapshot current: the data directory's reload loop, or the etcd mirror
/// (which also brings the fleet's machine records).
#[allow(clippy::too_many_arguments)]
fn start_reload(
    tasks: &mut Tasks,
    source: crate::store::Source,
    publisher: crate::publish::Publisher,
    machines: &Option<Arc<kindling_model::Machines>>,
    cfg: &Config,
    args: &ServeArgs,
    asked: tokio::sync::mpsc::Receiver<kindling_api::ReloadRequest>,
) -> Result<()> {
    // Only the etcd store brings machine records; the directory's stay in the state dir.
    #[cfg(not(feature = "etcd"))]
    let _ = machines;
    match source {
        crate::store::Source::Dir(loader) => {
            tasks.set.spawn(reload::run(
                loader,
                publisher,
                cfg.reload.clone(),
                !args.no_watch && cfg.reload.watch,
                asked,
                tasks.cancel.clone(),
            ));
        }
        #[cfg(feature = "etcd")]
        crate::store::Source::Etcd(e) => {
            e.start(publisher, machines.clone(), asked, tasks.cancel.clone())?;
        }
    }
    Ok(())
}

/// matchbox's gRPC API (what terraform-provider-matchbox talks to), mutual TLS.
fn start_rpc(
    tasks: &mut Tasks,
    setup: RpcSetup,
    listener: TcpListener,
    api: kindling_api::Api,
    cfg: &Config,
    ops: &Arc<Ops>,
) {
    let stats = Arc::new(kindling_http::server::Stats::default());
    ops.metrics.add_listener("rpc", stats.clone());
    tracing::info!(
        rpc = ?listener.local_addr().ok(),
        ca = %cfg.rpc.ca_file.display(),
        "gRPC API ready (matchbox's Groups, Profiles, Ignition, Generic, Select; client certificates required)"
    );
    let (rpc_cfg, cancel) = (cfg.rpc.clone(), tasks.cancel.clone());
    tasks.set.spawn(async move {
        kindling_api::serve(listener, &setup.tls, api, &rpc_cfg, stats, cancel).await
    });
}

/// The boot listener's accept loop, with its connection limits.
fn start_http(
    tasks: &mut Tasks,
    listener: TcpListener,
    local: SocketAddr,
    shared: &Arc<kindling_http::Shared>,
    cfg: &Config,
    ops: &Arc<Ops>,
) {
    let nofile = crate::listeners::current_nofile();
    let http_limits = cfg.http_limits(nofile);
    tracing::info!(
        http = %local,
        max_connections = http_limits.total,
        max_connections_per_client = http_limits.per_client,
        descriptor_limit = nofile,
        "HTTP connection limits"
    );
    let http_stats = Arc::new(kindling_http::server::Stats::default());
    ops.metrics.add_listener("http", http_stats.clone());
    tasks.set.spawn(kindling_http::server::serve_with(
        listener,
        shared.clone(),
        http_limits,
        http_stats,
        tasks.cancel.clone(),
    ));
}

/// The write APIs of the admin listener: the objects (groups, profiles, templates) and
/// the machines' lifecycle. They decide what machines boot: writes only behind
/// credentials, even on loopback (any local user can reach 127.0.0.1).
fn management_apis(
    setup: &AdminSetup,
    api: &kindling_api::Api,
    machines: Option<&Arc<kindling_model::Machines>>,
) -> Vec<Arc<dyn kindling_http::Extension>> {
    let credentialed = setup.token.is_some() || setup.tls.is_some();
    let mut apis: Vec<Arc<dyn kindling_http::Extension>> = vec![Arc::new(
        kindling_api::ObjectsApi::new(api.clone(), credentialed),
    )];
    // Before ops' /api/v1/* endpoint, which answers every path under it.
    apis.push(Arc::new(kindling_api::LifecycleApi::new(
        machines.cloned(),
        credentialed,
    )));
    apis
}

/// The admin listener's accept loop (API, events, dashboard, metrics), when on.
fn start_admin(
    tasks: &mut Tasks,
    setup: AdminSetup,
    listener: Option<TcpListener>,
    admin_local: Option<SocketAddr>,
    cfg: &Config,
    ops: &Arc<Ops>,
    management: Vec<Arc<dyn kindling_http::Extension>>,
) {
    let Some(listener) = listener else {
        tracing::info!("admin listener off: no API, events, dashboard or metrics");
        return;
    };
    let stats = Arc::new(kindling_http::server::Stats::default());
    ops.metrics.add_listener("admin", stats.clone());
    let auth = match (&setup.token, &setup.tls) {
        (Some(_), Some(_)) => "bearer token and client certificate",
        (Some(_), None) => "bearer token",
        (None, Some(_)) => "client certificate",
        (None, None) => "none (loopback only)",
    };
    let mut extensions = management;
    extensions.extend(ops.admin_extensions());
    let admin = Arc::new(kindling_http::server::Admin {
        extensions,
        observer: Some(ops.clone()),
        token: setup.token,
        tls: setup.tls,
        stats,
    });
    tracing::info!(
        admin = ?admin_local,
        auth,
        tls = admin.tls.is_some(),
        "admin listener (API, events, dashboard, metrics)"
    );
    tasks.set.spawn(kindling_http::server::serve_admin(
        listener,
        admin,
        cfg.admin.limits(cfg.http.idle_timeout_secs),
        tasks.cancel.clone(),
    ));
}

/// Fedora CoreOS stream tracking (in a fleet, on the one server that holds the
/// election): its series and status read when `/metrics`, the API or the dashboard ask.
fn start_fcos(
    tasks: &mut Tasks,
    cfg: &Config,
    data_path: &Path,
    ops: &Arc<Ops>,
    fleet: Option<crate::store::Fleet>,
) {
    if cfg.fcos.streams.is_empty() {
        return;
    }
    let status = Arc::new(kindling_fcos::FcosStatus::new());
    let counted = status.clone();
    ops.metrics
        .add_families(Arc::new(move |r| counted.register(r)));
    tracing::info!(
        streams = %cfg.fcos.streams.join(","),
        interval_secs = cfg.fcos.interval_secs,
        "tracking Fedora CoreOS streams"
    );
    let (c, d, s, k) = (
        cfg.fcos.clone(),
        data_path.to_path_buf(),
        status.clone(),
        tasks.cancel.clone(),
    );
    match fleet {
        #[cfg(feature = "etcd")]
        Some(store) => {
            let me = crate::store::etcd::server_name(cfg);
            tasks.set.spawn(crate::store::etcd::lead_fcos(
                store,
                me,
                c,
                d,
                s,
                ops.clone(),
                k,
            ));
        }
        #[cfg(not(feature = "etcd"))]
        Some(never) => match never {},
        None => {
            tasks.set.spawn(async move {
                kindling_fcos::track(c, d, s, k).await;
                Ok(())
            });
        }
    }
    // The status page and API read the tracker's status when asked, as `/metrics` does.
    ops.metrics
        .set_fcos_source(Arc::new(move || status.snapshot()));
}

/// The cache's counters, read by `/metrics` at each scrape; its size and status, copied
/// into ops every 15 s (they take a walk over its entries).
fn start_cache_feeder(tasks: &mut Tasks, cache: Option<Arc<kindling_menu::Cache>>, ops: &Arc<Ops>) {
    let Some(cache) = cache else {
        return;
    };
    let counted = cache.clone();
    ops.metrics
        .add_families(Arc::new(move |r| counted.register(r)));
    let (ops, k) = (ops.clone(), tasks.cancel.clone());
    tasks.set.spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
        loop {
            tokio::select! {
                _ = k.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            let held = cache.held();
            let bytes: u64 = held.iter().map(|h| h.size).sum();
            ops.metrics.set_cache_bytes(bytes);
            ops.metrics
                .set_asset_status(vec![kindling_ops::AssetStatus {
                    name: "cache".into(),
                    detail: format!(
                        "{} file(s), {bytes} bytes in {}",
                        held.len(),
                        cache.dir().display()
                    ),
                    ok: true,
                }]);
        }
    });
}

/// Everything is bound and spawned: tell ops, systemd and the log.
fn announce_ready(
    ops: &Ops,
    local: SocketAddr,
    admin_local: Option<SocketAddr>,
    started: std::time::Instant,
) {
    ops.metrics.set_ready();
    sdnotify::notify(&format!(
        "READY=1\nSTATUS=serving HTTP on {local}\nMAINPID={}",
        std::process::id()
    ));
    tracing::info!(
        http = %local,
        admin = admin_local.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        startup_ms = started.elapsed().as_millis() as u64,
        "kindling {} ready: try http://{}/boot.ipxe",
        env!("CARGO_PKG_VERSION"),
        local
    );
}

/// One token cancels every task; each is joined and its failure logged.
async fn shut_down(mut tasks: Tasks, ops: &Ops) {
    tracing::info!("shutting down");
    sdnotify::notify("STOPPING=1");
    ops.shutdown();
    tasks.cancel.cancel();
    while let Some(r) = tasks.set.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "task failed"),
            Err(e) => tracing::error!(error = %e, "task panicked"),
        }
    }
}

/// Butane templates on `/ignition` (as matchbox: no files directory).
struct ButaneTranslator;

impl kindling_http::Translate for ButaneTranslator {
    fn translate(&self, rendered: &str) -> Result<String, String> {
        let opts = kindling_butane::TranslateOptions::default();
        match kindling_butane::translate(rendered.as_bytes(), &opts) {
            Ok(t) => {
                for w in t.warnings.entries.iter() {
                    tracing::warn!(target: "kindling::butane", "{w}");
                }
                Ok(t.json)
            }
            Err(e) => {
                let details: Vec<String> = e.report.entries.iter().map(|x| x.to_string()).collect();
                Err(format!("{}: {}", e.message, details.join("; ")))
            }
        }
    }
}

/// SIGTERM or SIGINT, listened for from the call on (a `tokio::signal` stream registers
/// its handler when created; `ctrl_c()` would only when first polled).
fn stop_signals() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let listen = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for {name}");
            None
        }
    };
    let mut term = listen(SignalKind::terminate(), "SIGTERM");
    let mut int = listen(SignalKind::interrupt(), "SIGINT");
    async fn next(s: &mut Option<Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    async move {
        tokio::select! {
            _ = next(&mut term) => {}
            _ = next(&mut int) => {}
        }
    }
}
