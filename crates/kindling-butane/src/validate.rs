//! Ignition config validation (spec 3.0.0 - 3.5.0): a structural parse with the
//! `ignition-config` crate plus the semantic checks Ignition's Go `validate` code makes
//! (`config/v3_*/types/*.go`, `config/validate`).

mod checker;
mod storage;
mod systemd;

pub use checker::Issue;

use crate::json::Locator;
use crate::report::{Report, Severity};
use checker::{V, arr, j, st};
use serde_json::Value;
use std::collections::HashSet;

/// All checks of a config, in the order Ignition reports them.
fn run(v: &mut V, c: &Value) {
    ignition(v, c);
    kernel_arguments(v, c);
    passwd(v, c);
    storage::nodes(v, c);
    storage::disks(v, c);
    storage::filesystems(v, c);
    storage::luks(v, c);
    storage::raid(v, c);
    systemd::units(v, c);
}

/// `ignition`: merged and replacing configs, TLS certificate authorities, proxies.
fn ignition(v: &mut V, c: &Value) {
    for (i, r) in arr(c, "/ignition/config/merge").iter().enumerate() {
        v.resource(r, &format!("ignition.config.merge.{i}"), true);
    }
    if let Some(r) = c.pointer("/ignition/config/replace") {
        v.resource(r, "ignition.config.replace", false);
    }
    for (i, r) in arr(c, "/ignition/security/tls/certificateAuthorities")
        .iter()
        .enumerate()
    {
        v.resource(
            r,
            &format!("ignition.security.tls.certificateAuthorities.{i}"),
            true,
        );
    }
    for k in ["httpProxy", "httpsProxy"] {
        if let Some(p) = c
            .pointer(&format!("/ignition/proxy/{k}"))
            .and_then(Value::as_str)
            && !p.is_empty()
        {
            let ok = url::Url::parse(p).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                v.err(format!("ignition.proxy.{k}"), "proxies must be http(s)");
            }
        }
    }
}

/// `kernelArguments`: no argument twice across both lists.
fn kernel_arguments(v: &mut V, c: &Value) {
    let mut seen = HashSet::new();
    for k in ["shouldExist", "shouldNotExist"] {
        let items: Vec<(String, Option<&str>)> = arr(c, &format!("/kernelArguments/{k}"))
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("kernelArguments.{k}.{i}"), a.as_str()))
            .collect();
        v.dups(items.into_iter(), &mut seen);
    }
}

/// `passwd`: users and groups have a unique name; no key or group twice for one user.
fn passwd(v: &mut V, c: &Value) {
    for k in ["users", "groups"] {
        let mut seen = HashSet::new();
        for (i, u) in arr(c, &format!("/passwd/{k}")).iter().enumerate() {
            let at = format!("passwd.{k}.{i}");
            let name = st(u, "name");
            if name.unwrap_or("").is_empty() {
                // Ignition itself does not check this; useradd/groupadd fail at boot.
                v.err(j(&at, "name"), "field \"name\" is required");
            }
            v.dups(std::iter::once((at.clone(), name)), &mut seen);
            if k == "users" {
                v.str_list_dups(u, "/sshAuthorizedKeys", &j(&at, "sshAuthorizedKeys"));
                v.str_list_dups(u, "/groups", &j(&at, "groups"));
            }
        }
    }
}

/// Semantic validation of an Ignition config value of spec 3.`minor`.0.
pub fn validate_value(config: &Value, minor: u8) -> Vec<Issue> {
    let mut v = V {
        minor,
        issues: Vec::new(),
    };
    run(&mut v, config);
    v.issues
}

/// Validates a raw Ignition document (spec 3.0.0 - 3.5.0). Unknown keys are warnings (as in
/// Ignition); everything else that Ignition would refuse is an error.
pub fn validate_ignition(bytes: &[u8]) -> Report {
    let mut report = Report::default();
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            let msg = if bytes.iter().all(u8::is_ascii_whitespace) {
                "not a config (empty)".to_string()
            } else {
                format!("config is not valid JSON: {e}")
            };
            let pos = (e.line() > 0).then_some((e.line(), e.column()));
            report.push(Severity::Error, msg, "", pos);
            return report;
        }
    };
    let text = String::from_utf8_lossy(bytes);
    let loc = Locator::new(&text);
    let version = value.pointer("/ignition/version").and_then(Value::as_str);
    let Some(version) = version else {
        report.push(
            Severity::Error,
            "invalid config version (couldn't parse)",
            "ignition.version",
            loc.find("ignition.version"),
        );
        return report;
    };
    let minor = match version {
        "3.0.0" => 0,
        "3.1.0" => 1,
        "3.2.0" => 2,
        "3.3.0" => 3,
        "3.4.0" => 4,
        "3.5.0" => 5,
        v if v.starts_with("2.") || v.starts_with("1.") => {
            report.push(
                Severity::Error,
                format!(
                    "unsupported config version {v}: spec 2.x is not supported; translate it to 3.x"
                ),
                "ignition.version",
                loc.find("ignition.version"),
            );
            return report;
        }
        v => {
            report.push(
                Severity::Error,
                format!("unsupported config version {v}"),
                "ignition.version",
                loc.find("ignition.version"),
            );
            return report;
        }
    };
    match ignition_config::Config::parse_slice(bytes) {
        Ok((_, warnings)) => {
            for w in warnings {
                let ignition_config::Warning::UnusedKey(p) = &w else {
                    continue;
                };
                let p = p
                    .trim_start_matches('$')
                    .trim_start_matches('.')
                    .to_string();
                let key = p.rsplit('.').next().unwrap_or("").to_string();
                report.push(
                    Severity::Warning,
                    format!("unused key {key}"),
                    p.clone(),
                    loc.key(&p).or_else(|| loc.find(&p)),
                );
            }
        }
        Err(e) => {
            let (msg, pos) = match &e {
                ignition_config::Error::Serialization(se) => (
                    format!("config does not match the spec {version} structure: {se}"),
                    (se.line() > 0).then_some((se.line(), se.column())),
                ),
                other => (other.to_string(), None),
            };
            report.push(Severity::Error, msg, "", pos);
            return report;
        }
    }
    for issue in validate_value(&value, minor) {
        let pos = loc.find(&issue.path);
        report.push(issue.severity, issue.message, issue.path, pos);
    }
    report
}
