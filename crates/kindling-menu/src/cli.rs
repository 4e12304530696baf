//! `kindling cache prefetch ENTRY...` and `kindling cache ls`.
//!
//! Prefetch shows each download as one updating line when stderr is a
//! terminal; otherwise it logs progress lines (`kindling::cache`,
//! `download progress` ... `download complete`, with bytes, total and rate)
//! to stderr.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kindling_guard::chain;
use kindling_guard::progress::{Bytes, LogStderr, Meter, TtyLine};

use crate::cache::{Cache, Fill, Held, log_complete, log_progress};
use crate::catalog::{Arch, Catalog};
use crate::config::{CacheConfig, MenuConfig};

#[derive(clap::Args, Debug, Clone)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum CacheCommand {
    /// Download every file of these catalog entries into the cache (before a boot storm).
    Prefetch {
        /// Entry ids (see `kindling cache ls --catalog`).
        #[arg(required = true)]
        entries: Vec<String>,
        /// Only this architecture (x86_64 or arm64).
        #[arg(long)]
        arch: Option<String>,
        /// Ask a running server to fetch (e.g. http://127.0.0.1:8080), so that
        /// its own index learns about the files. Without it the cache
        /// directory is filled directly (do that while the server is stopped).
        #[arg(long, env = "KINDLING_CACHE_SERVER")]
        server: Option<String>,
    },
    /// Show what the cache holds: entry, file, size, last used, verified.
    Ls {
        /// Print the index as JSON.
        #[arg(long)]
        json: bool,
        /// List the catalog's entries and files instead.
        #[arg(long)]
        catalog: bool,
    },
}

/// CLI failures (printed by the caller; exit code 2). Transparent: the
/// message is the inner error's, said once (an `anyhow` `{:#}` does not
/// repeat it as its own cause).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    #[error("{0}")]
    Other(String),
}

fn human(n: u64) -> String {
    Bytes(n).to_string()
}

/// Sends a command's log lines (its downloads' progress among them) to
/// stderr, unless the program set up logging itself: everything from
/// `info` up when stderr is not a terminal, only warnings and errors on a
/// terminal (which shows progress lines instead). `KINDLING_LOG` (a
/// filter) and `KINDLING_LOG_FORMAT=json` apply as for `kindling serve`.
pub fn init_logging(tty: bool) {
    if tracing::dispatcher::has_been_set() {
        return;
    }
    let filter = std::env::var("KINDLING_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| if tty { "warn" } else { "info" }.into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogStderr)
        .with_ansi(false);
    let json = std::env::var("KINDLING_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // Another thread may have won the race: its logging stays.
    let _ = if json {
        fmt.json().flatten_event(true).try_init()
    } else {
        fmt.try_init()
    };
}

/// Draws a prefetch's downloads on the terminal, one line each.
fn draw(line: &mut Option<TtyLine>, fill: Fill<'_>) {
    match fill {
        Fill::Progress { key, bytes, total } => {
            if line.as_ref().is_some_and(|l| l.label() != key)
                && let Some(old) = line.take()
            {
                old.clear();
            }
            let l = line.get_or_insert_with(|| TtyLine::new(key, 0, total));
            l.set_total(total);
            l.update(bytes);
        }
        Fill::Done { key, bytes } => {
            if line.as_ref().is_some_and(|l| l.label() == key)
                && let Some(l) = line.take()
            {
                l.finish(bytes);
            }
        }
    }
}

fn ago(t: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let d = now.saturating_sub(t);
    match d {
        0..60 => format!("{d}s ago"),
        60..3600 => format!("{}m ago", d / 60),
        3600..86400 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86400),
    }
}

/// Renders `ls` as a table.
pub fn table(held: &[Held]) -> String {
    let mut rows = vec![[
        "ENTRY".to_string(),
        "FILE".into(),
        "SIZE".into(),
        "LAST USED".into(),
        "VERIFIED".into(),
    ]];
    for h in held {
        rows.push([
            h.entry.clone(),
            format!("{}/{}", h.arch.as_str(), h.file),
            human(h.size),
            ago(h.last_used),
            if h.verified {
                "sha256".into()
            } else {
                "no (upstream publishes no checksum)".into()
            },
        ]);
    }
    let mut w = [0usize; 5];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let mut s = String::new();
    for r in &rows {
        let line = format!(
            "{:w0$}  {:w1$}  {:>w2$}  {:w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3]
        );
        s.push_str(line.trim_end());
        s.push('\n');
    }
    let total: u64 = held.iter().map(|h| h.size).sum();
    s.push_str(&format!("{} files, {}\n", held.len(), human(total)));
    s
}

fn parse_arch(a: Option<&str>) -> Result<Option<Arch>, CliError> {
    a.map(|a| {
        Arch::parse(a)
            .ok_or_else(|| CliError::Other(format!("unknown architecture {a:?} (x86_64 or arm64)")))
    })
    .transpose()
}

/// Runs a `kindling cache` command. Builds its own tokio runtime.
pub fn run(
    args: &CacheArgs,
    menu: &MenuConfig,
    cache: &CacheConfig,
    data_dir: &Path,
) -> Result<ExitCode, CliError> {
    let catalog = Arc::new(Catalog::load(menu)?);
    let dir = cache.dir_for(data_dir);
    match &args.command {
        CacheCommand::Ls {
            json,
            catalog: list_catalog,
        } => {
            if *list_catalog {
                for e in catalog.entries() {
                    println!("{}  {}", e.id, e.title);
                    for (a, spec) in &e.arch {
                        for (n, f) in &spec.files {
                            let how = if f.sha256.is_some() {
                                "sha256 pinned"
                            } else if f.sums_name.is_some() {
                                "checksum file"
                            } else {
                                "unverified"
                            };
                            println!("    {}/{n}  {}  ({how})", a.as_str(), f.url);
                        }
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            let held = match std::fs::read(dir.join("index.json")) {
                Ok(b) => {
                    #[derive(serde::Deserialize)]
                    struct F {
                        files: Vec<Held>,
                    }
                    let mut f: F = serde_json::from_slice(&b).map_err(|e| {
                        CliError::Other(format!("{}: {e}", dir.join("index.json").display()))
                    })?;
                    f.files.sort_by_key(|h| std::cmp::Reverse(h.last_used));
                    f.files
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => {
                    return Err(CliError::Other(format!(
                        "{}: {e}",
                        dir.join("index.json").display()
                    )));
                }
            };
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&held).unwrap_or_default()
                );
            } else {
                print!("{}", table(&held));
            }
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Prefetch {
            entries,
            arch,
            server,
        } => {
            let arch = parse_arch(arch.as_deref())?;
            let tty = std::io::stderr().is_terminal();
            init_logging(tty);
            for e in entries {
                if catalog.get(e).is_none() {
                    return Err(CliError::Other(format!(
                        "no entry {e:?} in the catalog (see `kindling cache ls --catalog`)"
                    )));
                }
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| {
                    CliError::Other(format!("starting the async runtime: {}", chain(&e)))
                })?;
            rt.block_on(async {
                let mut failed = 0;
                match server {
                    Some(base) => {
                        let up = crate::upstream::Upstream::new(
                            Duration::from_secs(cache.connect_timeout_secs.max(1)),
                            0,
                        )
                        .map_err(|e| CliError::Other(chain(&e)))?;
                        // The server's operator token (in its cache
                        // directory) lets these GETs start fetches.
                        let token = crate::cache::read_operator_token(&dir);
                        if token.is_none() {
                            eprintln!(
                                "kindling: no operator token in {} (readable by the server's user only): the server treats these requests as anonymous and fetches only what a machine is routed to",
                                dir.display()
                            );
                        }
                        for id in entries {
                            let Some(e) = catalog.get(id) else { continue };
                            for (a, spec) in &e.arch {
                                if arch.is_some_and(|x| x != *a) {
                                    continue;
                                }
                                for name in spec.files.keys() {
                                    let url = format!(
                                        "{}/cache/{id}/{}/{name}",
                                        base.trim_end_matches('/'),
                                        a.as_str()
                                    );
                                    let label = format!("{id}/{}/{name}", a.as_str());
                                    match fetch_discard(&up, &url, token.as_deref(), &label, tty)
                                        .await
                                    {
                                        Ok(n) => {
                                            println!("{id}  {}/{name}  {}", a.as_str(), human(n))
                                        }
                                        Err(why) => {
                                            failed += 1;
                                            eprintln!("{id}  {}/{name}  FAILED: {why}", a.as_str());
                                        }
                                    }
                                }
                            }
                        }
                    }
                    None => {
                        let c = Cache::open(cache.clone(), dir.clone(), catalog.clone())?;
                        for id in entries {
                            let mut line = None;
                            let res = c
                                .prefetch_with(id, arch, |fill| {
                                    if tty {
                                        draw(&mut line, fill);
                                    }
                                })
                                .await;
                            if let Some(l) = line.take() {
                                l.clear();
                            }
                            match res {
                                Ok(held) => {
                                    for h in held {
                                        println!(
                                            "{}  {}/{}  {}  {}",
                                            h.entry,
                                            h.arch.as_str(),
                                            h.file,
                                            human(h.size),
                                            if h.verified { "verified" } else { "unverified" }
                                        );
                                    }
                                }
                                Err(e) => {
                                    failed += 1;
                                    eprintln!("kindling: prefetch failed: {e}");
                                }
                            }
                        }
                        c.save_index();
                    }
                }
                Ok(if failed == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            })
        }
    }
}

/// GETs `url` and counts the body (the server caches it on the way),
/// showing progress (`label`) on the terminal or in progress log lines.
async fn fetch_discard(
    up: &crate::upstream::Upstream,
    url: &str,
    token: Option<&str>,
    label: &str,
    tty: bool,
) -> Result<u64, String> {
    use http_body_util::BodyExt;
    let extra: Vec<(hyper::header::HeaderName, String)> = token
        .map(|t| {
            (
                hyper::header::HeaderName::from_static(crate::ext::OPERATOR_HEADER),
                t.to_string(),
            )
        })
        .into_iter()
        .collect();
    let (resp, _) = up.get(url, &extra).await.map_err(|e| chain(&e))?;
    let want = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = resp.into_body();
    let mut n = 0u64;
    let mut meter = Meter::new(0, want, Instant::now());
    let mut line = tty.then(|| TtyLine::new(label, 0, want));
    let result = loop {
        let Some(f) = body.frame().await else {
            break match want {
                Some(w) if w != n => Err(format!("{url}: got {n} of {w} bytes")),
                _ => Ok(n),
            };
        };
        let f = match f {
            Ok(f) => f,
            Err(e) => break Err(format!("{url}: after {n} bytes: {}", chain(&e))),
        };
        if let Ok(d) = f.into_data() {
            n += d.len() as u64;
            if let Some(s) = meter.log_due(n, Instant::now()) {
                log_progress(label, &s);
            }
            if let Some(l) = &mut line {
                l.update(n);
            }
        }
    };
    match (&result, line) {
        (Ok(_), Some(l)) => l.finish(n),
        (Err(_), Some(l)) => l.clear(),
        _ => {}
    }
    if result.is_ok() {
        log_complete(label, &meter.snapshot(n, Instant::now()));
    }
    result
}
