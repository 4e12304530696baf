//! `kindling fcos pull|status|rollback`.
//!
//! A pull shows each download as one updating line when stderr is a
//! terminal; otherwise its log lines (progress lines among them) go to
//! stderr.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::state::Track;
use crate::sync::PullOutcome;
use crate::track::FcosConfig;

/// Fedora CoreOS stream sync.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum FcosCommand {
    /// Download, verify and switch to the stream's current release.
    Pull {
        /// Stream: stable, testing or next (or STREAM/ARCH).
        #[arg(long, default_value = "stable")]
        stream: String,
        /// Architecture (x86_64, aarch64, ...). Each has its own assets and
        /// profile (fedora-coreos-STREAM for x86_64, fedora-coreos-STREAM-ARCH
        /// for the others). Default: fcos.arch, else x86_64.
        #[arg(long)]
        arch: Option<String>,
        /// Keep this existing profile (e.g. fedora-core-1) on the release too:
        /// only its kernel and initramfs paths and coreos.live.rootfs_url
        /// change. Remembered: later pulls and the tracker keep it current.
        /// Repeatable; fcos.profiles adds to it.
        #[arg(long = "profile", value_name = "PROFILE")]
        profile: Vec<String>,
        /// Releases kept on disk, the current one included (at least 1).
        /// Default: fcos.keep, else 2.
        #[arg(long, value_parser = parse_keep)]
        keep: Option<usize>,
        /// Do NOT check OpenPGP signatures (the sha256 is still checked).
        #[arg(long)]
        insecure: bool,
        /// Stream metadata host. Default: fcos.base_url, else the official builds host.
        #[arg(long, env = "KINDLING_FCOS_BASE_URL")]
        base_url: Option<String>,
        /// Keyring file or directory of Fedora's public keys (armored or binary).
        #[arg(long, env = "KINDLING_FCOS_KEYRING")]
        keyring: Option<PathBuf>,
        /// http://host:port the machines reach this server on (it goes into
        /// coreos.live.rootfs_url and ignition.config.url). Default:
        /// fcos.server_url, else the one in the existing profile.
        #[arg(long, env = "KINDLING_FCOS_SERVER_URL")]
        server_url: Option<String>,
        /// Switch even to a release that was rolled back from.
        #[arg(long)]
        force: bool,
    },
    /// Show current and kept releases, and whether upstream has a newer one.
    /// Exits with 1 when upstream cannot be checked.
    Status {
        /// Streams, STREAM or STREAM/ARCH (default: fcos.streams, else the
        /// streams on disk, else stable).
        #[arg(long = "stream")]
        stream: Vec<String>,
        /// Architecture of the --stream entries that name none. Default: fcos.arch, else x86_64.
        #[arg(long)]
        arch: Option<String>,
        /// Do not ask upstream.
        #[arg(long)]
        offline: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[arg(long, env = "KINDLING_FCOS_BASE_URL")]
        base_url: Option<String>,
    },
    /// Switch the profile back to the previous kept release.
    Rollback {
        /// STREAM or STREAM/ARCH.
        #[arg(long, default_value = "stable")]
        stream: String,
        /// Default: fcos.arch, else x86_64.
        #[arg(long)]
        arch: Option<String>,
        #[arg(long, env = "KINDLING_FCOS_SERVER_URL")]
        server_url: Option<String>,
    },
}

/// `--keep N`: N counts the current release, which always stays, so 0 is
/// refused instead of quietly read as 1.
fn parse_keep(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|e| format!("{e} (expected a whole number, at least 1)"))?;
    crate::sync::check_keep("keep", n).map_err(|_| {
        "0 is not allowed: --keep counts the current release, which always stays; use --keep 1 to keep no older release".to_string()
    })?;
    Ok(n)
}

/// Sends a command's log lines to stderr unless the program set up logging
/// itself: everything from `info` up when stderr is not a terminal (each
/// download's `download progress` and `download complete` lines among
/// them), only warnings and errors on a terminal, which shows progress lines
/// instead. `KINDLING_LOG` (a filter) and `KINDLING_LOG_FORMAT=json` apply
/// as for `kindling serve`.
pub fn init_logging(tty: bool) {
    use tracing_subscriber::EnvFilter;
    if tracing::dispatcher::has_been_set() {
        return;
    }
    let level = if tty { "warn" } else { "info" };
    let filter = match std::env::var("KINDLING_LOG") {
        Ok(f) if !f.trim().is_empty() => EnvFilter::try_new(f),
        _ => EnvFilter::try_new(level),
    }
    .unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_writer(|| kindling_guard::progress::LogStderr)
        .with_env_filter(filter)
        .with_ansi(false);
    // When another thread set up logging meanwhile, its logging stays.
    let _ = match std::env::var("KINDLING_LOG_FORMAT") {
        Ok(f) if f.eq_ignore_ascii_case("json") => builder.json().flatten_event(true).try_init(),
        _ => builder.try_init(),
    };
}

/// Runs a command with default settings (see [`run_with_config`]).
pub fn run(cmd: FcosCommand, data_dir: &Path) -> anyhow::Result<ExitCode> {
    run_with_config(cmd, data_dir, &FcosConfig::default())
}

/// Runs a command; flags override `config` (the `[fcos]` table). Creates
/// its own tokio runtime: call it from outside any runtime.
pub fn run_with_config(
    cmd: FcosCommand,
    data_dir: &Path,
    config: &FcosConfig,
) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    init_logging(std::io::stderr().is_terminal());
    match cmd {
        FcosCommand::Pull {
            stream,
            arch,
            profile,
            keep,
            insecure,
            base_url,
            keyring,
            server_url,
            force,
        } => {
            let track = Track::parse(&stream, arch.as_deref().unwrap_or(&config.arch))?;
            let mut opts = config.pull_options(data_dir, &track);
            for p in profile {
                if !opts.profiles.contains(&p) {
                    opts.profiles.push(p);
                }
            }
            if let Some(k) = keep {
                opts.keep = k;
            }
            if let Some(b) = base_url {
                opts.base_url = b;
            }
            if keyring.is_some() {
                opts.keyring = keyring;
            }
            if server_url.is_some() {
                opts.server_url = server_url;
            }
            opts.insecure |= insecure;
            opts.force = force;
            opts.progress = true;
            if opts.insecure {
                eprintln!(
                    "WARNING: --insecure: OpenPGP signatures will NOT be checked; only the sha256 from the stream metadata protects these files"
                );
            }
            let outcome = rt
                .block_on(pull(&opts))
                .with_context(|| format!("pulling fedora-coreos {track}"))?;
            let profiles = crate::state::StreamState::load(data_dir, &track)
                .map(|s| s.profiles)
                .unwrap_or_default();
            let mut ids = vec![crate::profile::profile_id(&track)];
            ids.extend(profiles);
            let ids = format!(
                "{} {}",
                if ids.len() == 1 {
                    "profile"
                } else {
                    "profiles"
                },
                ids.join(", ")
            );
            match outcome {
                PullOutcome::Switched { from, to, dropped } => {
                    println!(
                        "{track}: switched {ids} from {} to {to}",
                        from.as_deref().unwrap_or("(none)")
                    );
                    for d in dropped {
                        println!("{track}: deleted old release {d}");
                    }
                }
                PullOutcome::UpToDate { release } => {
                    println!("{track}: {release} is current ({ids})")
                }
                PullOutcome::Skipped { release, current } => println!(
                    "{track}: upstream {release} was rolled back from; staying on {} (--force to switch)",
                    current.as_deref().unwrap_or("(none)")
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        FcosCommand::Status {
            stream,
            arch,
            offline,
            json,
            base_url,
        } => {
            let default_arch = arch.as_deref().unwrap_or(&config.arch);
            let tracks: Vec<Track> = if !stream.is_empty() {
                stream
                    .iter()
                    .map(|s| Track::parse(s, default_arch))
                    .collect::<Result<_, _>>()?
            } else if !config.streams.is_empty() {
                config.tracks()?
            } else {
                let found = tracks_on_disk(data_dir);
                if found.is_empty() {
                    vec![Track::new("stable", default_arch)?]
                } else {
                    found
                }
            };
            let base = base_url.unwrap_or_else(|| config.base_url.clone());
            let mut reports = Vec::new();
            for t in &tracks {
                let r = rt
                    .block_on(crate::sync::status(data_dir, t, &base, offline))
                    .with_context(|| format!("status of fedora-coreos {t}"))?;
                reports.push(r);
            }
            let failed = reports.iter().any(|r| r.upstream_error.is_some());
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                for r in &reports {
                    println!("stream:   {} ({})", r.stream, r.arch);
                    println!("current:  {}", r.current.as_deref().unwrap_or("(none)"));
                    if !r.profiles.is_empty() {
                        println!("profiles: {}", r.profiles.join(", "));
                    }
                    println!(
                        "kept:     {}",
                        if r.kept.is_empty() {
                            "(none)".into()
                        } else {
                            r.kept.join(", ")
                        }
                    );
                    if !r.skipped.is_empty() {
                        println!("rolled back from: {}", r.skipped.join(", "));
                    }
                    let pull = if r.arch == crate::state::DEFAULT_ARCH {
                        format!("kindling fcos pull --stream {}", r.stream)
                    } else {
                        format!("kindling fcos pull --stream {} --arch {}", r.stream, r.arch)
                    };
                    match (&r.upstream, &r.upstream_error) {
                        (Some(u), _) if r.update_available => {
                            println!("upstream: {u} (newer: run `{pull}`)")
                        }
                        (Some(u), _) if r.skipped.contains(u) => println!(
                            "upstream: {u} (rolled back from; staying on {} until a newer release, or `{pull} --force`)",
                            r.current.as_deref().unwrap_or("(none)")
                        ),
                        (Some(u), _) if r.current.as_ref() == Some(u) => {
                            println!("upstream: {u} (up to date)")
                        }
                        (Some(u), _) => println!("upstream: {u}"),
                        (None, Some(e)) => println!("upstream: CHECK FAILED: {e}"),
                        (None, None) => println!("upstream: not checked"),
                    }
                }
            }
            if failed {
                for r in reports.iter().filter(|r| r.upstream_error.is_some()) {
                    eprintln!(
                        "error: cannot check upstream for fedora-coreos {}/{}: {}",
                        r.stream,
                        r.arch,
                        r.upstream_error.as_deref().unwrap_or_default()
                    );
                }
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        FcosCommand::Rollback {
            stream,
            arch,
            server_url,
        } => {
            let track = Track::parse(&stream, arch.as_deref().unwrap_or(&config.arch))?;
            let su = server_url.or_else(|| config.server_url.clone());
            let (from, to) = crate::sync::rollback(data_dir, &track, su.as_deref())
                .with_context(|| format!("rolling back fedora-coreos {track}"))?;
            println!("{track}: rolled back from {from} to {to}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

use crate::sync::pull;

/// The tracks with a state under `assets/fedora-coreos/`, sorted.
fn tracks_on_disk(data_dir: &Path) -> Vec<Track> {
    #[derive(serde::Deserialize)]
    struct Head {
        stream: String,
        arch: String,
    }
    let mut out: Vec<Track> = std::fs::read_dir(data_dir.join("assets").join("fedora-coreos"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("state.json")).ok())
        .filter_map(|b| serde_json::from_slice::<Head>(&b).ok())
        .filter_map(|h| Track::new(&h.stream, &h.arch).ok())
        .collect();
    out.sort();
    out.dedup();
    out
}
