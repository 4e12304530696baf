//! The lifecycle state in text: the tables of `kindling machines --discovered |
//! --installed` (the records as `kindling_api::lifecycle_cli::list` read them, the
//! discovered with the firmware their DHCP requests showed, which the caller reads from the
//! timelines) and the lifecycle lines of `kindling machines show` and the dashboard.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use kindling_model::{MacAddr, MachineRecord};

use crate::event::format_ts;

/// A machine's record read straight from the state directory (`None` when it has none).
pub fn read_record(state_dir: &Path, mac: &str) -> Option<MachineRecord> {
    kindling_model::machines::read_one(&state_dir.join("machines"), MacAddr::parse(mac).ok()?)
}

/// Prints the machines of `--discovered` (`discovered`) or `--installed`: a table, or
/// JSON (`json`). `firmware`: by MAC, what the machine's DHCP requests showed.
pub fn print(
    records: &[MachineRecord],
    discovered: bool,
    json: bool,
    firmware: &HashMap<String, String>,
) -> Result<ExitCode> {
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
        out.write_all(format_discovered(records, firmware).as_bytes())?;
    } else {
        out.write_all(format_installed(records).as_bytes())?;
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

/// `2026-11-25 19:40:01` (UTC).
pub(crate) fn when(ms: u64) -> String {
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
