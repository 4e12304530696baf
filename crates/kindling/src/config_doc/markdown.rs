//! The generated Markdown: the key tables, the flags of `kindling serve` and the environment
//! variables of the other commands.

use std::fmt::Write as _;

use serde_json::Value;

use super::section::{DefaultValue, Section};

/// Which keys a flag of `kindling serve` (or a global flag) overrides, by clap argument id.
pub(super) const FLAG_KEYS: &[(&str, &[&str])] = &[
    ("data_dir", &["data_dir"]),
    ("state_dir", &["ops.state_dir"]),
    ("cache_dir", &["cache.dir"]),
    ("http_listen", &["http.listen"]),
    ("admin_listen", &["admin.listen"]),
    ("rpc_address", &["rpc.address"]),
    ("assets_dir", &["http.assets_dir"]),
    ("log_format", &["log.format"]),
    ("log", &["log.level"]),
    ("no_watch", &["reload.watch"]),
    ("dhcp_interfaces", &["dhcp.interfaces", "dhcp.enabled"]),
    ("tftp", &["tftp.enabled"]),
    ("tftp_listen", &["tftp.listen", "tftp.enabled"]),
];

/// A TOML value as written in a file (inline).
pub(super) fn toml_value(v: &Value) -> String {
    match toml::Value::try_from(v) {
        Ok(t) => t.to_string(),
        Err(_) => v.to_string(),
    }
}

/// Markdown code span.
pub(super) fn code(s: &str) -> String {
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

/// Text for a Markdown table cell: `|` escaped, and `<` outside code spans (else
/// `<data-dir>` would be taken for an HTML tag).
fn cell(s: &str) -> String {
    s.replace('\n', " ")
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                part.replace('|', "\\|")
            } else {
                part.replace('|', "\\|").replace('<', "&lt;")
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

/// Flags (with their value) by clap argument id, for the keys they override.
pub(super) fn flag_of(cli: &clap::Command, id: &str) -> Option<(String, Option<String>)> {
    let serve = cli.find_subcommand("serve")?;
    let arg = cli
        .get_arguments()
        .chain(serve.get_arguments())
        .find(|a| a.get_id().as_str() == id)?;
    Some((
        format!("--{}", arg.get_long()?),
        arg.get_env().map(|e| e.to_string_lossy().into_owned()),
    ))
}

pub(super) fn keys_md(sections: &[Section], cli: &clap::Command) -> String {
    let mut out = String::new();
    for s in sections {
        let title = if s.path.is_empty() {
            "Top-level keys".to_string()
        } else {
            code(&s.header())
        };
        let _ = writeln!(out, "### {title}\n");
        for p in &s.text {
            let _ = writeln!(out, "{p}\n");
        }
        let _ = writeln!(out, "| key | type | default | description |");
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        for k in &s.keys {
            let default = match &k.default {
                DefaultValue::Value(v) => code(&toml_value(v)),
                DefaultValue::Unset => "unset".into(),
                DefaultValue::Required => "required".into(),
                DefaultValue::Table(h) => format!("see {}", code(h)),
            };
            let mut doc = k.doc.join(" ");
            let key_path = s.key_path(&k.name);
            let flags: Vec<String> = FLAG_KEYS
                .iter()
                .filter(|(_, keys)| keys.contains(&key_path.as_str()))
                .filter_map(|(id, _)| flag_of(cli, id))
                .map(|(flag, env)| match env {
                    Some(env) => format!("{}, {}", code(&flag), code(&env)),
                    None => code(&flag),
                })
                .collect();
            if !flags.is_empty() {
                let _ = write!(doc, " Flag: {}.", flags.join("; "));
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                code(&k.name),
                cell(&k.ty),
                cell(&default),
                cell(doc.trim())
            );
        }
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// The help of an argument, on one line.
fn help(a: &clap::Arg) -> String {
    let h = a
        .get_long_help()
        .or(a.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    h.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `--http-listen HTTP_LISTEN`, `--tftp`.
fn flag_usage(a: &clap::Arg) -> Option<String> {
    let long = a.get_long()?;
    let takes_value = a.get_num_args().is_none_or(|n| n.takes_values())
        && !matches!(
            a.get_action(),
            clap::ArgAction::SetTrue | clap::ArgAction::SetFalse | clap::ArgAction::Count
        );
    if !takes_value {
        return Some(format!("--{long}"));
    }
    let value = a
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| a.get_id().as_str().to_uppercase());
    Some(format!("--{long} {value}"))
}

fn is_builtin(a: &clap::Arg) -> bool {
    matches!(a.get_id().as_str(), "help" | "version")
}

pub(super) fn flags_md(cli: &clap::Command) -> String {
    let serve = cli.find_subcommand("serve").expect("kindling serve exists");
    let mut out = String::new();
    let _ = writeln!(out, "| flag | environment | sets | meaning |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    let globals = cli.get_arguments().filter(|a| a.is_global_set());
    let serve_args = serve.get_arguments().filter(|a| !a.is_global_set());
    for a in globals.chain(serve_args) {
        if is_builtin(a) {
            continue;
        }
        let Some(flag) = flag_usage(a) else { continue };
        let env = a
            .get_env()
            .map(|e| code(&e.to_string_lossy()))
            .unwrap_or_default();
        let keys = FLAG_KEYS
            .iter()
            .find(|(id, _)| *id == a.get_id().as_str())
            .map(|(_, keys)| keys.iter().map(|k| code(k)).collect::<Vec<_>>().join(", "))
            .unwrap_or_else(|| "".into());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            code(&flag),
            env,
            keys,
            cell(&help(a))
        );
    }
    out.trim_end().to_string()
}

/// The environment variables of the other commands.
pub(super) fn other_env_md(cli: &clap::Command) -> String {
    fn walk(cmd: &clap::Command, name: &str, rows: &mut Vec<(String, String, String, String)>) {
        for a in cmd.get_arguments() {
            if let (Some(env), Some(flag)) = (a.get_env(), flag_usage(a)) {
                rows.push((
                    env.to_string_lossy().into_owned(),
                    flag,
                    name.to_string(),
                    help(a),
                ));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "serve" || sub.is_hide_set() {
                continue;
            }
            let n = if name.is_empty() {
                format!("kindling {}", sub.get_name())
            } else {
                format!("{name} {}", sub.get_name())
            };
            walk(sub, &n, rows);
        }
    }
    let mut rows = Vec::new();
    for sub in cli.get_subcommands() {
        if sub.get_name() == "serve" || sub.is_hide_set() {
            continue;
        }
        walk(sub, &format!("kindling {}", sub.get_name()), &mut rows);
    }
    // The same variable on several commands (`kindling fcos pull`, `status`): one row.
    let mut merged: Vec<(String, String, Vec<String>, String)> = Vec::new();
    for (env, flag, cmd, help) in rows {
        match merged.iter_mut().find(|m| m.0 == env && m.1 == flag) {
            Some(m) => {
                if !m.2.contains(&cmd) {
                    m.2.push(cmd)
                }
                if m.3.is_empty() {
                    m.3 = help;
                }
            }
            None => merged.push((env, flag, vec![cmd], help)),
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "| environment | flag | commands | meaning |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for (env, flag, cmds, help) in merged {
        let cmds: Vec<String> = cmds.iter().map(|c| code(c)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            code(&env),
            code(&flag),
            cmds.join(", "),
            cell(&help)
        );
    }
    out.trim_end().to_string()
}
