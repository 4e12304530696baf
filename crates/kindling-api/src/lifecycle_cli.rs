//! `kindling machines reinstall MAC` and `mark-installed MAC`, and the records behind
//! `kindling machines --discovered | --installed`: the lifecycle state, through a running
//! server's admin listener (`--server`: the API of [`crate::lifecycle`]) or straight in
//! `<state dir>/machines/` when no server runs there. [`crate::machines_cli`] prints the
//! lists, with the firmware the timelines saw.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use kindling_fetch::{AdminAuth, reqwest};
use kindling_model::machines::try_lock;
use kindling_model::{Change, MacAddr, MachineRecord, Machines};

fn machines_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("machines")
}

/// One request to the lifecycle API of the admin listener at `url`: its JSON answer.
fn ask(
    url: &str,
    auth: &AdminAuth,
    method: reqwest::Method,
    path: &str,
) -> Result<serde_json::Value> {
    let a = kindling_fetch::admin_request(url, auth, method, path, &[], None)?;
    if !a.ok() {
        bail!("{}", a.refusal(url));
    }
    serde_json::from_slice(&a.body).context("parsing the server's answer")
}

/// Every record in `dir`, the lock not taken (the caller holds it, or only reads); what
/// did not load is said on stderr.
fn open(dir: &Path) -> Result<Machines> {
    let (m, problems) = Machines::open(dir, usize::MAX, false)
        .with_context(|| format!("reading {}", dir.display()))?;
    for p in problems {
        eprintln!("kindling: {p}");
    }
    Ok(m)
}

/// `reinstall` / `mark-installed`. Exit codes: 0 done (or nothing to change), 2 bad MAC.
pub fn change(
    state_dir: &Path,
    server: Option<&str>,
    auth: &AdminAuth,
    mac_text: &str,
    change: Change,
) -> Result<ExitCode> {
    let mac = match MacAddr::parse(mac_text) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("kindling machines {}: {e}", change.segment());
            return Ok(ExitCode::from(2));
        }
    };
    let changed = match server {
        Some(url) => {
            let path = format!("/api/v1/lifecycle/{mac}/{}", change.segment());
            let v = ask(url, auth, reqwest::Method::POST, &path)?;
            v.get("changed").and_then(|c| c.as_bool()).unwrap_or(false)
        }
        None => {
            let dir = machines_dir(state_dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let Some(_held) =
                try_lock(&dir).with_context(|| format!("locking {}", dir.display()))?
            else {
                bail!(
                    "a running server keeps the machine state in {} (it would not see this change): use --server URL of its admin listener (and --token-file)",
                    dir.display()
                );
            };
            // The lock is ours: open without taking it again.
            change
                .apply(&open(&dir)?, mac)
                .with_context(|| format!("writing the state of {mac} in {}", dir.display()))?
        }
    };
    let what = match (change, changed) {
        (Change::Reinstall, true) => "re-armed: its next boot installs again",
        (Change::Reinstall, false) => "was not installed: nothing to re-arm",
        (Change::Installed, true) => "marked installed: its next boots go to its local disk",
        (Change::Installed, false) => "was already installed",
    };
    println!("{mac} {what}");
    Ok(ExitCode::SUCCESS)
}

/// The machines of `--discovered` (`discovered`) or `--installed`: through the admin
/// listener at `server` (its warnings on stderr), else from `state_dir` (none when it has
/// no machine state).
pub fn list(
    state_dir: &Path,
    server: Option<&str>,
    auth: &AdminAuth,
    discovered: bool,
) -> Result<Vec<MachineRecord>> {
    let records: Vec<MachineRecord> = match server {
        Some(url) => {
            let v = ask(url, auth, reqwest::Method::GET, "/api/v1/lifecycle")?;
            for key in ["unavailable", "read_only"] {
                if let Some(why) = v.get(key).and_then(|w| w.as_str()) {
                    eprintln!("kindling: the server's machine state is {key}: {why}");
                }
            }
            serde_json::from_value(v.get("machines").cloned().unwrap_or_default())
                .context("parsing the server's machine list")?
        }
        None => {
            let dir = machines_dir(state_dir);
            if dir.is_dir() {
                open(&dir)?.list()
            } else {
                Vec::new()
            }
        }
    };
    Ok(records
        .into_iter()
        .filter(|r| {
            if discovered {
                r.discovered.is_some()
            } else {
                r.installed.is_some()
            }
        })
        .collect())
}
