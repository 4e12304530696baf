//! `kindling`: one binary for network boot.

mod check;
mod config;
mod config_doc;
mod heap;
mod listeners;
mod log_format;
mod log_writer;
mod migrate;
mod publish;
mod reload;
mod sdnotify;
mod secure_boot;
mod select;
mod serve;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use kindling_model::DataDir;

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
        args: kindling_api::machines_cli::MachinesArgs,
        /// Ask a running server's admin listener (e.g. http://127.0.0.1:8082) instead of
        /// reading the journal; repeat it (or separate with commas) to merge the machines and
        /// timelines of a fleet's servers.
        #[arg(long, global = true, env = "KINDLING_SERVER", value_delimiter = ',')]
        server: Vec<String>,
    },
    /// Groups of the data directory: ls, get, put, rm (through --server, or directly).
    Group(kindling_api::cli::ObjectArgs),
    /// Profiles of the data directory: ls, get, put, rm (through --server, or directly).
    Profile(kindling_api::cli::ObjectArgs),
    /// Ignition and Butane templates: ls, get, put, rm (through --server, or directly).
    Ignition(kindling_api::cli::ObjectArgs),
    /// Generic templates: ls, get, put, rm (through --server, or directly).
    Generic(kindling_api::cli::ObjectArgs),
    /// Copy objects between a data directory and the etcd store ([store] in kindling.toml).
    #[command(subcommand)]
    Store(StoreCommand),
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

#[derive(Subcommand, Debug)]
enum StoreCommand {
    /// Write every group, profile, Ignition, generic and cloud file of DIR into etcd
    /// (groups and profiles that do not load are refused, named, and not written).
    Import {
        /// A data directory in matchbox's layout.
        dir: PathBuf,
    },
    /// Write every object in etcd as files into DIR (matchbox's layout), at one revision.
    Export {
        /// The directory to write (created if missing).
        dir: PathBuf,
    },
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
    /// matchbox's gRPC API address (mutual TLS, `[rpc]` cert_file, key_file, ca_file;
    /// default off), as matchbox's `-rpc-address`.
    #[arg(long, env = "KINDLING_RPC_ADDRESS")]
    rpc_address: Option<String>,
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
    if !talks_to_the_network(&cli) {
        // Command-line tools end quietly when their output pipe closes
        // (`kindling check | head`) instead of failing on EPIPE. The server, and tools
        // that write to sockets (a peer closing one must be an error with a message, not
        // a silent death by SIGPIPE), keep Rust's default (SIGPIPE ignored, EPIPE as an
        // error).
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
        } => machines(&cli, args, server),
        Command::Migrate(ref cmd) => migrate::run(cmd),
        Command::Group(ref args) => objects(&cli, kindling_model::store::Kind::Group, args),
        Command::Profile(ref args) => objects(&cli, kindling_model::store::Kind::Profile, args),
        Command::Ignition(ref args) => objects(&cli, kindling_model::store::Kind::Ignition, args),
        Command::Generic(ref args) => objects(&cli, kindling_model::store::Kind::Generic, args),
        Command::Store(ref cmd) => store_command(&cli, cmd),
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

/// Whether the command writes to sockets: the server, a `--server` client, the etcd store.
fn talks_to_the_network(cli: &Cli) -> bool {
    let etcd = || {
        config::load(cli.config.as_deref())
            .is_ok_and(|(c, _)| c.store.backend == store::Backend::Etcd)
    };
    match &cli.command {
        Command::Serve(_) | Command::Store(_) | Command::Fcos(_) | Command::Cache(_) => true,
        Command::Machines { server, .. } => !server.is_empty() || etcd(),
        Command::Group(a) | Command::Profile(a) | Command::Ignition(a) | Command::Generic(a) => {
            a.server.is_some() || etcd()
        }
        Command::Check(_) | Command::Select(_) => etcd(),
        _ => false,
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

fn init_logging(format: LogFormat, filter: &str) -> Result<log_writer::Guard> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("kindling: bad log filter {filter:?} ({e}); using info");
        EnvFilter::new("info")
    });
    // Lines gather in a bounded buffer that a thread of their own writes in batches
    // (log_writer); when it is full, the logging thread waits (nothing is lost).
    let (writer, guard) = log_writer::spawn(std::io::stdout(), Default::default())
        .context("starting the log writer thread")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder
            .with_ansi(false)
            .fmt_fields(log_format::Fields)
            .event_format(log_format::Text::default())
            .init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(guard)
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

fn objects(
    cli: &Cli,
    kind: kindling_model::store::Kind,
    args: &kindling_api::cli::ObjectArgs,
) -> Result<std::process::ExitCode> {
    let (cfg, _) = config::load(cli.config.as_deref())?;
    let data = resolve_data_dir(cli.data_dir.clone(), &cfg);
    if args.server.is_some() {
        return kindling_api::cli::run(kind, args, || unreachable!("--server given"));
    }
    let errors = cfg.store.check();
    anyhow::ensure!(errors.is_empty(), "{}", errors.join("; "));
    let objects = store::cli_objects(&cfg.store, &data)?;
    kindling_api::cli::run(kind, args, || objects.objects.clone())
}

fn store_command(cli: &Cli, cmd: &StoreCommand) -> Result<std::process::ExitCode> {
    let (cfg, _) = config::load(cli.config.as_deref())?;
    let errors = cfg.store.check();
    anyhow::ensure!(errors.is_empty(), "{}", errors.join("; "));
    anyhow::ensure!(
        cfg.store.backend == store::Backend::Etcd,
        "kindling store copies to and from etcd: set [store] backend = \"etcd\" and endpoints in kindling.toml"
    );
    #[cfg(feature = "etcd")]
    match cmd {
        StoreCommand::Import { dir } => {
            let (written, refused) = store::etcd::import(&cfg.store, dir)?;
            println!("imported {written} object(s) from {}", dir.display());
            for r in &refused {
                eprintln!("kindling: refused (does not load): {r}");
            }
            if !refused.is_empty() {
                return Ok(std::process::ExitCode::from(1));
            }
        }
        StoreCommand::Export { dir } => {
            let (n, rev) = store::etcd::export(&cfg.store, dir)?;
            println!(
                "exported {n} object(s) at revision {rev} to {}",
                dir.display()
            );
        }
    }
    #[cfg(not(feature = "etcd"))]
    let _ = cmd;
    Ok(std::process::ExitCode::SUCCESS)
}

fn machines(
    cli: &Cli,
    args: &kindling_api::machines_cli::MachinesArgs,
    servers: &[String],
) -> Result<std::process::ExitCode> {
    use kindling_api::lifecycle_cli;
    use kindling_api::machines_cli::MachinesCommand;
    use kindling_model::Change;
    let (cfg, _) = config::load(cli.config.as_deref())?;
    let state = config::state_dir(&cfg, cli.state_dir.as_deref());
    let change = match &args.command {
        Some(MachinesCommand::Reinstall { mac }) => Some((mac, Change::Reinstall)),
        Some(MachinesCommand::MarkInstalled { mac }) => Some((mac, Change::Installed)),
        _ => None,
    };
    anyhow::ensure!(
        !(change.is_some() && servers.is_empty() && cfg.store.backend == store::Backend::Etcd),
        "with [store] backend = \"etcd\" the install state lives in etcd: use --server (any server of the fleet)"
    );
    // The lifecycle commands (a change, or the --discovered / --installed lists) are
    // kindling-api's client's and ask the first server only; ops runs the views.
    let server = servers.first().map(String::as_str);
    let lifecycle_list = matches!(args.command, None | Some(MachinesCommand::List))
        && (args.discovered || args.installed);
    match change {
        Some((mac, change)) => lifecycle_cli::change(&state, server, &args.auth, mac, change),
        None if lifecycle_list => {
            let records = lifecycle_cli::list(&state, server, &args.auth, args.discovered)?;
            kindling_api::machines_cli::print_lifecycle(args, &state, server, &records)
        }
        None => kindling_api::machines_cli::run(args, &state, servers),
    }
}

fn serve(cli: &Cli, args: &ServeArgs) -> Result<std::process::ExitCode> {
    heap::tune_for_server();
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
    let _guard = init_logging(format, &filter)?;
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
    runtime.block_on(serve::run_server(cli, args, cfg))?;
    Ok(std::process::ExitCode::SUCCESS)
}
