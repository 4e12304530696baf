//! What `kindling fcos pull` says while it downloads, and when it fails:
//! progress log lines when stderr is not a terminal (with the right byte
//! count at the end), and errors that keep their cause (`Connection
//! refused`, not just `error sending request`), said once.
//!
//! The CLI's own logging (to stderr) is set up once per process, so the CLI
//! run here is a child process: this test binary again, running only
//! [`child`] with the case in its environment, stderr a pipe.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use kindling_fcos::cli::{FcosCommand, run};
use kindling_fcos::sync::{PullOptions, RetryPolicy, pull, status};

const CHILD: &str = "KINDLING_TEST_FCOS_CHILD";
const SERVER: &str = "http://10.10.254.200:8080";

/// Not a test of its own: the child process of [`pull_in_a_child`].
#[test]
fn child() {
    let Ok(data) = std::env::var(CHILD) else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap();
    let cmd = FcosCommand::Pull {
        stream: "stable".into(),
        arch: None,
        profile: Vec::new(),
        keep: Some(2),
        insecure: false,
        base_url: Some(env("KINDLING_TEST_BASE_URL")),
        keyring: Some(env("KINDLING_TEST_KEYRING").into()),
        server_url: Some(SERVER.into()),
        force: false,
    };
    let code = match run(cmd, Path::new(&data)) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("kindling: error: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

/// `kindling fcos pull` in a child process with stderr a pipe: exit code
/// and stderr.
fn pull_in_a_child(data: &Path, base_url: &str, keyring: &Path) -> (i32, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, data)
        .env("KINDLING_TEST_BASE_URL", base_url)
        .env("KINDLING_TEST_KEYRING", keyring)
        .env_remove("KINDLING_LOG")
        .env_remove("KINDLING_LOG_FORMAT")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn data_dir(tmp: &Path) -> PathBuf {
    let data = tmp.join("data");
    for d in ["profiles", "groups", "assets", "ignition"] {
        std::fs::create_dir_all(data.join(d)).unwrap();
    }
    data
}

#[test]
fn pull_logs_progress_lines_when_stderr_is_not_a_terminal() {
    let fx = Fixture::start();
    let key = TestKey::generate("Fedora CoreOS test key <test@kindling.invalid>");
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    let keyring = key.write_keyring(&tmp.path().join("keys"));
    let rel = Release::new("43.20251101.3.0", 1_500_000);
    publish(&fx, &rel, &key);

    let (code, log) = pull_in_a_child(&data, &fx.base_url(), &keyring);
    assert_eq!(code, 0, "{log}");
    for (name, bytes) in rel.parts() {
        let done = log
            .lines()
            .find(|l| l.contains("download complete") && l.contains(&format!("file={name}")))
            .unwrap_or_else(|| panic!("no completion line for {name} in:\n{log}"));
        assert!(done.contains(&format!(" bytes={} ", bytes.len())), "{done}");
        assert!(done.contains(&format!(" total={} ", bytes.len())), "{done}");
        assert!(done.contains("rate_bps="), "{done}");
    }
    // No terminal drawing on a pipe.
    assert!(!log.contains('\r') && !log.contains('\u{1b}'), "{log:?}");
}

/// A loopback port nothing listens on, and the OS's words for connecting to
/// it (Linux: "Connection refused").
#[test]
fn pull_from_a_closed_port_says_connection_refused_once() {
    let (port, refused) = kindling_testkit::closed_port();
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    let base = format!("http://127.0.0.1:{port}");
    let opts = PullOptions {
        base_url: base.clone(),
        insecure: true,
        server_url: Some(SERVER.into()),
        retry: RetryPolicy {
            attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
        },
        ..PullOptions::new(&data, "stable")
    };
    let e = block_on(pull(&opts)).unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&refused), "{text}");
    assert_eq!(text.matches(&refused).count(), 1, "{text}");
    // The URL once, not again in reqwest's own words.
    assert_eq!(text.matches("/streams/stable.json").count(), 1, "{text}");
    assert!(text.contains("after 2 attempts"), "{text}");
    // As `kindling` prints it (anyhow's `{:#}` walks `source()`): no cause twice.
    let shown = format!(
        "{:#}",
        anyhow::Error::from(e).context("pulling fedora-coreos stable")
    );
    assert_eq!(shown, format!("pulling fedora-coreos stable: {text}"));

    // `status` records it as the upstream error.
    let report = block_on(status(&data, &stable(), &base, false)).unwrap();
    let err = report.upstream_error.unwrap();
    assert!(err.contains(&refused), "{err}");
    assert_eq!(err.matches(&refused).count(), 1, "{err}");
}

#[test]
fn cli_errors_say_their_cause_once() {
    // An I/O error inside the pull: the path and the OS's words, once.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let e = run(
        FcosCommand::Rollback {
            stream: "stable".into(),
            arch: None,
            server_url: Some(SERVER.into()),
        },
        &file,
    )
    .unwrap_err();
    let shown = format!("{e:#}");
    let io = std::io::Error::from_raw_os_error(20).to_string(); // ENOTDIR
    assert!(shown.contains(&io), "{shown}");
    assert_eq!(shown.matches(&io).count(), 1, "{shown}");
}

#[test]
fn pull_log_has_plain_values_not_rust_debug_strings() {
    let fx = Fixture::start();
    let key = TestKey::generate("Fedora CoreOS test key <test@kindling.invalid>");
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    let keyring = key.write_keyring(&tmp.path().join("keys"));
    let rel = Release::new("43.20251101.3.0", 300_000);
    publish(&fx, &rel, &key);
    // First pull: no release before (`from` absent); second: a switch from one.
    let (code, first) = pull_in_a_child(&data, &fx.base_url(), &keyring);
    assert_eq!(code, 0, "{first}");
    let rel2 = Release::new("43.20251115.3.0", 300_000);
    publish(&fx, &rel2, &key);
    let (code, second) = pull_in_a_child(&data, &fx.base_url(), &keyring);
    assert_eq!(code, 0, "{second}");

    let switched = second
        .lines()
        .find(|l| l.contains("switched profile"))
        .unwrap_or_else(|| panic!("no switch line in:\n{second}"));
    assert!(
        switched.contains(&format!("from={} ", rel.release)),
        "{switched}"
    );
    assert!(
        switched.contains(&format!("to={} ", rel2.release)),
        "{switched}"
    );
    let first_switch = first
        .lines()
        .find(|l| l.contains("switched profile"))
        .unwrap_or_else(|| panic!("no switch line in:\n{first}"));
    assert!(!first_switch.contains("from="), "{first_switch}");
    for log in [&first, &second] {
        assert!(log.contains("upstream release"), "{log}");
        assert!(!log.contains("Some("), "{log}");
        assert!(!log.contains("None"), "{log}");
        assert!(!log.contains("\\\""), "{log}");
        assert!(!log.contains('"'), "{log}");
    }
}

fn stable() -> kindling_fcos::state::Track {
    kindling_fcos::state::Track::new("stable", "x86_64").unwrap()
}
