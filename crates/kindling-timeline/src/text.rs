//! What the dashboard and `kindling machines` both print of a machine: its lifecycle
//! (installed, discovered) and its DHCP lease.

use std::fmt::Write as _;

use kindling_model::MachineRecord;

use crate::event::format_ts;
use crate::store::LeaseSummary;

/// A machine's lifecycle in one word, for lists: `installed`, `discovered` or nothing.
pub fn lifecycle_state(r: Option<&MachineRecord>) -> Option<String> {
    let r = r?;
    if r.installed.is_some() {
        Some("installed".into())
    } else if r.discovered.is_some() {
        Some("discovered".into())
    } else {
        None
    }
}

/// `2026-11-25 19:40:01` (UTC).
pub fn when(ms: u64) -> String {
    let t = format_ts(ms);
    t.get(..19).unwrap_or(&t).replace('T', " ")
}

/// A machine-supplied text escaped for the terminal, `-` when empty.
pub fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        kindling_guard::Esc::str(s).to_string()
    }
}

/// A lease for people: `10.0.0.5 bound until 2026-12-03T17:00:42Z`, then `{sep}host name
/// {host}` when it has one (`show`: how the host name is written).
pub fn lease_text(l: &LeaseSummary, sep: &str, show: impl Fn(&str) -> String) -> String {
    let host = l.hostname.as_deref().map(show);
    let host = host.map(|h| format!("{sep}host name {h}"));
    format!(
        "{} {} until {}{}",
        l.ip,
        l.state,
        l.expires_at,
        host.unwrap_or_default()
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
