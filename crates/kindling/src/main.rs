//! `kindling`: one binary for network boot.

mod check;
mod config;
mod config_doc;
mod listeners;
mod migrate;
mod reload;
mod sdnotify;
mod select;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use kindling_model::{DataDir, Loader};
use tokio_util::sync::CancellationToken;

use config::LogFormat;

#[derive(Parser, Debug)]
#[command(
    name = "kindling",
    version,
    about = "Network boot server: proxy DHCP, TFTP and a matchbox-compatible HTTP boot service"
)]
struct Cli {
    /// Configuration file (default: ./kindling.toml, then /etc/kindling/kindling.toml, if present).
    #[arg(long, global = true, env = "KINDLING_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory in matchbox's layout (default: /var/lib/kindling as root, else ~/.local/share/kindling).
    #[arg(long, global = true, env = "KINDLING_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// State directory: the boot journal (default: [ops] state_dir, else $STATE_DIRECTORY/state
    /// under systemd, /var/lib/kindling/state as root, else ~/.local/state/kindling).
    #[arg(long, global = true, env = "KINDLING_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Cache directory: the menus' pull-through cache (default: [cache] dir, else
    /// $CACHE_DIRECTORY under systemd, /var/cache/kindling as root, else ~/.cache/kindling).
    #[arg(long, global = true, env = "KINDLING_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the boot server.
    Serve(ServeArgs),
    /// Show which group and profile a request with these labels gets, and why.
    Select(select::SelectArgs),
    /// Check a whole data directory: JSON, profiles, files, assets, templates, Butane, Ignition.
    Check(check::CheckArgs),
    /// Fedora CoreOS assets: pull (verified), status, rollback.
    #[command(subcommand)]
    Fcos(kindling_fcos::cli::FcosCommand),
    /// The pull-through cache of the boot menus: prefetch entries, list what is held.
    Cache(kindling_menu::cli::CacheArgs),
    /// Machines seen booting and the timeline of their last boots (from the journal, or a server's API).
    Machines {
        #[command(flatten)]
        args: kindling_ops::cli::MachinesArgs,
        /// Ask a running server's admin listener (e.g. http://127.0.0.1:8082) instead of reading the journal.
        #[arg(long, global = true, env = "KINDLING_SERVER")]
        server: Option<String>,
    },
    /// Translate a Butane config to Ignition (the same flags and exit codes as `butane`).
    Butane(kindling_butane::cli::ButaneArgs),
    /// Write kindling.toml from the configuration of dnsmasq or matchbox.
    #[command(subcommand)]
    Migrate(migrate::MigrateCommand),
    /// Write the manual pages (kindling.1, kindling-serve.1, ...) into a directory.
    #[command(hide = true)]
    Man {
        /// Output directory (created if missing).
        dir: PathBuf,
    },
    /// Print docs/configuration.md, generated from the configuration types and the flags.
    #[command(hide = true)]
    ConfigDoc,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// HTTP listen address (default 0.0.0.0:8080).
    #[arg(long, env = "KINDLING_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Admin listener address (API, events, dashboard, metrics; default 127.0.0.1:8082;
    /// "" turns it off).
    #[arg(long, env = "KINDLING_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Assets directory served under /assets/ (default: <data-dir>/assets).
    #[arg(long, env = "KINDLING_ASSETS_DIR")]
    assets_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "KINDLING_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Log filter (tracing syntax), e.g. `info` or `debug,hyper=info`.
    #[arg(long, env = "KINDLING_LOG")]
    log: Option<String>,
    /// Do not watch the data directory for changes (SIGHUP still reloads).
    #[arg(long, env = "KINDLING_NO_WATCH")]
    no_watch: bool,
    /// Enable proxy DHCP on this interface (repeatable; name, `*` pattern, or CIDR).
    #[arg(
        long = "dhcp-interface",
        value_name = "IFACE",
        env = "KINDLING_DHCP_INTERFACES",
        value_delimiter = ','
    )]
    dhcp_interfaces: Vec<String>,
    /// Enable the TFTP server (iPXE binaries from /usr/lib/ipxe by default).
    #[arg(long, env = "KINDLING_TFTP")]
    tftp: bool,
    /// TFTP listen address (implies --tftp).
    #[arg(long, env = "KINDLING_TFTP_LISTEN")]
    tftp_listen: Option<SocketAddr>,
}

impl ServeArgs {
    fn overrides(&self) -> config::Overrides<'_> {
        config::Overrides {
            admin_listen: self.admin_listen.as_deref(),
            http_port: self.http_listen.map(|l| l.port()),
            log: self.log.as_deref(),
            dhcp_interfaces: &self.dhcp_interfaces,
            tftp: self.tftp,
            tftp_listen: self.tftp_listen,
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        // Command-line tools end quietly when their output pipe closes
        // (`kindling check | head`) instead of failing on EPIPE. The server
        // keeps Rust's default (SIGPIPE ignored, EPIPE as an error).
        // SAFETY: called before any other thread exists; restores the default disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        Command::Serve(ref args) => serve(&cli, args),
        Command::Select(ref args) => select::run(cli.config.as_deref(), cli.data_dir.clone(), args),
        Command::Check(ref args) => check::run(cli.config.as_deref(), cli.data_dir.clone(), args),
        Command::Fcos(ref cmd) => fcos(&cli, cmd.clone()),
        Command::Cache(ref args) => cache(&cli, args),
        Command::Machines {
            ref args,
            ref server,
        } => machines(&cli, args, server.as_deref()),
        Command::Migrate(ref cmd) => migrate::run(cmd),
        Command::Man { ref dir } => man(dir),
        Command::ConfigDoc => config_doc::run(),
        Command::Butane(ref args) => {
            return std::process::ExitCode::from(
                kindling_butane::cli::run(args.clone()).clamp(0, 255) as u8,
            );
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kindling: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Manual pages for the command and each subcommand, from the same definitions as `--help`.
fn man(dir: &std::path::Path) -> Result<std::process::ExitCode> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing manual pages to {}", dir.display()))?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// The data directory from flag/env, then config, then the default.
fn resolve_data_dir(flag: Option<PathBuf>, cfg: &config::Config) -> PathBuf {
    flag.or_else(|| cfg.data_dir.clone())
        .unwrap_or_else(config::default_data_dir)
}

fn init_logging(format: LogFormat, filter: &str) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("kindling: bad log filter {filter:?} ({e}); using info");
        EnvFilter::new("info")
    });
    // Lines wait in a bounded queue for the writer thread; when it is full, the
    // logging thread waits (nothing is lost). The default bound (128,000 lines)
    // preallocates 4 MB; 8,192 lines is over 100 ms of a boot storm's request log.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(8192)
        .lossy(false)
        .finish(std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.with_ansi(false).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    guard
}

fn fcos(cli: &Cli, cmd: kindling_fcos::cli::FcosCommand) -> Result<std::process::ExitCode> {
    let (cfg, _) = config::load(cli.config.as_deref())?;
    let data = resolve_data_dir(cli.data_dir.clone(), &cfg);
    DataDir::new(&data)
        .ensure_layout()
        .with_context(|| format!("creating data directory {}", data.display()))?;
    kindling_fcos::cli::run_with_config(cmd, &data, &cfg.fcos)
}

fn cache(cli: &Cli, args: &kindling_menu::cli::CacheArgs) -> Result<std::process::ExitCode> {
    let (mut cfg, _) = config::load(cli.config.as_deref())?;
    let data = resolve_data_dir(cli.data_dir.clone(), &cfg);
    cfg.cache.dir = Some(config::cache_dir(&cfg, cli.cache_dir.as_deref()));
    Ok(kindling_menu::cli::run(args, &cfg.menu, &cfg.cache, &data)?)
}

fn machines(
    cli: &Cli,
    args: &kindling_ops::cli::MachinesArgs,
    server: Option<&str>,
) -> Result<std::process::ExitCode> {
    let (cfg, _) = config::load(cli.config.as_deref())?;
    let state = config::state_dir(&cfg, cli.state_dir.as_deref());
    kindling_ops::cli::run(args, &state, server)
}

fn serve(cli: &Cli, args: &ServeArgs) -> Result<std::process::ExitCode> {
    let (mut cfg, source) = config::load(cli.config.as_deref())?;
    let overrides = args.overrides();
    cfg.apply(&overrides);
    // Every table is checked before a thread, a log line or a socket exists.
    let findings = cfg.check(&overrides);
    if !findings.errors.is_empty() {
        anyhow::bail!(
            "invalid configuration ({}):\n  - {}",
            source.describe(),
            findings.errors.join("\n  - ")
        );
    }
    let format = args.log_format.unwrap_or(cfg.log.format);
    let filter = args.log.clone().unwrap_or_else(|| cfg.log.level.clone());
    let _guard = init_logging(format, &filter);
    match &source {
        config::Source::File(p) => {
            tracing::info!(config = %p.display(), "configuration loaded from {}", p.display())
        }
        config::Source::WorkingDir(p) => tracing::info!(
            config = %p.display(),
            "configuration loaded from ./kindling.toml in the working directory ({}); --config chooses another",
            p.display()
        ),
        config::Source::Defaults => tracing::info!(
            "no configuration file (no --config, ./kindling.toml or /etc/kindling/kindling.toml); running on built-in defaults"
        ),
    }
    for w in &findings.warnings {
        tracing::warn!("{w}");
    }
    // Before any thread or socket exists: every later descriptor counts against it.
    match listeners::raise_nofile() {
        Ok(c) => tracing::debug!(
            old_soft = c.old_soft,
            new_soft = c.new_soft,
            hard = c.hard,
            "descriptor limit (RLIMIT_NOFILE)"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kindling")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_server(cli, args, cfg))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn run_server(cli: &Cli, args: &ServeArgs, mut cfg: config::Config) -> Result<()> {
    let started = std::time::Instant::now();
    // Checked before anything is bound: an exposed admin listener needs credentials.
    let admin_plan = cfg
        .admin
        .plan(args.admin_listen.as_deref())
        .context("invalid [admin] configuration")?;
    let admin_token = match admin_plan.as_ref().and_then(|p| p.token_file.as_deref()) {
        Some(f) => Some(listeners::read_token(f)?),
        None => None,
    };
    let admin_tls = match admin_plan.as_ref().and_then(|p| p.tls.as_ref()) {
        Some((cert, key, ca)) => {
            Some(listeners::tls_config(cert, key, ca).context("setting up the admin TLS")?)
        }
        None => None,
    };
    let data_path = resolve_data_dir(cli.data_dir.clone(), &cfg);
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

    let mut loader = Loader::new(data.clone());
    let snapshot = loader.load();
    reload::log_snapshot(&snapshot, "loaded");

    let state_dir = config::state_dir(&cfg, cli.state_dir.as_deref());
    let old_journal = data_path.join("state");
    if old_journal != state_dir && old_journal.is_dir() {
        tracing::warn!(
            old = %old_journal.display(),
            new = %state_dir.display(),
            "a boot journal from an earlier Kindling is in the data directory; the journal now lives in the state directory (move the files there to keep the machines' history, or set [ops] state_dir)"
        );
    }
    tracing::info!(path = %state_dir.display(), "state directory (boot journal)");
    cfg.cache.dir = Some(config::cache_dir(&cfg, cli.cache_dir.as_deref()));
    // Never fails: a journal that cannot be written leaves timelines in memory only.
    let ops = kindling_ops::Ops::open(&cfg.ops, Some(&state_dir));
    ops.note_snapshot(&snapshot);

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
    let endpoints = kindling_menu::Endpoints::build(
        &cfg.menu,
        &cfg.cache,
        &data_path,
        shared.assets_dir.clone(),
    )
    .context("setting up boot menus and the cache")?;
    for w in &endpoints.warnings {
        tracing::warn!(target: "kindling::menu", "{w}");
    }
    let cache_handle = endpoints.cache.clone();
    // Menus read per-MAC defaults from the snapshot each request carries.
    let defaults: Arc<dyn kindling_menu::MenuDefaults> = Arc::new(kindling_menu::GroupDefaults);
    shared.extensions = endpoints.extensions(Some(defaults));
    shared.extensions.extend(ops.boot_extensions());
    shared.observer = Some(ops.clone());
    let shared = Arc::new(shared);

    let listen = args.http_listen.unwrap_or(cfg.http.listen);
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
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
    let admin_listener = match &admin_plan {
        Some(plan) => Some(
            tokio::net::TcpListener::bind(plan.listen)
                .await
                .with_context(|| format!("binding the admin listener {}", plan.listen))?,
        ),
        None => None,
    };
    let admin_local = admin_listener.as_ref().and_then(|l| l.local_addr().ok());

    let cancel = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();

    // TFTP first: the DHCP server advertises what it serves.
    let tftp_cfg = cfg.tftp.clone();
    if tftp_cfg.enabled {
        let server = kindling_tftp::TftpServer::bind(tftp_cfg.clone(), tftp_cfg.listen)
            .await
            .with_context(|| format!("starting TFTP on {}", tftp_cfg.listen))?
            .with_observer(ops.clone());
        tracing::info!(tftp = %server.local_addr(), "TFTP ready");
        let c = cancel.clone();
        tasks.spawn(async move { server.run(c).await.map_err(std::io::Error::other) });
    }

    let mut dhcp_cfg = cfg.dhcp.clone();
    if dhcp_cfg.enabled {
        dhcp_cfg.http_port = local.port();
        let server = kindling_dhcp::DhcpServer::bind_with_observer(&dhcp_cfg, ops.clone())
            .await
            .context("starting proxy DHCP")?;
        server.warn_unserved(cfg.unserved_boot_files().into_iter().collect());
        for l in server.listeners() {
            tracing::info!(iface = %l.iface, address = %l.server_ip, port = l.port, "proxy DHCP ready");
        }
        let c = cancel.clone();
        tasks.spawn(async move {
            server.run(c).await;
            Ok(())
        });
    }
    tasks.spawn(reload::run(
        loader,
        shared.clone(),
        ops.clone(),
        cfg.reload.clone(),
        !args.no_watch && cfg.reload.watch,
        cancel.clone(),
    ));
    let nofile = current_nofile();
    let http_limits = cfg.http.limits(nofile);
    tracing::info!(
        http = %local,
        max_connections = http_limits.total,
        max_connections_per_client = http_limits.per_client,
        descriptor_limit = nofile,
        "HTTP connection limits"
    );
    let http_stats = Arc::new(kindling_http::server::Stats::default());
    ops.add_listener_stats("http", http_stats.clone());
    tasks.spawn(kindling_http::server::serve_with(
        listener,
        shared.clone(),
        http_limits,
        http_stats,
        cancel.clone(),
    ));
    if let Some(admin_listener) = admin_listener {
        let stats = Arc::new(kindling_http::server::Stats::default());
        ops.add_listener_stats("admin", stats.clone());
        let auth = match (&admin_token, &admin_tls) {
            (Some(_), Some(_)) => "bearer token and client certificate",
            (Some(_), None) => "bearer token",
            (None, Some(_)) => "client certificate",
            (None, None) => "none (loopback only)",
        };
        let admin = Arc::new(kindling_http::server::Admin {
            extensions: ops.admin_extensions(),
            observer: Some(ops.clone()),
            token: admin_token,
            tls: admin_tls,
            stats,
        });
        tracing::info!(
            admin = ?admin_local,
            auth,
            tls = admin.tls.is_some(),
            "admin listener (API, events, dashboard, metrics)"
        );
        tasks.spawn(kindling_http::server::serve_admin(
            admin_listener,
            admin,
            cfg.admin.limits(cfg.http.idle_timeout_secs),
            cancel.clone(),
        ));
    } else {
        tracing::info!("admin listener off: no API, events, dashboard or metrics");
    }
    if !cfg.fcos.streams.is_empty() {
        let status = Arc::new(kindling_fcos::FcosStatus::new());
        tracing::info!(
            streams = %cfg.fcos.streams.join(","),
            interval_secs = cfg.fcos.interval_secs,
            "tracking Fedora CoreOS streams"
        );
        let (c, d, s, k) = (
            cfg.fcos.clone(),
            data_path.clone(),
            status.clone(),
            cancel.clone(),
        );
        tasks.spawn(async move {
            kindling_fcos::track(c, d, s, k).await;
            Ok(())
        });
        // The tracker's status, copied into ops (plain data, no callback) within a
        // second of a change: a lock and a clone of a few entries per tick.
        let (ops, k) = (ops.clone(), cancel.clone());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = Vec::new();
            loop {
                tokio::select! {
                    _ = k.cancelled() => return Ok(()),
                    _ = tick.tick() => {}
                }
                let now = status.snapshot();
                if now != last {
                    ops.set_fcos_streams(now.iter().map(fcos_stream).collect());
                    last = now;
                }
            }
        });
    }
    if let Some(cache) = cache_handle {
        let (ops, k) = (ops.clone(), cancel.clone());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
            loop {
                tokio::select! {
                    _ = k.cancelled() => return Ok(()),
                    _ = tick.tick() => {}
                }
                let held = cache.held();
                let bytes: u64 = held.iter().map(|h| h.size).sum();
                ops.set_cache_bytes(bytes);
                ops.set_cache_counters(cache.counters().into_iter().collect());
                ops.set_asset_status(vec![kindling_ops::AssetStatus {
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
    ops.set_ready();
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

    shutdown_signal().await;
    tracing::info!("shutting down");
    sdnotify::notify("STOPPING=1");
    ops.shutdown();
    cancel.cancel();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "task failed"),
            Err(e) => tracing::error!(error = %e, "task panicked"),
        }
    }
    Ok(())
}

/// What ops shows of one tracked Fedora CoreOS stream.
fn fcos_stream(st: &kindling_fcos::StreamStatus) -> kindling_ops::FcosStream {
    kindling_ops::FcosStream {
        stream: st.stream.clone(),
        arch: st.arch.clone(),
        current: st.current.clone(),
        upstream: st.upstream.clone(),
        last_error: st.last_error.clone(),
        last_check: st.last_check,
        last_success: st.last_success,
        failures: st.failures,
        consecutive_failures: st.consecutive_failures,
    }
}

/// The soft descriptor limit in force.
fn current_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
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

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
