//! `kindling machines`, `kindling machines show MAC` and the tables of `--discovered |
//! --installed`.
//!
//! Replays the journal in the state directory into a timeline store of its own (works
//! without a running server), or asks running servers' APIs when `--server URL` is given
//! (several: their timelines merged).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use kindling_fetch::{AdminAnswer, reqwest};
use kindling_journal::replay_journal;
use kindling_model::{Mac, MacAddr, MachineRecord};
use kindling_timeline::event::{format_time, format_ts, human_bytes};
use kindling_timeline::store::{Limits, MachineDetail, MachineSummary, Store};
use kindling_timeline::text::{dash, describe, lease_text, lifecycle_state, when};

/// Arguments of `kindling machines`.
#[derive(Debug, Clone, clap::Args)]
pub struct MachinesArgs {
    #[command(subcommand)]
    pub command: Option<MachinesCommand>,
    /// Print JSON (the shape of /api/v1/machines and /api/v1/machines/{mac}).
    #[arg(long, global = true)]
    pub json: bool,
    /// List the machines that booted with no group selecting them (MAC, IP, what they
    /// said), from the lifecycle state.
    #[arg(long, conflicts_with = "installed")]
    pub discovered: bool,
    /// List the machines marked installed (their next boots go to their disks).
    #[arg(long)]
    pub installed: bool,
    /// With --server: how to prove itself to the admin listener.
    #[command(flatten)]
    pub auth: kindling_fetch::AdminAuth,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum MachinesCommand {
    /// List machines: MAC, IP, architecture, firmware, group, profile, last stage, last seen, last error (the default).
    List,
    /// Print the timeline of a machine's last boots.
    Show {
        /// MAC address in any common form (52:54:00:12:34:56, 52-54-00-12-34-56, 5254.0012.3456).
        mac: String,
        /// Only the last N boots (0 = every boot kept).
        #[arg(long, default_value_t = 0)]
        boots: usize,
    },
    /// Re-arm an installed machine: its next boot installs again (its profile's boot,
    /// not the local disk).
    Reinstall {
        /// MAC address in any common form.
        mac: String,
    },
    /// Mark a machine installed by hand: its next boots go to its local disk (when its
    /// group or profile has install_once).
    MarkInstalled {
        /// MAC address in any common form.
        mac: String,
    },
}

/// GETs `path` of the admin listener at `base` (an `http://host:port` URL, or just
/// `host:port`).
fn get(base: &str, auth: &kindling_fetch::AdminAuth, path: &str) -> Result<AdminAnswer> {
    Ok(kindling_fetch::admin_request(
        base,
        auth,
        reqwest::Method::GET,
        path,
        &[],
        None,
    )?)
}

/// `/api/v1/machines` of one server.
fn fetch_list(url: &str, auth: &kindling_fetch::AdminAuth) -> Result<Vec<MachineSummary>> {
    let a = get(url, auth, "/api/v1/machines")?;
    if a.status != 200 {
        bail!("{}", a.refusal(&format!("{url}/api/v1/machines")));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&a.body).context("parsing the server's answer")?;
    serde_json::from_value::<Vec<MachineSummary>>(v.get("machines").cloned().unwrap_or_default())
        .context("parsing the server's machine list")
}

/// `/api/v1/machines/{mac}` of one server (`None`: it has no events of that machine).
fn fetch_detail(
    url: &str,
    auth: &kindling_fetch::AdminAuth,
    mac: &str,
) -> Result<Option<MachineDetail>> {
    let a = get(url, auth, &format!("/api/v1/machines/{mac}"))?;
    match a.status {
        200 => Ok(Some(
            serde_json::from_slice::<MachineDetail>(&a.body)
                .context("parsing the server's answer")?,
        )),
        404 if a.body.trim_ascii_start().starts_with(b"{") => Ok(None),
        _ => bail!("{}", a.refusal(url)),
    }
}

/// The machines of several servers of a fleet (timelines are per server): each machine's
/// row from the server that saw it last, its boots counted over all.
fn merge_lists(lists: Vec<Vec<MachineSummary>>) -> Vec<MachineSummary> {
    let mut by_mac: std::collections::BTreeMap<String, MachineSummary> = Default::default();
    for m in lists.into_iter().flatten() {
        match by_mac.get_mut(&m.mac) {
            Some(seen) => {
                let boots = seen.boots + m.boots;
                if m.last_seen > seen.last_seen {
                    *seen = m;
                }
                seen.boots = boots;
            }
            None => {
                by_mac.insert(m.mac.clone(), m);
            }
        }
    }
    let mut out: Vec<_> = by_mac.into_values().collect();
    out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.mac.cmp(&b.mac)));
    out
}

/// One machine's timeline over several servers: their boots in time order, the summary of
/// the server that saw it last.
fn merge_details(details: Vec<MachineDetail>) -> Option<MachineDetail> {
    let mut it = details.into_iter();
    let mut d = it.next()?;
    for other in it {
        d.first_seen = d.first_seen.min(other.first_seen);
        d.timeline.extend(other.timeline);
        if other.summary.last_seen > d.summary.last_seen {
            d.summary = other.summary;
        }
        d.lifecycle_record = d.lifecycle_record.or(other.lifecycle_record);
    }
    d.timeline.sort_by_key(|b| b.started);
    d.summary.boots = d.timeline.len();
    Some(d)
}

/// Prints `kindling machines --discovered | --installed`: `records` (as
/// `kindling_api::lifecycle_cli::list` read them) with the firmware the timelines saw.
pub fn print_lifecycle(
    args: &MachinesArgs,
    state_dir: &Path,
    server: Option<&str>,
    records: &[MachineRecord],
) -> Result<ExitCode> {
    let firmware = if args.discovered {
        firmware_by_mac(state_dir, server, &args.auth)
    } else {
        Default::default()
    };
    print_records(records, args.discovered, args.json, &firmware)
}

/// Runs the views of `kindling machines` (the list, `show`); the binary hands the
/// lifecycle commands (`reinstall`, `mark-installed`, `--discovered`, `--installed`) to
/// `kindling_api::lifecycle_cli` and [`print_lifecycle`]. `servers`: the admin listeners' base
/// URLs, such as `http://127.0.0.1:8082` (several: a fleet, whose timelines are merged);
/// none: the journal in `state_dir`.
/// Exit codes: 0 ok, 1 no such machine, 2 bad MAC.
pub fn run(args: &MachinesArgs, state_dir: &Path, servers: &[String]) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let auth = &args.auth;
    match &args.command {
        Some(MachinesCommand::Show { mac, boots }) => {
            let mac = match Mac::parse(mac) {
                Ok(m) => m.to_string(),
                Err(e) => {
                    eprintln!("kindling machines show: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let detail = match servers {
                [_, ..] => {
                    let mut found = Vec::new();
                    for url in servers {
                        found.extend(fetch_detail(url, auth, &mac)?);
                    }
                    merge_details(found)
                }
                [] => load(state_dir)?.detail(&mac).map(|mut d| {
                    d.lifecycle_record = read_record(state_dir, &mac);
                    d.summary.lifecycle = lifecycle_state(d.lifecycle_record.as_ref());
                    d
                }),
            };
            let Some(mut d) = detail else {
                eprintln!(
                    "kindling machines show: no boot events recorded for {mac}{}",
                    match servers {
                        [] => format!(" (journal in {})", state_dir.display()),
                        s => format!(" (asked {})", s.join(", ")),
                    }
                );
                return Ok(ExitCode::from(1));
            };
            if *boots > 0 && d.timeline.len() > *boots {
                let cut = d.timeline.len() - boots;
                d.timeline.drain(..cut);
            }
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&d)?)?;
            } else {
                out.write_all(format_detail(&d).as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        // `list`, or no command.
        _ => {
            let list = match servers {
                [] => load(state_dir)?.summaries(),
                [one] => fetch_list(one, auth)?,
                many => merge_lists(
                    many.iter()
                        .map(|u| fetch_list(u, auth))
                        .collect::<Result<_>>()?,
                ),
            };
            if args.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "machines": list }))?
                )?;
            } else {
                out.write_all(format_list(&list).as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The firmware each machine's DHCP requests showed (from the timelines), for the list of
/// discovered machines; empty when the timelines cannot be read (the list goes on).
fn firmware_by_mac(
    state_dir: &Path,
    server: Option<&str>,
    auth: &kindling_fetch::AdminAuth,
) -> std::collections::HashMap<String, String> {
    let list = match server {
        Some(url) => fetch_list(url, auth),
        None => load(state_dir).map(|s| s.summaries()),
    };
    list.unwrap_or_default()
        .into_iter()
        .filter_map(|m| Some((m.mac, m.firmware?)))
        .collect()
}

/// Rebuilds the store from the journal in `state_dir`.
pub fn load(state_dir: &Path) -> Result<Store> {
    let mut store = Store::new(Limits::default());
    let rb = replay_journal(state_dir, 1, |ev| store.replay(ev))
        .with_context(|| format!("reading the journal in {}", state_dir.display()))?;
    if rb.torn_lines + rb.bad_lines > 0 {
        eprintln!(
            "kindling: skipped {} damaged journal line(s) in {}",
            rb.torn_lines + rb.bad_lines,
            state_dir.display()
        );
    }
    Ok(store)
}

fn or_dash(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

/// The table of `kindling machines`.
pub fn format_list(list: &[MachineSummary]) -> String {
    if list.is_empty() {
        return "no machines recorded yet\n".into();
    }
    let header = [
        "MAC",
        "IP",
        "ARCH",
        "FIRMWARE",
        "GROUP",
        "PROFILE",
        "STAGE",
        "LAST SEEN (UTC)",
        "LAST ERROR",
    ];
    let rows: Vec<[String; 9]> = list
        .iter()
        .map(|m| {
            [
                m.mac.clone(),
                or_dash(&m.ip).into(),
                or_dash(&m.arch).into(),
                or_dash(&m.firmware).into(),
                or_dash(&m.group).into(),
                or_dash(&m.profile).into(),
                m.last_stage.map(|s| s.label()).unwrap_or("-").into(),
                when(m.last_seen),
                m.last_error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    table(&header, &rows)
}

/// The timeline of `kindling machines show MAC`.
pub fn format_detail(d: &MachineDetail) -> String {
    let m = &d.summary;
    let mut s = String::new();
    let _ = writeln!(s, "machine {}", m.mac);
    let _ = writeln!(
        s,
        "  ip {}  arch {}  firmware {}  group {}  profile {}",
        or_dash(&m.ip),
        or_dash(&m.arch),
        or_dash(&m.firmware),
        or_dash(&m.group),
        or_dash(&m.profile)
    );
    if let Some(r) = &d.lifecycle_record {
        s.push_str(&describe(r));
    }
    if let Some(l) = &m.lease {
        let host = |h: &str| kindling_guard::Esc(h.as_bytes()).to_string();
        let _ = writeln!(s, "  DHCP lease {}", lease_text(l, "  ", host));
    }
    let _ = writeln!(
        s,
        "  last stage {}  last seen {}{}",
        m.last_stage.map(|s| s.label()).unwrap_or("-"),
        m.last_seen_at,
        m.last_error
            .as_ref()
            .map(|e| format!("\n  last error: {}", e.message))
            .unwrap_or_default()
    );
    let total = d.timeline.len();
    for (i, b) in d.timeline.iter().enumerate() {
        let _ = writeln!(
            s,
            "\nboot {} of {total}, started {}",
            i + 1,
            format_ts(b.started)
        );
        if b.dropped_events > 0 {
            let _ = writeln!(s, "  ({} earlier events dropped)", b.dropped_events);
        }
        for e in &b.events {
            let mut extra = Vec::new();
            if let Some(st) = e.status() {
                extra.push(st.to_string());
            }
            if let Some(by) = e.bytes().filter(|b| *b > 0) {
                extra.push(human_bytes(by));
            }
            if let Some(ms) = e.duration_ms() {
                extra.push(format!("{ms:.1} ms"));
            }
            if let Some(f) = e.dhcp().and_then(|d| d.firmware) {
                extra.push(f.to_string());
            }
            if let Some(r) = &e.reason {
                extra.push(format!("reason: {r}"));
            }
            if e.repeats > 0 {
                extra.push(format!(
                    "{} times, last at {}",
                    e.repeats + 1,
                    format_time(e.last_ts)
                ));
            }
            let _ = writeln!(
                s,
                "  {}  {:>9}  {:<4} {:<8} {}{}{}",
                format_time(e.ts),
                format!("+{:.3}s", e.ts.saturating_sub(b.started) as f64 / 1000.0),
                e.source().label(),
                e.stage.map(|x| x.label()).unwrap_or("-"),
                if e.ok { "" } else { "FAILED " },
                e.what(),
                if extra.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", extra.join(", "))
                }
            );
        }
        let _ = writeln!(
            s,
            "  => reached {}{}",
            b.last_stage.map(|x| x.label()).unwrap_or("nothing"),
            b.error
                .as_ref()
                .map(|e| format!(
                    "; stopped{}: {}",
                    e.stage.map(|x| format!(" at {x}")).unwrap_or_default(),
                    e.message
                ))
                .unwrap_or_default()
        );
    }
    s
}

/// A machine's record read straight from the state directory (`None` when it has none).
fn read_record(state_dir: &Path, mac: &str) -> Option<MachineRecord> {
    kindling_model::machines::read_one(&state_dir.join("machines"), MacAddr::parse(mac).ok()?)
}

/// Prints the machines of `--discovered` (`discovered`) or `--installed`: a table, or
/// JSON (`json`). `firmware`: by MAC, what the machine's DHCP requests showed.
fn print_records(
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
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
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
