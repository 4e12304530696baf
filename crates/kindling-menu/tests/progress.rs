//! What `kindling cache prefetch` and cache fills say while they download, and
//! when they fail: progress log lines when stderr is not a terminal (with the
//! right byte count at the end), and errors that keep their cause
//! (`Connection refused`, not just `client error (Connect)`).
//!
//! The CLI's own logging (to stderr) is set up once per process, so each CLI
//! run here is a child process: this test binary again, running only
//! [`child`] with the case in its environment, stderr a pipe.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use clap::Parser;
use common::upstream::{self, Upstream};
use kindling_http::{RequestObserver, RequestRecord};
use kindling_menu::cli::{self, CacheArgs};
use kindling_menu::{Cache, CacheConfig, CacheExtension, Catalog, MenuConfig};
use kindling_testkit::{closed_port, code_and_stderr, rerun_self};

const CHILD: &str = "KINDLING_TEST_CHILD_ARGS";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: CacheArgs,
}

/// One entry `tiny` with one file `k` at `url` (unverified: no checksum).
fn entry_toml(url: &str) -> String {
    format!(
        "id = \"tiny\"\ntitle = \"Tiny\"\n[arch.x86_64]\nkernel = \"k\"\n[arch.x86_64.files.k]\nurl = \"{url}\"\n"
    )
}

fn menu(entry: &str) -> MenuConfig {
    MenuConfig {
        entries: vec![toml::from_str(entry).unwrap()],
        ..MenuConfig::default()
    }
}

/// Not a test of its own: the child process of [`run_cli`].
#[test]
fn child() {
    let Ok(argv) = std::env::var(CHILD) else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap();
    let args = Cli::try_parse_from(std::iter::once("cache").chain(argv.split('\u{1f}')))
        .unwrap()
        .args;
    let cache = CacheConfig {
        dir: std::env::var("KINDLING_TEST_CACHE_DIR")
            .ok()
            .map(Into::into),
        connect_timeout_secs: 5,
        ..CacheConfig::default()
    };
    let data = env("KINDLING_TEST_DATA");
    let code = match cli::run(
        &args,
        &menu(&env("KINDLING_TEST_ENTRY")),
        &cache,
        Path::new(&data),
    ) {
        Ok(c) if c == std::process::ExitCode::SUCCESS => 0,
        Ok(_) => 1,
        Err(e) => {
            eprintln!("kindling: error: {e}");
            2
        }
    };
    std::process::exit(code);
}

/// Runs `kindling cache ARGS...` in a child process with stderr a pipe;
/// returns its exit code and stderr.
fn run_cli(args: &[&str], entry: &str, data: &Path, cache_dir: Option<&Path>) -> (i32, String) {
    let mut cmd = rerun_self("child");
    cmd.env(CHILD, args.join("\u{1f}"))
        .env("KINDLING_TEST_ENTRY", entry)
        .env("KINDLING_TEST_DATA", data)
        .env_remove("KINDLING_CACHE_SERVER");
    if let Some(d) = cache_dir {
        cmd.env("KINDLING_TEST_CACHE_DIR", d);
    }
    code_and_stderr(&mut cmd)
}

/// The line of `log` holding every one of `words`.
fn line_with<'a>(log: &'a str, words: &[&str]) -> Option<&'a str> {
    log.lines().find(|l| words.iter().all(|w| l.contains(w)))
}

#[test]
fn prefetch_logs_progress_lines_when_stderr_is_not_a_terminal() {
    const LEN: usize = 2_500_000;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(Upstream::start());
    up.put("/k", upstream::data(LEN, 7));
    let entry = entry_toml(&up.url("/k"));
    let data = tempfile::tempdir().unwrap();

    // Directly into the cache directory: the cache's own download logs.
    let (code, log) = run_cli(&["prefetch", "tiny"], &entry, data.path(), None);
    assert_eq!(code, 0, "{log}");
    let done = line_with(&log, &["download complete", "file=tiny/x86_64/k"])
        .unwrap_or_else(|| panic!("no completion line in:\n{log}"));
    assert!(done.contains(&format!("bytes={LEN}")), "{done}");
    assert!(done.contains(&format!("total={LEN}")), "{done}");
    assert!(done.contains("rate_bps="), "{done}");
    assert!(done.contains("INFO"), "{done}");
    // No terminal drawing on a pipe.
    assert!(!log.contains('\r') && !log.contains('\u{1b}'), "{log:?}");
    assert_eq!(
        std::fs::metadata(data.path().join("cache/files/tiny/x86_64/k"))
            .unwrap()
            .len(),
        LEN as u64
    );

    // Through a running server: the CLI logs its own download's progress.
    let sdata = tempfile::tempdir().unwrap();
    let cache_dir = sdata.path().join("cache");
    let catalog = Arc::new(Catalog::load(&menu(&entry)).unwrap());
    let srv = rt.block_on(async {
        let cache = Cache::open(CacheConfig::default(), cache_dir.clone(), catalog).unwrap();
        common::serve(&sdata.path().join("data"), move |_| {
            vec![Arc::new(CacheExtension::new(cache))]
        })
        .await
    });
    let base = format!("http://{}", srv.addr);
    let (code, log) = run_cli(
        &["prefetch", "--server", &base, "tiny"],
        &entry,
        data.path(),
        Some(&cache_dir),
    );
    assert_eq!(code, 0, "{log}");
    let done = line_with(&log, &["download complete", "file=tiny/x86_64/k"])
        .unwrap_or_else(|| panic!("no completion line in:\n{log}"));
    assert!(done.contains(&format!("bytes={LEN}")), "{done}");
    assert_eq!(up.gets("/k"), 2);
    drop(srv);
}

#[test]
fn prefetch_from_a_closed_port_says_connection_refused() {
    let (port, refused) = closed_port();
    let entry = entry_toml(&format!("http://127.0.0.1:{port}/k"));
    let data = tempfile::tempdir().unwrap();

    // Directly: the cache's error names the cause, once.
    let (code, log) = run_cli(&["prefetch", "tiny"], &entry, data.path(), None);
    assert_eq!(code, 1, "{log}");
    let line = line_with(&log, &["prefetch failed"]).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains(&refused), "{line}");
    assert_eq!(line.matches(&refused).count(), 1, "{line}");
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");

    // Through a server that is not there.
    let (code, log) = run_cli(
        &[
            "prefetch",
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "tiny",
        ],
        &entry,
        data.path(),
        None,
    );
    assert_eq!(code, 1, "{log}");
    let line = line_with(&log, &["FAILED"]).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains(&refused), "{line}");
    assert_eq!(line.matches(&refused).count(), 1, "{line}");
}

/// Keeps (path, status, reason) of every request.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, u16, Option<String>)>>);

impl RequestObserver for Seen {
    fn request(&self, r: &RequestRecord<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((r.path.to_string(), r.status, r.reason.map(str::to_string)));
    }
}

#[test]
fn a_failed_fill_records_its_cause_as_the_reason() {
    let (port, refused) = closed_port();
    let entry = entry_toml(&format!("http://127.0.0.1:{port}/k"));
    let catalog = Arc::new(Catalog::load(&menu(&entry)).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = tmp.path().join("cache");
    let seen = Arc::new(Seen::default());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, reason) = rt.block_on(async {
        let cache = Cache::open(CacheConfig::default(), cache_dir.clone(), catalog).unwrap();
        let c = cache.clone();
        let srv = common::serve_observed(
            &tmp.path().join("data"),
            move |_| vec![Arc::new(CacheExtension::new(c))],
            seen.clone(),
        )
        .await;
        let token = kindling_menu::cache::read_operator_token(&cache_dir).unwrap();
        let (code, _) = common::curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &format!("X-Kindling-Operator: {token}"),
            &format!("http://{}/cache/tiny/x86_64/k", srv.addr),
        ])
        .await;
        assert_eq!(code, 0);
        // The record may be written just after the reply (bounded wait).
        for _ in 0..100 {
            let rec = seen
                .0
                .lock()
                .unwrap()
                .iter()
                .find(|r| r.0 == "/cache/tiny/x86_64/k")
                .cloned();
            if let Some(rec) = rec {
                return (rec.1, rec.2.unwrap_or_default());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no record of the request");
    });
    assert_eq!(status, 502, "{reason}");
    assert!(reason.starts_with("cache: tiny/x86_64/k: "), "{reason}");
    assert!(reason.contains(&refused), "{reason}");
    assert_eq!(reason.matches(&refused).count(), 1, "{reason}");
}
