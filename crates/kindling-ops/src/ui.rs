//! The dashboard: server-rendered HTML (readable without JavaScript), a small script for
//! live updates, one stylesheet. Everything is embedded in the binary.

use std::fmt::Write as _;

use crate::ops::Ops;
use kindling_dhcp::policy::describe_arch;
use kindling_timeline::event::{Event, Stage, format_ts, human_bytes};
use kindling_timeline::store::{Boot, MachineDetail, MachineSummary};
use kindling_timeline::text::{describe, lease_text};
// HTML escaping for text and attribute values.
use kindling_http::body::html_escape as esc;
use kindling_model::FcosTrack;

pub const APP_JS: &str = include_str!("../ui/app.js");
pub const STYLE_CSS: &str = include_str!("../ui/style.css");

fn opt(s: &Option<String>) -> String {
    s.as_deref().map(esc).unwrap_or_else(|| "–".into())
}

fn head(title: &str, page: &str, mac: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{}</title>\n<link rel=\"icon\" href=\"data:,\">\n<link rel=\"stylesheet\" href=\"/ui/style.css\">\n\
<script src=\"/ui/app.js\" defer></script>\n</head>\n\
<body data-page=\"{page}\" data-mac=\"{}\">\n<header>\n<h1><a href=\"/ui/\">Kindling</a></h1>\n\
<nav><a href=\"/ui/\">Machines</a> <a href=\"/metrics\">Metrics</a> <a href=\"/api/v1/machines\">API</a></nav>\n\
<span id=\"live\" class=\"live off\">static page</span>\n</header>\n<main>\n",
        esc(title),
        esc(mac)
    )
}

const FOOT: &str = "</main>\n</body>\n</html>\n";

fn stages(last: Option<Stage>, failed: Option<Stage>) -> String {
    let mut s = String::from("<ol class=\"stages\">");
    for st in Stage::ALL {
        let class = if failed == Some(st) {
            "failed"
        } else if last.is_some_and(|l| st <= l) {
            "reached"
        } else {
            "todo"
        };
        let _ = write!(s, "<li class=\"{class}\">{}</li>", st.label());
    }
    s.push_str("</ol>");
    s
}

/// One row of `/ui/`'s machine table (also served alone, for live updates).
pub fn machine_row(m: &MachineSummary) -> String {
    let failed = m.last_error.as_ref().and_then(|e| e.stage);
    let err = m
        .last_error
        .as_ref()
        .map(|e| esc(&e.message))
        .unwrap_or_default();
    let mut profile = opt(&m.profile);
    if let Some(l) = m.lifecycle.as_deref() {
        let _ = write!(profile, " <span class=\"lifecycle\">{}</span>", esc(l));
    }
    format!(
        "<tr id=\"m-{}\" data-mac=\"{mac}\"><td class=\"mac\"><a href=\"/ui/machines/{mac}\">{mac}</a></td>\
<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
<td class=\"stage\">{}</td><td class=\"progress\">{}</td>\
<td><time datetime=\"{seen}\">{seen}</time></td><td class=\"err\">{err}</td></tr>\n",
        m.mac.replace(':', ""),
        opt(&m.ip),
        opt(&m.arch),
        opt(&m.firmware),
        opt(&m.group),
        profile,
        m.last_stage.map(|s| s.label()).unwrap_or("–"),
        stages(m.last_stage, failed),
        mac = esc(&m.mac),
        seen = esc(&m.last_seen_at),
    )
}

/// `/ui/`.
pub fn machines_page(ops: &Ops) -> String {
    let machines = ops.machines();
    let fcos = ops.metrics.fcos_streams();
    let mut s = head("Kindling · machines", "machines", "");
    s.push_str(&fcos_alert(&fcos));
    s.push_str(
        "<section>\n<h2>Machines</h2>\n<table id=\"machines\">\n<thead><tr><th>MAC</th><th>IP</th>\
<th>Arch</th><th>Firmware</th><th>Group</th><th>Profile</th><th>Last stage</th>\
<th>Last boot</th><th>Last seen (UTC)</th><th>Last error</th></tr></thead>\n<tbody>\n",
    );
    for m in &machines {
        s.push_str(&machine_row(m));
    }
    s.push_str("</tbody>\n</table>\n");
    let _ = writeln!(
        s,
        "<p id=\"empty\"{}>No machine has asked to boot yet.</p>\n</section>",
        if machines.is_empty() { "" } else { " hidden" }
    );
    // Configuration.
    s.push_str(
        "<div class=\"cards\">\n<section class=\"card\" id=\"config\">\n<h2>Configuration</h2>\n",
    );
    let problems = ops.metrics.config_problems();
    if problems.is_empty() {
        s.push_str("<p class=\"ok\">The last reload found no problems.</p>\n");
    } else {
        let _ = writeln!(
            s,
            "<p class=\"bad\">{} problem(s) in the last reload:</p>\n<ul class=\"problems\">",
            problems.len()
        );
        for p in &problems {
            let _ = writeln!(s, "<li>{}</li>", esc(p));
        }
        s.push_str("</ul>\n");
    }
    s.push_str(
        "</section>\n<section class=\"card\" id=\"assets\">\n<h2>Assets and cache</h2>\n<dl>\n",
    );
    let _ = writeln!(
        s,
        "<dt>Cache</dt><dd>{}</dd>",
        ops.metrics
            .cache_bytes()
            .map(human_bytes)
            .unwrap_or_else(|| "not in use".into())
    );
    for (kind, b) in ops.metrics.asset_bytes_by_kind() {
        let _ = writeln!(
            s,
            "<dt>{} served</dt><dd>{}</dd>",
            esc(&kind),
            human_bytes(b)
        );
    }
    for a in ops.metrics.asset_status() {
        let _ = writeln!(
            s,
            "<dt>{}</dt><dd class=\"{}\">{}</dd>",
            esc(&a.name),
            if a.ok { "ok" } else { "bad" },
            esc(&a.detail)
        );
    }
    let j = ops.metrics.journal_status();
    if j.enabled && !j.writable {
        let _ = writeln!(
            s,
            "<dt>Journal</dt><dd class=\"bad\">not writable, timelines in memory only ({} events not journaled): {}</dd>",
            j.dropped,
            esc(j.error.as_deref().unwrap_or("unknown error"))
        );
    }
    s.push_str("</dl>\n</section>\n");
    s.push_str(&fcos_card(&fcos));
    s.push_str("</div>\n");
    s.push_str(FOOT);
    s
}

/// A Unix time in seconds as `2026-12-03T17:00:42Z`; "never" for none.
fn unix_time(t: Option<u64>) -> String {
    match t {
        Some(t) => {
            let ts = format_ts(t.saturating_mul(1000));
            let ts = ts
                .strip_suffix(".000Z")
                .map(|t| format!("{t}Z"))
                .unwrap_or(ts);
            format!("<time datetime=\"{ts}\">{ts}</time>")
        }
        None => "never".into(),
    }
}

/// `stable (x86_64)`, escaped.
fn stream_name(st: &FcosTrack) -> String {
    if st.arch.is_empty() {
        esc(&st.stream)
    } else {
        format!("{} ({})", esc(&st.stream), esc(&st.arch))
    }
}

/// The banner at the top of `/ui/` while a tracked Fedora CoreOS stream's last check
/// failed: its error, consecutive failures and last success (nothing when all are fine).
fn fcos_alert(streams: &[FcosTrack]) -> String {
    let failing: Vec<&FcosTrack> = streams.iter().filter(|st| st.failing()).collect();
    if failing.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<section class=\"alert\" id=\"fcos-alert\">\n<h2>Fedora CoreOS tracking is failing</h2>\n<ul>\n",
    );
    for st in failing {
        let _ = writeln!(
            s,
            "<li data-stream=\"{}\" data-arch=\"{}\"><b>{}</b>: {} consecutive failed check(s) ({} since start), last success {}, last check {}, profile left on {}:<br>\
<code class=\"err\">{}</code></li>",
            esc(&st.stream),
            esc(&st.arch),
            stream_name(st),
            st.consecutive_failures,
            st.failures,
            unix_time(st.last_success),
            unix_time(st.last_check),
            opt(&st.current),
            esc(st.last_error.as_deref().unwrap_or_default()),
        );
    }
    s.push_str("</ul>\n</section>\n");
    s
}

/// The dashboard's "Fedora CoreOS" box: each tracked stream's current and upstream
/// release and its last checks (nothing when no stream is tracked).
fn fcos_card(streams: &[FcosTrack]) -> String {
    if streams.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<section class=\"card\" id=\"fcos\">\n<h2>Fedora CoreOS</h2>\n<table>\n<thead><tr><th>Stream</th>\
<th>Current</th><th>Upstream</th><th>Last check</th><th>Last success</th><th>Failures</th></tr></thead>\n<tbody>\n",
    );
    for st in streams {
        let _ = writeln!(
            s,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
<td class=\"num\">{} in a row, {} in all</td></tr>",
            if st.failing() { "fail" } else { "ok" },
            stream_name(st),
            opt(&st.current),
            opt(&st.upstream),
            unix_time(st.last_check),
            unix_time(st.last_success),
            st.consecutive_failures,
            st.failures,
        );
        if let Some(e) = &st.last_error {
            let _ = writeln!(
                s,
                "<tr class=\"fail\"><td class=\"err\" colspan=\"6\">last check failed: {}</td></tr>",
                esc(e)
            );
        }
    }
    s.push_str("</tbody>\n</table>\n</section>\n");
    s
}

fn event_row(e: &Event, start: u64) -> String {
    let mut detail = Vec::new();
    if let Some(r) = &e.reason {
        detail.push(esc(&r.to_string()));
    }
    if let Some(h) = e.http() {
        if let Some(g) = &h.group {
            detail.push(format!("group {}", esc(g)));
        }
        if let Some(p) = &h.profile {
            detail.push(format!("profile {}", esc(p)));
        }
    }
    if let Some(d) = e.dhcp() {
        if let Some(f) = d.firmware {
            detail.push(esc(f.label()));
        }
        if let Some(a) = d.arch {
            detail.push(format!("arch {}", esc(&describe_arch(a))));
        }
        if let Some(i) = &d.iface {
            detail.push(format!("on {}", esc(i)));
        }
    }
    let what = esc(&e.what().to_string());
    format!(
        "<tr class=\"{}\"><td><time datetime=\"{ts}\">{}</time></td><td class=\"num\">+{:.3}s</td>\
<td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
        if e.ok { "ok" } else { "fail" },
        kindling_timeline::event::format_time(e.ts),
        e.ts.saturating_sub(start) as f64 / 1000.0,
        e.source().label(),
        e.stage.map(|s| s.label()).unwrap_or(""),
        if e.repeats > 0 {
            format!("{} <b class=\"repeats\">&times;{}</b>", what, e.repeats + 1)
        } else {
            what
        },
        e.status().map(|s| s.to_string()).unwrap_or_default(),
        e.bytes().map(human_bytes).unwrap_or_default(),
        e.duration_ms()
            .map(|d| format!("{d:.1} ms"))
            .unwrap_or_default(),
        detail.join(" · "),
        ts = format_ts(e.ts),
    )
}

fn boot_section(b: &Boot, n: usize, total: usize) -> String {
    let mut s = format!(
        "<section class=\"boot\">\n<h3>Boot {n} of {total}, started <time datetime=\"{at}\">{at}</time>: reached <b>{}</b>",
        b.last_stage.map(|s| s.label()).unwrap_or("nothing"),
        at = format_ts(b.started),
    );
    if let Some(e) = &b.error {
        let _ = write!(
            s,
            ", <span class=\"bad\">stopped{}: {}</span>",
            e.stage.map(|s| format!(" at {s}")).unwrap_or_default(),
            esc(&e.message)
        );
    }
    s.push_str("</h3>\n");
    s.push_str(&stages(
        b.last_stage,
        b.error.as_ref().and_then(|e| e.stage),
    ));
    if b.dropped_events > 0 {
        let _ = writeln!(
            s,
            "<p class=\"note\">{} earlier event(s) of this boot were dropped (max_events_per_boot).</p>",
            b.dropped_events
        );
    }
    s.push_str("<table class=\"timeline\">\n<thead><tr><th>Time (UTC)</th><th>Since start</th><th>Source</th><th>Stage</th>\
<th>What</th><th>Status</th><th>Bytes</th><th>Duration</th><th>Detail</th></tr></thead>\n<tbody>\n");
    for e in &b.events {
        s.push_str(&event_row(e, b.started));
    }
    s.push_str("</tbody>\n</table>\n</section>\n");
    s
}

/// The boots of one machine, newest first (also served alone for live refresh).
pub fn timeline_fragment(m: Option<&MachineDetail>) -> String {
    let Some(m) = m else {
        return "<p>No boot events recorded for this machine.</p>\n".into();
    };
    let total = m.timeline.len();
    let mut s = String::new();
    for (i, b) in m.timeline.iter().enumerate().rev() {
        s.push_str(&boot_section(b, i + 1, total));
    }
    s
}

/// `/ui/machines/{mac}`.
pub fn machine_page(mac: &str, m: Option<&MachineDetail>) -> String {
    let mut s = head(&format!("Kindling · {mac}"), "machine", mac);
    let _ = writeln!(s, "<h2>Machine {}</h2>", esc(mac));
    if let Some(m) = m {
        let sm = &m.summary;
        s.push_str("<dl class=\"facts\">\n");
        for (k, v) in [
            ("IP", opt(&sm.ip)),
            ("Architecture", opt(&sm.arch)),
            ("Firmware", opt(&sm.firmware)),
            ("Vendor class", opt(&m.vendor_class)),
            ("User class", opt(&m.user_class)),
            ("Group", opt(&sm.group)),
            ("Profile", opt(&sm.profile)),
            (
                "Last stage",
                sm.last_stage.map(|s| s.label()).unwrap_or("–").into(),
            ),
            ("First seen", esc(&format_ts(m.first_seen))),
            ("Last seen", esc(&sm.last_seen_at)),
            (
                "DHCP lease",
                sm.lease
                    .as_ref()
                    .map(|l| esc(&lease_text(l, ", ", str::to_string)))
                    .unwrap_or_else(|| "–".into()),
            ),
            (
                "Lifecycle",
                m.lifecycle_record
                    .as_ref()
                    .map(|r| esc(describe(r).trim()))
                    .unwrap_or_else(|| "–".into()),
            ),
        ] {
            let _ = writeln!(s, "<dt>{k}</dt><dd>{v}</dd>");
        }
        s.push_str("</dl>\n");
    }
    s.push_str("<div id=\"timeline\">\n");
    s.push_str(&timeline_fragment(m));
    s.push_str("</div>\n");
    s.push_str(FOOT);
    s
}
