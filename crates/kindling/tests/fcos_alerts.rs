//! A Fedora CoreOS tracker that cannot reach its stream metadata (a closed
//! loopback port) is visible where an operator looks and alerts: the admin
//! API's `/api/v1/status`, `/metrics` (parsed), the dashboard as headless
//! Chromium renders it, and `kindling fcos status`, which exits non-zero. Each
//! names the cause ("connection refused"), not just "error sending request".
//!
//! Everything polls with a deadline (the tracker retries its request with
//! backoff before it records a failed check), so that the test holds on a busy
//! machine. Chromium (Debian's `chromium`, `scripts/install-deps`) is required:
//! without it the test fails.

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Scratch, Server, request};

/// Long enough for the tracker's retries (about half a minute with its default
/// policy) on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(180);

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    let port = l.local_addr().expect("local addr").port();
    drop(l);
    port
}

fn config(port: u16) -> String {
    format!(
        "[fcos]\n\
         streams = [\"stable\"]\n\
         base_url = \"http://127.0.0.1:{port}\"\n\
         insecure = true\n\
         server_url = \"http://127.0.0.1:8080\"\n\
         interval_secs = 2\n"
    )
}

fn refused(text: &str) -> bool {
    text.to_ascii_lowercase().contains("connection refused")
}

/// Calls `f` until it gives a value or the deadline passes (then panics with the
/// last thing `f` said and the server's log).
fn poll<T>(server: &Server, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => panic!(
                "{what}: not within {DEADLINE:?}; last: {last}\nserver log:\n{}",
                server.log_text()
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn get(addr: SocketAddr, target: &str) -> Result<String, String> {
    let r = request(addr, "GET", target, &[], b"")?;
    let body = String::from_utf8_lossy(&r.body).into_owned();
    if r.status != 200 {
        return Err(format!("GET {target}: HTTP {}: {body}", r.status));
    }
    Ok(body)
}

/// One sample of the text exposition format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format line by line: `# HELP`/`# TYPE` and blank
/// lines are skipped; every other line must be `name{label="value",...} number`
/// (labels optional, escapes `\\`, `\"`, `\n` decoded, an optional timestamp).
fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| bad("no value"))?;
        let name = &line[..name_end];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(bad("metric name"));
        }
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(body) => parse_labels(body).map_err(bad)?,
            None => (BTreeMap::new(), &line[name_end..]),
        };
        let mut fields = rest.split_whitespace();
        let value = fields
            .next()
            .ok_or_else(|| bad("no value"))?
            .parse::<f64>()
            .map_err(|_| bad("value is not a number"))?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| bad("timestamp"))?;
        }
        if fields.next().is_some() {
            return Err(bad("trailing text"));
        }
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(out)
}

/// The labels after a `{` up to the matching `}`, and what follows it.
fn parse_labels(body: &str) -> Result<(BTreeMap<String, String>, &str), &'static str> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, r) = rest.split_once('=').ok_or("label without '='")?;
        let quoted = r.strip_prefix('"').ok_or("label value not quoted")?;
        let mut chars = quoted.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err("bad escape in a label value"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value"),
            }
        };
        labels.insert(key.to_string(), value);
        let after = &quoted[end + 1..];
        rest = match after.chars().next() {
            Some(',') => &after[1..],
            Some('}') => after,
            _ => return Err("label set"),
        };
    }
}

/// The value of the series `name` whose labels include `labels`, if there is one.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "chromium is not installed: this test renders the dashboard in headless Chromium \
                 (apt-get install -y chromium, or scripts/install-deps)"
            )
        })
}

/// The DOM of `url` after Chromium loaded it (`--dump-dom`), killed after a minute.
fn dump_dom(chrome: &Path, profile: &Path, url: &str) -> Result<String, String> {
    let mut child = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", chrome.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("chromium did not finish within 60 s".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || dom.is_empty() {
        return Err(format!(
            "chromium exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(dom)
}

#[test]
fn failing_tracker_shows_in_api_metrics_dashboard_and_cli() {
    let chrome = chromium();
    let scratch = Scratch::new("fcos-alerts");
    let data = scratch.root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let port = closed_port();
    let server = Server::start_with(&data, &scratch.root, &config(port), &[], |_| {});

    // (a) /api/v1/status on the admin listener.
    let stable = poll(&server, "a failed check in /api/v1/status", || {
        let body = get(server.admin, "/api/v1/status")?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let st = v["fcos"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["stream"] == "stable"))
            .cloned()
            .ok_or_else(|| format!("no stable stream in {body}"))?;
        let err = st["last_error"].as_str().unwrap_or_default();
        if refused(err) && st["consecutive_failures"].as_u64() >= Some(1) {
            Ok(st)
        } else {
            Err(body)
        }
    });
    assert_eq!(stable["arch"], "x86_64", "{stable}");
    assert!(stable["failures"].as_u64() >= Some(1), "{stable}");
    assert!(stable["last_check"].as_u64().is_some(), "{stable}");
    assert!(stable["last_success"].is_null(), "{stable}");
    let error = stable["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains(&format!("http://127.0.0.1:{port}/streams/stable.json")),
        "{error}"
    );

    // (b) /metrics, parsed.
    let labels = [("stream", "stable"), ("arch", "x86_64")];
    poll(&server, "failure series in /metrics", || {
        let text = get(server.admin, "/metrics")?;
        let samples = parse_exposition(&text)?;
        let total = value(&samples, "kindling_fcos_check_failures_total", &labels);
        let row = value(&samples, "kindling_fcos_consecutive_failures", &labels);
        if total >= Some(1.0) && row >= Some(1.0) {
            Ok(())
        } else {
            Err(format!("failures {total:?}, consecutive {row:?}"))
        }
    });
    let text = get(server.admin, "/metrics").unwrap();
    let samples = parse_exposition(&text).unwrap();
    assert!(
        value(
            &samples,
            "kindling_fcos_last_check_timestamp_seconds",
            &labels
        ) > Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "kindling_fcos_last_success_timestamp_seconds",
            &labels
        ),
        Some(0.0),
        "no success yet: 0"
    );
    for name in [
        "kindling_fcos_check_failures_total",
        "kindling_fcos_consecutive_failures",
        "kindling_fcos_last_check_timestamp_seconds",
        "kindling_fcos_last_success_timestamp_seconds",
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
    }
    // No release known (never pulled, never checked successfully): no release series.
    for name in [
        "kindling_fcos_upstream_release_info",
        "kindling_fcos_release_info",
    ] {
        assert!(!text.contains(&format!("{name}{{")), "{name}");
    }
    assert!(text.contains("# TYPE kindling_fcos_check_failures_total counter\n"));

    // (c) the dashboard, as headless Chromium renders it.
    let profile = scratch.root.join("chromium");
    std::fs::create_dir_all(&profile).unwrap();
    let url = format!("http://{}/ui/", server.admin);
    let dom = poll(&server, "the failing check on the dashboard", || {
        let dom = dump_dom(&chrome, &profile, &url)?;
        if dom.contains("id=\"fcos-alert\"") && refused(&dom) {
            Ok(dom)
        } else {
            Err(dom)
        }
    });
    let alert = dom
        .split("id=\"fcos-alert\"")
        .nth(1)
        .and_then(|a| a.split("</section>").next())
        .unwrap_or_default();
    assert!(alert.contains("stable (x86_64)"), "{alert}");
    assert!(alert.contains("consecutive failed check"), "{alert}");
    assert!(alert.contains("last success never"), "{alert}");
    assert!(refused(alert), "{alert}");

    // (d) `kindling fcos status` against the same closed port.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kindling"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KINDLING_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .current_dir(&scratch.root)
        .arg("--config")
        .arg(scratch.root.join("kindling.toml"))
        .arg("--data-dir")
        .arg(&data)
        .args(["fcos", "status", "--stream", "stable", "--base-url"])
        .arg(format!("http://127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .output()
        .expect("run kindling fcos status");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(refused(&all), "{all}");
    assert!(!all.contains("up to date"), "{all}");
    assert!(
        !out.status.success(),
        "kindling fcos status exited with {} although the check failed:\n{all}",
        out.status
    );
}
