//! `kindling check`: everything that can be known about a data directory
//! before a machine boots from it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use kindling_model::{Area, DataDir, Group, Loader, Profile, ProfileLookupError, ReadError};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Print findings as JSON.
    #[arg(long)]
    json: bool,
    /// Exit non-zero on warnings too.
    #[arg(long)]
    strict: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    file: String,
    line: Option<usize>,
    column: Option<usize>,
    severity: Severity,
    kind: &'static str,
    message: String,
}

struct Checker {
    data: DataDir,
    assets: PathBuf,
    findings: Vec<Finding>,
}

/// 1-based line and column of the first occurrence of `needle` in `text`.
fn position_of(text: &str, needle: &str) -> Option<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find(&needle.to_ascii_lowercase())?;
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    Some((line, col))
}

/// Pulls "line L, column C" out of a message.
fn line_col(msg: &str) -> (Option<usize>, Option<usize>) {
    let num_after = |key: &str| {
        msg.find(key).and_then(|i| {
            let rest = &msg[i + key.len()..];
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        })
    };
    (num_after("line "), num_after("column "))
}

impl Checker {
    fn push(
        &mut self,
        severity: Severity,
        kind: &'static str,
        file: String,
        pos: Option<(usize, usize)>,
        message: String,
    ) {
        self.findings.push(Finding {
            file,
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            severity,
            kind,
            message,
        });
    }

    fn file_text(&self, rel: &str) -> String {
        std::fs::read_to_string(self.data.root().join(rel)).unwrap_or_default()
    }

    /// Position of a JSON key (or a string value) in a data-directory file.
    fn pos(&self, rel: &str, needle: &str) -> Option<(usize, usize)> {
        position_of(&self.file_text(rel), needle)
    }

    fn check_asset(&mut self, profile_file: &str, value: &str, what: &str) {
        for token in value.split_whitespace() {
            let Some(rest) = token.strip_prefix("/assets/") else {
                continue;
            };
            let ok = kindling_model::store::resolve_confined(&self.assets, "assets", rest).is_ok();
            if !ok {
                let pos = self.pos(profile_file, token);
                self.push(
                    Severity::Warning, // assets are often provisioned after the config (fcos pull, rsync); --strict makes it fatal
                    "missing_asset",
                    profile_file.to_string(),
                    pos,
                    format!(
                        "{what} {token} does not exist under {}",
                        self.assets.display()
                    ),
                );
            }
        }
    }

    fn check_profile(&mut self, p: &Profile, groups: &[&Group]) {
        let file = format!("profiles/{}.json", p.file_id);
        if p.id != p.file_id {
            let pos = self.pos(&file, "\"id\"");
            self.push(
                Severity::Warning,
                "profile_id_mismatch",
                file.clone(),
                pos,
                format!(
                    "id {:?} differs from the file name; groups find profiles by file name ({:?})",
                    p.id, p.file_id
                ),
            );
        }
        match &p.boot {
            None => {
                let pos = self.pos(&file, "\"boot\"");
                self.push(
                    Severity::Warning,
                    "no_boot",
                    file.clone(),
                    pos,
                    "profile has no boot section: /ipxe and /grub answer 404".into(),
                );
            }
            Some(b) => {
                if b.kernel.is_empty() {
                    let pos = self.pos(&file, "\"boot\"");
                    self.push(
                        Severity::Error,
                        "no_kernel",
                        file.clone(),
                        pos,
                        "boot.kernel is empty".into(),
                    );
                }
                // Templated fields are checked as each group using the profile renders
                // them (with the group's selectors as the request's labels).
                let rendered: Vec<(String, Result<kindling_model::Boot, String>)> =
                    if !kindling_render::is_templated(b) {
                        vec![(String::new(), Ok(b.clone()))]
                    } else {
                        groups
                            .iter()
                            .map(|g| {
                                let mut labels: kindling_model::Labels = g
                                    .selector
                                    .iter()
                                    .map(|(k, v)| (k.to_string(), v.to_string()))
                                    .collect();
                                // `.request.query.KEY` comes with the request: supply
                                // every key the fields read (as for templates, below).
                                let all = std::iter::once(&b.kernel)
                                    .chain(&b.initrd)
                                    .chain(&b.args)
                                    .map(String::as_str)
                                    .collect::<Vec<_>>()
                                    .join(" ");
                                for key in query_keys_read(&all) {
                                    labels
                                        .entry(key.clone())
                                        .or_insert_with(|| format!("query-{key}"));
                                }
                                let data = || kindling_render::template_data(g, &labels, "");
                                let r = kindling_render::render_boot(b, data)
                                    .map(std::borrow::Cow::into_owned);
                                (format!(" (for groups/{}.json)", g.file_id), r)
                            })
                            .collect()
                    };
                for (which, r) in rendered {
                    match r {
                        Ok(b) => {
                            self.check_asset(&file, &b.kernel, &format!("kernel{which}"));
                            for i in &b.initrd {
                                self.check_asset(&file, i, &format!("initrd{which}"));
                            }
                        }
                        Err(e) => {
                            let pos = self.pos(&file, "\"boot\"");
                            self.push(
                                Severity::Error,
                                "boot_template",
                                file.clone(),
                                pos,
                                format!("{e}{which}: /ipxe and /grub answer 404"),
                            );
                        }
                    }
                }
            }
        }
        let areas = [
            (
                Area::Ignition,
                "ignition",
                &p.ignition_id,
                "\"ignition_id\"",
            ),
            (Area::Generic, "generic", &p.generic_id, "\"generic_id\""),
            (Area::Cloud, "cloud", &p.cloud_id, "\"cloud_id\""),
        ];
        for (area, kind, id, key) in areas {
            if id.is_empty() {
                continue;
            }
            let bytes = match self.data.read(area, id) {
                Ok(b) => b,
                Err(e) => {
                    let pos = self.pos(&file, key);
                    let (k, msg) = match e {
                        ReadError::NotFound(_) => (
                            "missing_file",
                            format!("{kind} file {id:?} does not exist ({kind}/{id})"),
                        ),
                        ReadError::Escapes(..) => (
                            "path_escapes",
                            format!("{kind}_id {id:?} leaves {kind}/ (Kindling refuses it)"),
                        ),
                        other => ("unreadable_file", format!("{kind} file {id:?}: {other}")),
                    };
                    self.push(Severity::Error, k, file.clone(), pos, msg);
                    continue;
                }
            };
            let target = format!("{kind}/{id}");
            if area == Area::Ignition && (id.ends_with(".ign") || id.ends_with(".ignition")) {
                let report = kindling_butane::validate_ignition(&bytes);
                for e in report.entries {
                    let sev = match e.severity {
                        kindling_butane::Severity::Error => Severity::Error,
                        _ => Severity::Warning,
                    };
                    let kind = if sev == Severity::Error {
                        "ignition_invalid"
                    } else {
                        "ignition_warning"
                    };
                    let msg = if e.path.is_empty() {
                        e.message
                    } else {
                        format!("{}: {}", e.path, e.message)
                    };
                    self.push(
                        sev,
                        kind,
                        target.clone(),
                        e.line.zip(e.column.or(Some(1))),
                        msg,
                    );
                }
                continue;
            }
            let src = String::from_utf8_lossy(&bytes).into_owned();
            let tmpl = match kindling_render::Template::parse(&src) {
                Ok(t) => t,
                Err(e) => {
                    let (l, c) = line_col(&e.0);
                    let pos = template_pos(&e.0).or(l.map(|l| (l, c.unwrap_or(1))));
                    self.push(Severity::Error, "template_parse", target.clone(), pos, e.0);
                    continue;
                }
            };
            // Render (and for Ignition, translate) once per group using this profile.
            for g in groups {
                let mut labels: kindling_model::Labels = g
                    .selector
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                // `.request.query.<key>` comes from the request's query string, which
                // the server renders whenever the request carries that key: supply
                // every key the template reads so only truly unknown fields fail.
                for key in query_keys_read(&src) {
                    labels
                        .entry(key.clone())
                        .or_insert_with(|| format!("query-{key}"));
                }
                let raw_query: Vec<String> =
                    g.selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let data = kindling_render::template_data(g, &labels, &raw_query.join("&"));
                let gfile = format!("groups/{}.json", g.file_id);
                let rendered = match tmpl.render(&data) {
                    Ok(r) => r,
                    Err(e) => {
                        let pos = template_pos(&e.0);
                        self.push(
                            Severity::Error,
                            "template_render",
                            target.clone(),
                            pos,
                            format!("rendering for {gfile}: {}", e.0),
                        );
                        continue;
                    }
                };
                if area != Area::Ignition {
                    continue;
                }
                match kindling_butane::translate(rendered.as_bytes(), &Default::default()) {
                    Ok(t) => {
                        for w in t.warnings.entries {
                            self.push(
                                Severity::Warning,
                                "butane_warning",
                                target.clone(),
                                w.line.zip(w.column.or(Some(1))),
                                format!(
                                    "rendered for {gfile}: {}{}",
                                    path_prefix(&w.path),
                                    w.message
                                ),
                            );
                        }
                    }
                    Err(err) => {
                        for e in err.report.entries {
                            let sev = match e.severity {
                                kindling_butane::Severity::Error => Severity::Error,
                                _ => Severity::Warning,
                            };
                            let kind = if sev == Severity::Error {
                                "butane_error"
                            } else {
                                "butane_warning"
                            };
                            self.push(
                                sev,
                                kind,
                                target.clone(),
                                e.line.zip(e.column.or(Some(1))),
                                format!(
                                    "rendered for {gfile}: {}{}",
                                    path_prefix(&e.path),
                                    e.message
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
}

fn path_prefix(p: &str) -> String {
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}: ")
    }
}

/// The keys of `.request.query` a template reads, as `.request.query.KEY`
/// (also `$.request.query.KEY`) or `index .request.query "KEY"`.
fn query_keys_read(src: &str) -> Vec<String> {
    const FIELD: &str = ".request.query.";
    const INDEX: &str = ".request.query";
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut keys = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find(FIELD) {
        rest = &rest[i + FIELD.len()..];
        let k = ident(rest);
        if !k.is_empty() {
            keys.push(k);
        }
    }
    let mut rest = src;
    while let Some(i) = rest.find("index") {
        rest = &rest[i + "index".len()..];
        let t = rest.trim_start();
        let t = t.strip_prefix('$').unwrap_or(t);
        let Some(after) = t.strip_prefix(INDEX) else {
            continue;
        };
        let after = after.trim_start();
        for quote in ['"', '`'] {
            if let Some(q) = after.strip_prefix(quote)
                && let Some(end) = q.find(quote)
            {
                keys.push(q[..end].to_string());
            }
        }
    }
    keys
}

/// gotmpl messages look like `template: 3:7: ...` or `template: name:3:7: ...`.
fn template_pos(msg: &str) -> Option<(usize, usize)> {
    let rest = msg.strip_prefix("template: ")?;
    let nums: Vec<usize> = rest
        .split(':')
        .take(3)
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    match nums.as_slice() {
        [l, c, ..] => Some((*l, *c)),
        [l] => Some((*l, 1)),
        _ => None,
    }
}

pub fn run(config: Option<&Path>, data_dir: Option<PathBuf>, args: &CheckArgs) -> Result<ExitCode> {
    let (cfg, source) = crate::config::load(config)?;
    // The same checks `kindling serve` makes before it binds anything.
    let settings = cfg.check(&crate::config::Overrides::default());
    let local = crate::resolve_data_dir(data_dir, &cfg);
    // An etcd store is checked as the data directory it exports to (the same paths as its
    // keys below the prefix); assets stay local.
    let exported = crate::store::exported_for_check(&cfg.store)?;
    let root = exported
        .as_ref()
        .map_or(local.clone(), |e| e.path().to_path_buf());
    if !root.is_dir() {
        let mut msg = format!("data directory {} does not exist", root.display());
        for e in &settings.errors {
            msg.push_str(&format!("\n{}: error [config] {e}", source.describe()));
        }
        anyhow::bail!(msg);
    }
    let data = DataDir::new(&root);
    let assets = cfg
        .http
        .assets_dir
        .clone()
        .unwrap_or_else(|| DataDir::new(&local).area(Area::Assets));
    let snap = Loader::new(data.clone()).load();
    let mut c = Checker {
        data,
        assets,
        findings: Vec::new(),
    };
    for (severity, list) in [
        (Severity::Error, settings.errors),
        (Severity::Warning, settings.warnings),
    ] {
        for message in list {
            c.push(severity.clone(), "config", source.describe(), None, message);
        }
    }

    for p in &snap.problems {
        let (l, col) = line_col(&p.message);
        let kind = if p.message.contains("invalid MAC address") {
            "invalid_selector"
        } else if p.message.starts_with("line ") {
            "json_syntax"
        } else if p.message.starts_with("field ") {
            "json_type"
        } else if p.message.contains("no id") {
            "missing_id"
        } else {
            "invalid_file"
        };
        let pos = l.map(|l| (l, col.unwrap_or(1))).or_else(|| {
            // For a bad selector or field, point at the offending key.
            let key = p.message.split_whitespace().nth(1).unwrap_or("");
            let key = key.trim_end_matches(':').rsplit('.').next().unwrap_or("");
            (!key.is_empty())
                .then(|| c.pos(&p.file, &format!("\"{key}\"")))
                .flatten()
        });
        c.push(
            Severity::Error,
            kind,
            p.file.clone(),
            pos,
            p.message.clone(),
        );
    }

    let groups = snap.index.groups();
    let mut prev: Option<&Group> = None;
    for g in groups {
        let file = format!("groups/{}.json", g.file_id);
        if let Some(p) = prev
            && p.selector_string == g.selector_string
        {
            let what = if g.selector.is_empty() {
                "also a default group (no selectors)".to_string()
            } else {
                format!(
                    "the same selectors as groups/{}.json ({})",
                    p.file_id, p.selector_string
                )
            };
            let pos = c.pos(&file, "\"selector\"");
            c.push(
                Severity::Warning,
                "shadowed_group",
                file.clone(),
                pos,
                format!("can never match: {what}, which wins by file-name order"),
            );
        }
        prev = Some(g);
        if g.profile.is_empty() {
            let pos = c.pos(&file, "\"id\"");
            c.push(
                Severity::Error,
                "no_profile",
                file.clone(),
                pos,
                "group names no profile".into(),
            );
            continue;
        }
        match snap.profile_for(g) {
            Err(e) => {
                let kind = match e {
                    ProfileLookupError::Missing { .. } => "missing_profile",
                    ProfileLookupError::Invalid { .. } => "invalid_profile",
                    ProfileLookupError::Escapes { .. } => "path_escapes",
                };
                let pos = c.pos(&file, "\"profile\"");
                c.push(Severity::Error, kind, file.clone(), pos, e.to_string());
            }
            Ok(p) => {
                let once = g.install_once_with(p);
                if once.is_some_and(|o| o.done == kindling_model::Done::Ignition)
                    && p.ignition_id.is_empty()
                {
                    let pos = c.pos(&file, "\"profile\"");
                    c.push(
                        Severity::Warning,
                        "install_never_done",
                        file.clone(),
                        pos,
                        format!(
                            "install_once is done when the machine fetches its Ignition, but profile {:?} has no ignition_id: the install is never marked done (use \"done\": \"callback\" or \"operator\")",
                            p.id
                        ),
                    );
                }
            }
        }
    }
    let discovery = &cfg.machines.discovery_profile;
    if !discovery.is_empty()
        && kindling_model::store::profile_key(discovery)
            .is_some_and(|k| !snap.profiles.contains_key(&k))
    {
        c.push(
            Severity::Error,
            "missing_profile",
            source.describe(),
            None,
            format!(
                "[machines] discovery_profile {discovery:?} is not a profile of this data directory: machines no group selects get a 404"
            ),
        );
    }

    let mut keys: Vec<&String> = snap.profiles.keys().collect();
    keys.sort();
    for k in keys {
        let p = &snap.profiles[k];
        let users: Vec<&Group> = groups
            .iter()
            .filter(|g| {
                kindling_model::store::profile_key(&g.profile).as_deref() == Some(k.as_str())
            })
            .map(|g| g.as_ref())
            .collect();
        c.check_profile(p, &users);
    }
    // Profiles a Secure Boot route boots: what the signed chain cannot boot.
    for (file, kind, message) in
        crate::secure_boot::profile_findings(&cfg.secure_boot, &cfg.dhcp, &snap, &c.assets)
    {
        let pos = c.pos(&file, "\"kernel\"");
        c.push(Severity::Warning, kind, file, pos, message);
    }
    for (file, message) in crate::secure_boot::group_findings(&cfg.secure_boot, &snap) {
        let pos = c.pos(&file, "secure_boot");
        c.push(Severity::Warning, "secure_boot_group", file, pos, message);
    }

    let mut findings = c.findings;
    findings.sort();
    let mut seen = BTreeSet::new();
    findings.retain(|f| seen.insert((f.file.clone(), f.line, f.kind, f.message.clone())));
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    if args.json {
        let v = serde_json::json!({
            "data_dir": root,
            "groups": groups.len(),
            "profiles": snap.profiles.len(),
            "errors": errors,
            "warnings": warnings,
            "findings": findings,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for f in &findings {
            let pos = match (f.line, f.column) {
                (Some(l), Some(c)) => format!(":{l}:{c}"),
                (Some(l), None) => format!(":{l}"),
                _ => String::new(),
            };
            let sev = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            println!("{}{pos}: {sev} [{}] {}", f.file, f.kind, f.message);
        }
        println!(
            "{}: {} groups, {} profiles: {errors} error(s), {warnings} warning(s)",
            root.display(),
            groups.len(),
            snap.profiles.len()
        );
    }
    let fail = errors > 0 || (args.strict && warnings > 0);
    Ok(if fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        assert_eq!(
            position_of("{\n  \"id\": 1,\n  \"Profile\": \"x\"}", "\"profile\""),
            Some((3, 3))
        );
        assert_eq!(line_col("line 4, column 3: expected"), (Some(4), Some(3)));
        assert_eq!(template_pos("template: 3:7: unexpected"), Some((3, 7)));
    }

    #[test]
    fn query_keys_read_finds_fields_and_index() {
        assert_eq!(
            query_keys_read(
                "a={{.request.query.foo}} {{ $.request.query.os_2 }} {{index .request.query \"x-y\"}} {{.request.raw_query}} {{.request.query}}"
            ),
            vec!["foo", "os_2", "x-y"]
        );
    }
}
