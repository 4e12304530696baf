//! `kindling machines --discovered | --installed` (the discovered with the firmware their
//! DHCP requests showed, which the caller reads from the timelines), `kindling machines reinstall MAC` and
//! `mark-installed MAC`: the lifecycle state, through a running server's admin listener
//! (`--server`) or straight in `<state dir>/machines/` when no server runs there.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use kindling_fetch::{AdminAnswer, reqwest};
use kindling_model::machines::try_lock;
use kindling_model::{Change, MacAddr, MachineRecord, Machines};

use crate::event::format_ts;

fn machines_dir(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("machines")
}

/// A machine's record read straight from the state directory (`None` when it has none).
pub fn read_record(state_dir: &Path, mac: &str) -> Option<MachineRecord> {
    kindling_model::machines::read_one(&machines_dir(state_dir), MacAddr::parse(mac).ok()?)
}

fn answer_error(server: &str, a: &AdminAnswer) -> anyhow::Error {
    let hint = match a.status {
        401 => " (--token-file: the admin token)",
        403 => " (the server's admin listener needs a token_file or TLS for this API)",
        404 => " (is --server the admin listener, and is [machines] track on?)",
        _ => "",
    };
    anyhow::anyhow!(
        "{server} answered {}: {}{hint}",
        a.status,
        a.error_message()
    )
}

/// `reinstall` / `mark-installed`. Exit codes: 0 done (or nothing to change), 2 bad MAC.
pub fn change(
    state_dir: &Path,
    server: Option<&str>,
    auth: &kindling_fetch::AdminAuth,
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
            let a = kindling_fetch::admin_request(
                url,
                auth,
                reqwest::Method::POST,
                &format!("/api/v1/lifecycle/{mac}/{}", change.segment()),
                &[],
                None,
            )?;
            if !a.ok() {
                return Err(answer_error(url, &a));
            }
            let v: serde_json::Value =
                serde_json::from_slice(&a.body).context("parsing the server's answer")?;
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
            let (m, problems) = Machines::open(&dir, usize::MAX, false)
                .with_context(|| format!("reading {}", dir.display()))?;
            for p in problems {
                eprintln!("kindling: {p}");
            }
            change
                .apply(&m, mac)
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

/// `--discovered` / `--installed`.
pub fn list(
    state_dir: &Path,
    server: Option<&str>,
    auth: &kindling_fetch::AdminAuth,
    discovered: bool,
    json: bool,
    firmware: &HashMap<String, String>,
) -> Result<ExitCode> {
    let records: Vec<MachineRecord> = match server {
        Some(url) => {
            let a = kindling_fetch::admin_request(
                url,
                auth,
                reqwest::Method::GET,
                "/api/v1/lifecycle",
                &[],
                None,
            )?;
            if !a.ok() {
                return Err(answer_error(url, &a));
            }
            let v: serde_json::Value =
                serde_json::from_slice(&a.body).context("parsing the server's answer")?;
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
                let (m, problems) = Machines::open(&dir, usize::MAX, false)
                    .with_context(|| format!("reading {}", dir.display()))?;
                for p in problems {
                    eprintln!("kindling: {p}");
                }
                m.list()
            } else {
                Vec::new()
            }
        }
    };
    let records: Vec<MachineRecord> = records
        .into_iter()
        .filter(|r| {
            if discovered {
                r.discovered.is_some()
            } else {
                r.installed.is_some()
            }
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        let list: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let mut v = serde_json::json!(r);
                if let Some(f) = firmware.get(&r.mac) {
                    v["firmware"] = f.as_str().into();
                }
                v
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "machines": list }))?
        )?;
    } else if discovered {
        out.write_all(format_discovered(&records, firmware).as_bytes())?;
    } else {
        out.write_all(format_installed(&records).as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A text table: columns padded to their widest cell and two spaces, the last one not.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                s.push_str(c);
            } else {
                let _ = write!(s, "{c:<width$}  ", width = w[i]);
            }
        }
        s.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    s
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        kindling_guard::Esc::str(s).to_string()
    }
}

fn when(ms: u64) -> String {
    let t = format_ts(ms);
    t.get(..19).unwrap_or(&t).replace('T', " ")
}

/// The table of `kindling machines --discovered`.
/// `firmware`: by MAC, what the machine's DHCP requests showed (a `-` when unknown).
pub fn format_discovered(list: &[MachineRecord], firmware: &HashMap<String, String>) -> String {
    if list.is_empty() {
        return "no discovered machines\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .filter_map(|r| {
            let d = r.discovered.as_ref()?;
            Some(vec![
                r.mac.clone(),
                d.ip.map_or("-".into(), |ip| ip.to_string()),
                dash(&d.arch),
                firmware.get(&r.mac).map_or("-".into(), |f| dash(f)),
                dash(&d.uuid),
                dash(&d.serial),
                when(d.first_seen),
                when(d.last_seen),
                dash(&d.hostname),
            ])
        })
        .collect();
    table(
        &[
            "MAC",
            "IP",
            "ARCH",
            "FIRMWARE",
            "UUID",
            "SERIAL",
            "FIRST SEEN (UTC)",
            "LAST SEEN (UTC)",
            "HOSTNAME",
        ],
        &rows,
    )
}

/// The table of `kindling machines --installed`.
pub fn format_installed(list: &[MachineRecord]) -> String {
    if list.is_empty() {
        return "no machines marked installed\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .filter_map(|r| {
            let i = r.installed.as_ref()?;
            Some(vec![
                r.mac.clone(),
                when(i.at),
                i.via.as_str().into(),
                dash(&i.group),
                dash(&i.profile),
            ])
        })
        .collect();
    table(
        &["MAC", "INSTALLED (UTC)", "VIA", "GROUP", "PROFILE"],
        &rows,
    )
}

/// The lifecycle lines of `kindling machines show`.
pub fn describe(r: &MachineRecord) -> String {
    let mut s = String::new();
    if let Some(i) = &r.installed {
        let _ = writeln!(
            s,
            "  installed {} via {} (group {}, profile {}): next boots go to the local disk until `kindling machines reinstall {}`",
            when(i.at),
            i.via.as_str(),
            dash(&i.group),
            dash(&i.profile),
            r.mac
        );
    }
    if let Some(d) = &r.discovered {
        let _ = writeln!(
            s,
            "  discovered {} (no group selects it), last seen {}",
            when(d.first_seen),
            when(d.last_seen)
        );
    }
    s
}
