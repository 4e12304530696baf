//! `kindling check` (issue 5): clean on the examples, and on a deliberately
//! broken data directory (tests/check/broken) every planted problem is listed
//! with its file and line.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check(dir: &str, json: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kindling"));
    cmd.arg("check")
        .arg("--data-dir")
        .arg(repo().join(dir))
        .env_remove("KINDLING_CONFIG");
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn examples_are_clean() {
    let mut dirs = Vec::new();
    for e in std::fs::read_dir(repo().join("examples")).unwrap() {
        let p = e.unwrap().path();
        if p.join("groups").is_dir() {
            dirs.push(format!(
                "examples/{}",
                p.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(!dirs.is_empty());
    for dir in &dirs {
        let (code, out) = check(dir, false);
        assert_eq!(code, 0, "{dir}:\n{out}");
        assert!(out.contains("0 error(s)"), "{out}");
    }
}

#[test]
fn broken_directory_lists_every_planted_problem() {
    let (code, out) = check("tests/check/broken", true);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let findings = v["findings"].as_array().unwrap();
    // (file, line, severity, kind, part of the message)
    let expected: &[(&str, Option<u64>, &str, &str, &str)] = &[
        (
            "groups/syntax.json",
            Some(4),
            "error",
            "json_syntax",
            "expected `,` or `}`",
        ),
        (
            "groups/type.json",
            Some(4),
            "error",
            "json_type",
            "selector.os: expected string, found number",
        ),
        (
            "groups/badmac.json",
            Some(4),
            "error",
            "invalid_selector",
            "invalid MAC address",
        ),
        (
            "groups/noprof.json",
            Some(3),
            "error",
            "missing_profile",
            "profiles/ghost.json",
        ),
        (
            "groups/empty-profile.json",
            Some(2),
            "error",
            "no_profile",
            "names no profile",
        ),
        (
            "groups/dup-b.json",
            Some(4),
            "warning",
            "shadowed_group",
            "groups/dup-a.json",
        ),
        (
            "groups/uses-noid.json",
            Some(3),
            "error",
            "invalid_profile",
            "no id",
        ),
        ("profiles/noid.json", None, "error", "missing_id", "no id"),
        (
            "profiles/missing-ign.json",
            Some(3),
            "error",
            "missing_file",
            "nope.ign",
        ),
        (
            "profiles/escape.json",
            Some(3),
            "error",
            "path_escapes",
            "leaves ignition/",
        ),
        (
            "profiles/noboot.json",
            None,
            "warning",
            "no_boot",
            "no boot section",
        ),
        (
            "profiles/mismatch.json",
            Some(2),
            "warning",
            "profile_id_mismatch",
            "other-name",
        ),
        (
            "profiles/mismatch.json",
            Some(4),
            "warning",
            "missing_asset",
            "/assets/missing-kernel",
        ),
        (
            "ignition/bad.ign",
            Some(6),
            "error",
            "ignition_invalid",
            "duplicate",
        ),
        (
            "ignition/parse.yaml",
            Some(6),
            "error",
            "template_parse",
            "unclosed action",
        ),
        (
            "ignition/butane.yaml",
            Some(7),
            "error",
            "butane_error",
            "passwd.users.0.groups",
        ),
        (
            "ignition/butane.yaml",
            Some(6),
            "warning",
            "butane_warning",
            "ssh_authorised_keys",
        ),
        (
            "generic/render.tmpl",
            None,
            "error",
            "template_render",
            "hostname",
        ),
        (
            "groups/uses-install-noign.json",
            Some(3),
            "warning",
            "install_never_done",
            "no ignition_id",
        ),
        (
            "profiles/install-bad.json",
            Some(4),
            "error",
            "json_type",
            r#"install_once.done: expected one of "ignition", "callback", "operator", found "reboot""#,
        ),
    ];
    for (file, line, sev, kind, msg) in expected {
        let found = findings.iter().any(|f| {
            f["file"] == *file
                && f["line"].as_u64() == *line
                && f["severity"] == *sev
                && f["kind"] == *kind
                && f["message"].as_str().unwrap_or("").contains(msg)
        });
        assert!(
            found,
            "missing finding {file}:{line:?} {sev} [{kind}] ~{msg:?} in\n{out}"
        );
    }
    let kinds: std::collections::BTreeSet<&str> =
        findings.iter().filter_map(|f| f["kind"].as_str()).collect();
    assert!(kinds.len() >= 10, "only {} kinds: {kinds:?}", kinds.len());
    // Nothing beyond what was planted.
    assert_eq!(
        findings.len(),
        expected.len(),
        "unexpected findings in\n{out}"
    );
    // The good group and profile are not mentioned.
    assert!(
        !out.contains("uses-good.json") && !out.contains("profiles/good.json"),
        "{out}"
    );
}

#[test]
fn human_output_has_file_line_column() {
    let (code, out) = check("tests/check/broken", false);
    assert_eq!(code, 1);
    assert!(
        out.contains("groups/syntax.json:4:3: error [json_syntax]"),
        "{out}"
    );
    assert!(
        out.contains("ignition/butane.yaml:7:15: error [butane_error]"),
        "{out}"
    );
}

/// Issue 15: a template may read `.request.query.<key>` and `.request.raw_query`
/// (the server renders them from the request's query string), so `check` must
/// not flag them; a field no request provides is still an error.
#[test]
fn request_query_fields_are_accepted_unknown_fields_are_not() {
    let (code, out) = check("tests/check/query", true);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{out}");
    let f = &findings[0];
    assert_eq!(f["file"], "generic/unknown.tmpl", "{out}");
    assert_eq!(f["severity"], "error", "{out}");
    assert_eq!(f["kind"], "template_render", "{out}");
    let msg = f["message"].as_str().unwrap();
    assert!(msg.contains("nosuch") && !msg.contains("foo"), "{out}");
    assert!(
        !findings
            .iter()
            .any(|f| f["file"].as_str().unwrap_or("").contains("query")),
        "{out}"
    );
}
