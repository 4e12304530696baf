//! `kindling migrate`: every dnsmasq configuration of `tests/migrate/dnsmasq/` translates to
//! its golden `NAME.toml` (run with `UPDATE_GOLDEN=1` to rewrite them), every output is
//! accepted by `kindling check --config` and by the `[dhcp]`/`[tftp]` validation, every line
//! of the input is accounted for, and matchbox's flags translate as documented.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kindling() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kindling"));
    c.current_dir(repo());
    c.env_remove("KINDLING_CONFIG")
        .env_remove("KINDLING_DATA_DIR");
    c
}

fn run(mut c: Command) -> Output {
    c.stdin(Stdio::null());
    c.output().expect("run kindling")
}

fn corpus() -> Vec<PathBuf> {
    let dir = repo().join("tests/migrate/dnsmasq");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/migrate/dnsmasq")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    v.sort();
    v
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("kindling-migrate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The output is a kindling.toml that `kindling check --config` accepts and whose tables
/// validate.
fn assert_accepted(toml_text: &str, what: &str, scratch: &Scratch) {
    let cfg = scratch.0.join("kindling.toml");
    std::fs::write(&cfg, toml_text).unwrap();
    let data = scratch.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut c = kindling();
    c.arg("check")
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&data);
    let o = run(c);
    assert!(
        o.status.success(),
        "{what}: kindling check --config rejected it: {}{}\n{toml_text}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let table: toml::Table = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{what}: {e}"));
    if let Some(d) = table.get("dhcp") {
        let d: kindling_dhcp::DhcpConfig = d
            .clone()
            .try_into()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        d.validate()
            .unwrap_or_else(|e| panic!("{what}: [dhcp] {e}"));
    }
    if let Some(t) = table.get("tftp") {
        let t: kindling_tftp::TftpConfig = t
            .clone()
            .try_into()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        t.validate()
            .unwrap_or_else(|e| panic!("{what}: [tftp] {e}"));
    }
}

#[test]
fn dnsmasq_corpus_matches_golden_and_is_accepted() {
    let files = corpus();
    assert!(
        files.len() >= 11,
        "the corpus has {} configurations",
        files.len()
    );
    let scratch = Scratch::new("golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for conf in &files {
        let rel = conf.strip_prefix(repo()).unwrap_or(conf);
        let rel = Path::new("tests/migrate/dnsmasq").join(rel.file_name().unwrap());
        let mut c = kindling();
        c.args(["migrate", "dnsmasq"]).arg(&rel);
        let o = run(c);
        assert!(
            o.status.success(),
            "{}: {}",
            rel.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let out = String::from_utf8(o.stdout).unwrap();
        let golden = conf.with_extension("toml");
        if update {
            std::fs::write(&golden, &out).unwrap();
        } else {
            let want = std::fs::read_to_string(&golden).unwrap_or_default();
            if want != out {
                stale.push(golden.display().to_string());
            }
        }
        assert_accepted(&out, &rel.display().to_string(), &scratch);
        // Every line of the original is accounted for.
        let text = std::fs::read_to_string(conf).unwrap();
        for (i, l) in text.lines().enumerate() {
            let t = l.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            assert!(
                out.contains(&format!("# dnsmasq line {}: ", i + 1)),
                "{}: line {} ({t}) is not accounted for\n{out}",
                rel.display(),
                i + 1
            );
        }
        // "not translated" comments have the documented shape.
        for l in out.lines().filter(|l| l.contains("not translated:")) {
            assert!(l.starts_with("# dnsmasq line "), "{l}");
            assert!(l.contains(" — not translated: "), "{l}");
        }
    }
    assert!(
        stale.is_empty(),
        "outputs differ from the golden files (UPDATE_GOLDEN=1 cargo test -p kindling --test migrate rewrites them): {stale:?}"
    );
}

#[test]
fn seed_translation_is_the_documented_one() {
    let o = run({
        let mut c = kindling();
        c.args(["migrate", "dnsmasq", "tests/migrate/dnsmasq/seed.conf"]);
        c
    });
    let out = String::from_utf8(o.stdout).unwrap();
    let t: toml::Table = toml::from_str(&out).unwrap();
    let d = t["dhcp"].as_table().unwrap();
    assert_eq!(
        d["interfaces"].as_array().unwrap()[0].as_str(),
        Some("10.10.254.0")
    );
    assert_eq!(
        d["exclude_interfaces"].as_array().unwrap()[0].as_str(),
        Some("virbr0")
    );
    let rules = d["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["name"].as_str(), Some("netboot-xyz"));
    assert_eq!(rules[0]["mac"].as_str(), Some("02:1a:4a:16:01:9c"));
    assert_eq!(
        rules[0]["url"].as_str(),
        Some("http://{server_ip}:{http_port}/menu.ipxe")
    );
    assert_eq!(t["tftp"]["root"].as_str(), Some("/var/ftpd"));
    assert_eq!(t["log"]["level"].as_str(), Some("info,kindling_dhcp=debug"));
    assert!(
        out.contains("# dnsmasq line 15: log-queries — not translated: DNS"),
        "{out}"
    );
}

#[test]
fn bad_input_is_commented_and_warned_never_fatal() {
    let scratch = Scratch::new("bad");
    let conf = scratch.0.join("bad.conf");
    std::fs::write(
        &conf,
        b"dhcp-range=10.0.0.0,proxy\npxe-service=x86PC\ndhcp-mac=set:a,zz\npxe-prompt=\"open\n\xff\xfe=1\npxe-service=x86PC,\"a\",undionly.kpxe\n",
    )
    .unwrap();
    let out_path = scratch.0.join("out.toml");
    let o = run({
        let mut c = kindling();
        c.args(["migrate", "dnsmasq"])
            .arg(&conf)
            .arg("-o")
            .arg(&out_path);
        c
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("warning: line").count(), 3, "{err}");
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        out.contains("# dnsmasq line 2: pxe-service=x86PC — not translated: malformed"),
        "{out}"
    );
    assert!(out.contains("# dnsmasq line 5: "), "{out}");
    let checked = Scratch::new("bad-check");
    assert_accepted(&out, "bad.conf", &checked);
    // A missing file is an error, not a panic.
    let o = run({
        let mut c = kindling();
        c.args(["migrate", "dnsmasq", "/nonexistent/dnsmasq.conf"]);
        c
    });
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("reading /nonexistent/dnsmasq.conf"));
}

#[test]
fn matchbox_flags_and_environment() {
    let scratch = Scratch::new("matchbox");
    // The seed's docker-compose command line.
    let o = run({
        let mut c = kindling();
        c.args([
            "migrate",
            "matchbox",
            "-address=0.0.0.0:8080",
            "-rpc-address=0.0.0.0:8081",
        ]);
        c
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let golden = repo().join("tests/migrate/matchbox/seed-compose.toml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &out).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&golden).unwrap_or_default(),
        out,
        "golden {}",
        golden.display()
    );
    assert_accepted(&out, "matchbox seed", &scratch);
    let t: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(t["rpc"]["address"].as_str(), Some("0.0.0.0:8081"));
    assert_eq!(
        t["rpc"]["cert_file"].as_str(),
        Some("/etc/matchbox/server.crt")
    );
    // --flag=value, a separate value, and MATCHBOX_* for flags not given.
    let o = run({
        let mut c = kindling();
        c.args([
            "migrate",
            "matchbox",
            "--address=10.0.0.2:9090",
            "-log-level",
            "debug",
            "-cert-file=/etc/mb/s.crt",
        ])
        .env("MATCHBOX_DATA_PATH", "/srv/matchbox")
        .env("MATCHBOX_ASSETS_PATH", "/srv/assets")
        .env("MATCHBOX_ADDRESS", "127.0.0.1:1");
        c
    });
    let out = String::from_utf8(o.stdout).unwrap();
    let t: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(t["data_dir"].as_str(), Some("/srv/matchbox"));
    assert_eq!(t["http"]["listen"].as_str(), Some("10.0.0.2:9090"));
    assert_eq!(t["http"]["assets_dir"].as_str(), Some("/srv/assets"));
    assert_eq!(t["log"]["level"].as_str(), Some("debug"));
    assert!(out.contains("-cert-file=/etc/mb/s.crt"), "{out}");
    assert_accepted(&out, "matchbox flags", &scratch);
}
