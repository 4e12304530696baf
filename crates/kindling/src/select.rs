//! `kindling select LABEL=VALUE...`: which group and profile a request with
//! these labels gets, and why (the "why didn't this match" tool matchbox lacks).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use kindling_model::{DataDir, LabelWarning, Loader, Mac, labels_from_args};

#[derive(clap::Args, Debug)]
pub struct SelectArgs {
    /// Labels as a request would carry them, e.g. `mac=52:54:00:12:34:56 os=installed`.
    /// A bare MAC address (no `=`) means `mac=<it>`; any other argument without `=`
    /// is an error.
    #[arg(value_name = "LABEL=VALUE", value_parser = label_arg)]
    labels: Vec<String>,
    /// Print the decision as JSON.
    #[arg(long)]
    json: bool,
    /// How many groups (in matchbox's evaluation order) to explain.
    #[arg(long, default_value_t = 20)]
    explain: usize,
}

pub fn run(
    config: Option<&Path>,
    data_dir: Option<PathBuf>,
    args: &SelectArgs,
) -> Result<ExitCode> {
    let (cfg, _) = crate::config::load(config)?;
    // An etcd store is read at one revision (exported to a temporary directory).
    let exported = crate::store::exported_for_check(&cfg.store)?;
    let root = match &exported {
        Some(e) => e.path().to_path_buf(),
        None => crate::resolve_data_dir(data_dir, &cfg),
    };
    if !root.is_dir() {
        anyhow::bail!("data directory {} does not exist", root.display());
    }
    let data = DataDir::new(&root);
    let snap = Loader::new(data).load();
    let (labels, warnings) = labels_from_args(&args.labels);
    let group = snap.select(&labels).cloned();
    let profile = group.as_ref().map(|g| snap.profile_for(g));
    let considered = snap.index.explain(&labels, args.explain);
    let ok = matches!(profile, Some(Ok(_)));

    if args.json {
        let v = serde_json::json!({
            "data_dir": root,
            "labels": labels,
            "warnings": warnings.iter().map(warning_text).collect::<Vec<_>>(),
            "group": group.as_ref().map(|g| serde_json::json!({
                "file": format!("groups/{}.json", g.file_id), "id": g.id, "selector": g.selector.to_json(),
            })),
            "profile": match &profile {
                Some(Ok(p)) => serde_json::json!({"file": format!("profiles/{}.json", p.file_id), "id": p.id}),
                _ => serde_json::Value::Null,
            },
            "reason": match &profile {
                None => Some(format!("no group matched labels ({} groups loaded)", snap.index.groups().len())),
                Some(Err(e)) => Some(e.to_string()),
                Some(Ok(_)) => None,
            },
            "considered": considered.iter().map(|c| serde_json::json!({
                "file": format!("groups/{}.json", c.file_id),
                "selector": c.selector,
                "matched": c.mismatch.is_none(),
                "mismatch": c.mismatch.as_ref().map(|(k, want, got)| serde_json::json!({"key": k, "wants": want, "got": got})),
            })).collect::<Vec<_>>(),
            "problems": snap.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }

    println!("data directory: {}", root.display());
    let shown: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "labels:  {}",
        if shown.is_empty() {
            "(none)".into()
        } else {
            shown.join(" ")
        }
    );
    for w in &warnings {
        println!("warning: {}", warning_text(w));
    }
    match &group {
        Some(g) => println!(
            "group:   groups/{}.json (id {:?}, selector {})",
            g.file_id,
            g.id,
            if g.selector_string.is_empty() {
                "{} = default group"
            } else {
                &g.selector_string
            }
        ),
        None => println!(
            "group:   none: no group matched ({} groups loaded)",
            snap.index.groups().len()
        ),
    }
    match &profile {
        Some(Ok(p)) => println!("profile: profiles/{}.json (id {:?})", p.file_id, p.id),
        Some(Err(e)) => println!("profile: none: {e}"),
        None => {}
    }
    if !considered.is_empty() {
        println!("why (groups in matchbox's evaluation order):");
        for c in &considered {
            let sel = if c.selector.is_empty() {
                "{}".to_string()
            } else {
                c.selector.clone()
            };
            match &c.mismatch {
                None => println!(
                    "  {:>3}. groups/{}.json [{sel}] -> MATCH",
                    c.rank + 1,
                    c.file_id
                ),
                Some((k, want, got)) => println!(
                    "  {:>3}. groups/{}.json [{sel}] -> no: {k} wants {want:?}, request has {}",
                    c.rank + 1,
                    c.file_id,
                    got.as_ref()
                        .map(|g| format!("{g:?}"))
                        .unwrap_or_else(|| "no such label".into())
                ),
            }
        }
        if group.is_none() && considered.len() < snap.index.groups().len() {
            println!(
                "  ... ({} more groups not shown; --explain N)",
                snap.index.groups().len() - considered.len()
            );
        }
    }
    if let (Some(Ok(p)), Some(g)) = (&profile, &group)
        && let Some(boot) = &p.boot
    {
        // Templated boot fields rendered as /ipxe renders them (the labels as the query).
        let raw_query: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let data = || kindling_render::template_data(g, &labels, &raw_query.join("&"));
        match kindling_render::render_boot(boot, data) {
            Ok(boot) => {
                if let Some(script) = kindling_render::ipxe_script(Some(&boot)) {
                    println!("/ipxe would answer:");
                    for line in script.lines() {
                        println!("  {line}");
                    }
                }
            }
            Err(e) => println!("/ipxe would answer 404: {e}"),
        }
    }
    if !snap.problems.is_empty() {
        println!("problems in the data directory:");
        for p in &snap.problems {
            println!("  {p}");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One `select` argument: `LABEL=VALUE` as given, a bare MAC address as
/// `mac=<it>`, anything else without `=` rejected (clap reports it, exit code 2).
fn label_arg(arg: &str) -> Result<String, String> {
    if arg.contains('=') {
        Ok(arg.to_string())
    } else if Mac::parse(arg).is_ok() {
        Ok(format!("mac={arg}"))
    } else {
        Err(format!(
            "{arg:?} is not of the form LABEL=VALUE (e.g. os=installed) nor a MAC address (which would mean mac={arg})"
        ))
    }
}

fn warning_text(w: &LabelWarning) -> String {
    match w {
        LabelWarning::UnparseableMac { key, value } => {
            format!("label {key}={value:?} dropped: not a MAC address (matchbox drops it too)")
        }
        LabelWarning::BadPair(p) => format!("query pair {p:?} dropped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_mac_means_mac_label() {
        assert_eq!(
            label_arg("00:24:1d:18:28:09").unwrap(),
            "mac=00:24:1d:18:28:09"
        );
        assert_eq!(
            label_arg("00-24-1D-18-28-09").unwrap(),
            "mac=00-24-1D-18-28-09"
        );
        assert_eq!(label_arg("os=installed").unwrap(), "os=installed");
        assert_eq!(label_arg("mac=nope").unwrap(), "mac=nope");
        let e = label_arg("installed").unwrap_err();
        assert!(
            e.contains("\"installed\"") && e.contains("LABEL=VALUE"),
            "{e}"
        );
    }
}
