//! `kindling migrate matchbox`: matchbox's command-line flags (and `MATCHBOX_*` environment)
//! to `kindling.toml`. Sans-I/O: arguments and environment in, TOML text out.
//!
//! matchbox reads Go `flag`s (`-name=value`, `-name value`, `--name=value`; booleans bare or
//! `=true`), then fills each flag not given from `MATCHBOX_<NAME>` (upper case, `-` as `_`)
//! when that variable is non-empty.

use std::collections::BTreeMap;

use super::toml_out::{Block, comment_text, string};

/// matchbox's flags: (name, default, boolean).
const FLAGS: &[(&str, &str, bool)] = &[
    ("address", "127.0.0.1:8080", false),
    ("rpc-address", "", false),
    ("data-path", "/var/lib/matchbox", false),
    ("assets-path", "/var/lib/matchbox/assets", false),
    ("log-level", "info", false),
    ("cert-file", "/etc/matchbox/server.crt", false),
    ("key-file", "/etc/matchbox/server.key", false),
    ("ca-file", "/etc/matchbox/ca.crt", false),
    ("key-ring-path", "", false),
    ("web-cert-file", "/etc/matchbox/ssl/server.crt", false),
    ("web-key-file", "/etc/matchbox/ssl/server.key", false),
    ("web-ssl", "false", true),
    ("aws-s3-bucket-name", "", false),
    ("aws-s3-bucket-region", "", false),
    ("version", "false", true),
    ("help", "false", true),
];

/// The result.
#[derive(Debug, Clone)]
pub struct Output {
    pub toml: String,
    pub warnings: Vec<String>,
}

/// Where a flag's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum From {
    Default,
    Flag(String),
    Env(String),
}

impl From {
    fn note(&self) -> String {
        match self {
            From::Default => "matchbox's default".into(),
            From::Flag(f) => f.clone(),
            From::Env(e) => format!("${e}"),
        }
    }
}

fn env_name(flag: &str) -> String {
    format!("MATCHBOX_{}", flag.to_ascii_uppercase().replace('-', "_"))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Reads matchbox's flags and environment into (value, origin) per flag name.
fn read(
    args: &[String],
    env: &[(String, String)],
    warnings: &mut Vec<String>,
) -> BTreeMap<&'static str, (String, From)> {
    let mut vals: BTreeMap<&'static str, (String, From)> = FLAGS
        .iter()
        .map(|(n, d, _)| (*n, (d.to_string(), From::Default)))
        .collect();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            if i < args.len() {
                warnings.push(format!(
                    "ignored arguments after --: {}",
                    args[i..].join(" ")
                ));
            }
            break;
        }
        let Some(body) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            warnings.push(format!(
                "{a:?}: matchbox takes no positional arguments; ignored"
            ));
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some((fname, _, boolean)) = FLAGS.iter().find(|(n, _, _)| *n == name) else {
            warnings.push(format!("{a:?}: not a matchbox flag; ignored"));
            continue;
        };
        let value = if *boolean {
            match inline {
                Some(v) => match parse_bool(&v) {
                    Some(b) => b.to_string(),
                    None => {
                        warnings.push(format!("{a:?}: not a boolean; ignored"));
                        continue;
                    }
                },
                None => "true".into(),
            }
        } else {
            match inline {
                Some(v) => v,
                None => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        v.clone()
                    }
                    None => {
                        warnings.push(format!("{a:?}: needs a value; ignored"));
                        continue;
                    }
                },
            }
        };
        vals.insert(
            fname,
            (
                value,
                From::Flag(a.split('=').next().unwrap_or(a).to_string()),
            ),
        );
    }
    for (name, _, boolean) in FLAGS {
        if matches!(vals[name].1, From::Flag(_)) {
            continue;
        }
        let key = env_name(name);
        let Some((_, v)) = env.iter().rev().find(|(k, v)| *k == key && !v.is_empty()) else {
            continue;
        };
        let v = if *boolean {
            match parse_bool(v) {
                Some(b) => b.to_string(),
                None => {
                    warnings.push(format!("${key}={v:?}: not a boolean; ignored"));
                    continue;
                }
            }
        } else {
            v.clone()
        };
        vals.insert(name, (v, From::Env(key)));
    }
    vals
}

/// Translates matchbox's flags and environment.
pub fn translate(args: &[String], env: &[(String, String)]) -> Output {
    let mut warnings = Vec::new();
    let v = read(args, env, &mut warnings);
    let get = |n: &str| v.get(n).cloned().unwrap_or((String::new(), From::Default));
    let mut out = String::new();
    let mut notes: Vec<String> = Vec::new();
    out.push_str("# kindling.toml written by `kindling migrate matchbox` from matchbox's flags");
    if args.is_empty() {
        out.push_str(" (none given: matchbox's defaults)");
    }
    out.push_str(".\n# Kindling serves matchbox's HTTP endpoints from the same data directory (docs/matchbox-compatibility.md).\n\n");

    let (data, data_from) = get("data-path");
    let mut top = Block::default();
    top.key("data_dir", string(&data), Some(data_from.note()));
    top.render(&mut out);
    out.push('\n');

    out.push_str("[http]\n");
    let mut http = Block::default();
    let (addr, addr_from) = get("address");
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => {
            let mut n = addr_from.note();
            if addr_from == From::Default {
                n.push_str(": loopback only, as matchbox; Kindling's own default is 0.0.0.0:8080");
            }
            http.key("listen", string(&a.to_string()), Some(n));
        }
        Err(_) => {
            notes.push(format!(
                "-address {addr:?} — not translated: Kindling needs an IP:port ([http] listen), e.g. 0.0.0.0:8080 (a host name is not resolved)"
            ));
            warnings.push(format!("-address {addr:?} is not IP:port; left out"));
        }
    }
    let (assets, assets_from) = get("assets-path");
    let default_assets = std::path::Path::new(&data).join("assets");
    if assets.is_empty() {
        http.key(
            "assets",
            "false".into(),
            Some(format!(
                "{}: \"\" turns asset serving off",
                assets_from.note()
            )),
        );
    } else if std::path::Path::new(&assets) != default_assets {
        http.key("assets_dir", string(&assets), Some(assets_from.note()));
    } else {
        http.raw(format!(
            "# assets_dir = {}  ({}: data_dir/assets, Kindling's default)",
            string(&assets),
            assets_from.note()
        ));
    }
    http.render(&mut out);
    out.push('\n');

    let (level, level_from) = get("log-level");
    let lv = match level.to_ascii_lowercase().as_str() {
        "panic" | "fatal" | "error" => Some("error"),
        "warn" | "warning" => Some("warn"),
        "info" => Some("info"),
        "debug" => Some("debug"),
        "trace" => Some("trace"),
        _ => None,
    };
    match lv {
        Some(l) => {
            out.push_str("[log]\n");
            let mut b = Block::default();
            b.key(
                "level",
                string(l),
                Some(format!(
                    "{} (or: kindling serve --log {l})",
                    level_from.note()
                )),
            );
            b.render(&mut out);
            out.push('\n');
        }
        None => {
            notes.push(format!(
                "-log-level {level:?} — not translated: not a logrus level"
            ));
            warnings.push(format!("-log-level {level:?} is not a level; left out"));
        }
    }

    let (rpc, rpc_from) = get("rpc-address");
    if !rpc.is_empty() {
        match rpc.parse::<std::net::SocketAddr>() {
            Ok(a) => {
                out.push_str("[rpc]\n");
                let mut b = Block::default();
                b.key(
                    "address",
                    string(&a.to_string()),
                    Some(format!(
                        "{}: matchbox's gRPC API (terraform-provider-matchbox), mutual TLS",
                        rpc_from.note()
                    )),
                );
                for (flag, key) in [
                    ("cert-file", "cert_file"),
                    ("key-file", "key_file"),
                    ("ca-file", "ca_file"),
                ] {
                    let (val, from) = get(flag);
                    b.key(key, string(&val), Some(from.note()));
                }
                b.render(&mut out);
                out.push('\n');
            }
            Err(_) => {
                notes.push(format!(
                    "-rpc-address {rpc:?} — not translated: Kindling needs an IP:port ([rpc] address), e.g. 0.0.0.0:8081 (a host name is not resolved)"
                ));
                warnings.push(format!("-rpc-address {rpc:?} is not IP:port; left out"));
            }
        }
    } else {
        for f in ["cert-file", "key-file", "ca-file"] {
            let (val, from) = get(f);
            if from != From::Default {
                notes.push(format!(
                    "-{f}={val} — not translated: only used by the gRPC API (-rpc-address), which is off"
                ));
            }
        }
    }
    let (ssl, ssl_from) = get("web-ssl");
    if ssl == "true" {
        notes.push(format!(
            "-web-ssl ({}) with -web-cert-file={} -web-key-file={} — not translated: Kindling's boot listener speaks plain HTTP \
             (iPXE builds often lack HTTPS); terminate TLS in front of it if clients need it",
            ssl_from.note(),
            get("web-cert-file").0,
            get("web-key-file").0
        ));
    }
    let (ring, _) = get("key-ring-path");
    if !ring.is_empty() {
        notes.push(format!(
            "-key-ring-path={ring} — not translated: Kindling does not sign responses (the .sig/.asc endpoints)"
        ));
    }
    let (bucket, _) = get("aws-s3-bucket-name");
    let (region, _) = get("aws-s3-bucket-region");
    if !bucket.is_empty() || !region.is_empty() {
        notes.push(format!(
            "-aws-s3-bucket-name={bucket} -aws-s3-bucket-region={region} — not translated: Kindling reads a local data directory only"
        ));
    }
    for f in ["version", "help"] {
        if get(f).0 == "true" {
            notes.push(format!(
                "-{f} — nothing to translate (matchbox prints and exits)"
            ));
        }
    }
    if env
        .iter()
        .any(|(k, v)| k == "MATCHBOX_PASSPHRASE" && !v.is_empty())
    {
        notes.push("$MATCHBOX_PASSPHRASE — not translated: only for -key-ring-path signing".into());
    }
    if !notes.is_empty() {
        out.push_str("# Not translated:\n");
        for n in notes {
            out.push_str(&format!("# matchbox {}\n", comment_text(&n)));
        }
    }
    Output {
        toml: out,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn parsed(o: &Output) -> crate::config::Config {
        toml::from_str(&o.toml).unwrap_or_else(|e| panic!("{e}\n{}", o.toml))
    }

    #[test]
    fn the_seeds_compose_command() {
        let o = translate(
            &args(&["-address=0.0.0.0:8080", "-rpc-address=0.0.0.0:8081"]),
            &[],
        );
        let c = parsed(&o);
        assert_eq!(c.http.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(
            c.data_dir.as_deref(),
            Some(std::path::Path::new("/var/lib/matchbox"))
        );
        assert!(c.http.assets_dir.is_none());
        assert_eq!(c.rpc.address, "0.0.0.0:8081");
        assert_eq!(
            c.rpc.ca_file,
            std::path::Path::new("/etc/matchbox/ca.crt"),
            "{}",
            o.toml
        );
        assert!(
            !o.toml.contains("not translated: matchbox's gRPC"),
            "{}",
            o.toml
        );
        assert!(o.warnings.is_empty());
    }

    #[test]
    fn flag_forms_env_and_precedence() {
        let env = vec![
            ("MATCHBOX_ADDRESS".to_string(), "10.0.0.1:9000".to_string()),
            ("MATCHBOX_DATA_PATH".to_string(), "/srv/mb".to_string()),
            ("MATCHBOX_LOG_LEVEL".to_string(), "".to_string()),
            ("MATCHBOX_WEB_SSL".to_string(), "true".to_string()),
        ];
        let o = translate(
            &args(&[
                "--address",
                "0.0.0.0:8080",
                "-log-level=debug",
                "-assets-path",
                "",
            ]),
            &env,
        );
        let c = parsed(&o);
        // A flag beats the environment; an empty variable is not a value.
        assert_eq!(c.http.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.data_dir.as_deref(), Some(std::path::Path::new("/srv/mb")));
        assert_eq!(c.log.level, "debug");
        assert!(!c.http.assets);
        assert!(o.toml.contains("$MATCHBOX_DATA_PATH"), "{}", o.toml);
        assert!(o.toml.contains("-web-ssl"), "{}", o.toml);
    }

    #[test]
    fn defaults_and_bad_input() {
        let o = translate(&[], &[]);
        let c = parsed(&o);
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        let o = translate(
            &args(&[
                "-address=matchbox:8080",
                "-log-level=loud",
                "-nope",
                "stray",
                "-web-ssl=maybe",
                "-data-path",
            ]),
            &[],
        );
        parsed(&o);
        assert_eq!(o.warnings.len(), 6, "{:?}", o.warnings);
        let o = translate(
            &args(&["-data-path=/x\"y\n", "-assets-path=/elsewhere"]),
            &[],
        );
        let c = parsed(&o);
        assert_eq!(
            c.http.assets_dir.as_deref(),
            Some(std::path::Path::new("/elsewhere"))
        );
    }
}
