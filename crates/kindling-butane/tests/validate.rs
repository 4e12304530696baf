//! Raw Ignition validation against Debian's real `ignition-validate` (Ignition 2.14).
//!
//! Fixtures in `fixtures/ign/`:
//! * `invalid-*.ign`: both validators must reject them; when `ignition-validate` reports
//!   `error at $.PATH, line L col C: MSG`, kindling must report the same path, message, line
//!   and column.
//! * `newer-*.ign`: rejected by current Ignition (and kindling) but not yet by 2.14.
//! * `warn-*.ign`: accepted with a warning by both.
//! * `valid-*.ign`: accepted by both without errors.

mod common;
use kindling_butane::{Severity, validate_ignition};
use std::path::PathBuf;

fn fixtures() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ign");
    let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ign"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Parses `error at $.a.b, line 1 col 2: message`.
fn first_located(out: &str, kind: &str) -> Option<(String, usize, usize, String)> {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{kind} at $")))?;
    let rest = line.strip_prefix(&format!("{kind} at $"))?;
    let (path, rest) = rest.split_once(", line ")?;
    let (l, rest) = rest.split_once(" col ")?;
    let (c, msg) = rest.split_once(": ")?;
    Some((
        path.trim_start_matches('.').to_string(),
        l.parse().ok()?,
        c.parse().ok()?,
        msg.to_string(),
    ))
}

#[test]
fn fixtures_agree_with_ignition_validate() {
    let all = fixtures();
    assert!(all.len() >= 20, "fixtures missing");
    for (name, text) in all {
        let r = validate_ignition(text.as_bytes());
        let iv = common::ignition_validate(&text);
        if name.starts_with("invalid-") || name.starts_with("newer-") {
            assert!(r.has_errors(), "{name}: kindling accepted it");
        } else {
            assert!(!r.has_errors(), "{name}: kindling rejected it: {r}");
        }
        if name.starts_with("warn-") {
            assert!(r.has_warnings(), "{name}: no warning");
        }
        let Some((ok, out)) = iv else { continue };
        if name.starts_with("invalid-") {
            assert!(!ok, "{name}: ignition-validate accepted it");
            if let Some((path, line, col, msg)) = first_located(&out, "error") {
                let found = r.errors().any(|e| {
                    e.path == path
                        && e.message == msg
                        && e.line == Some(line)
                        && e.column == Some(col)
                });
                assert!(
                    found,
                    "{name}: ignition-validate said `{out}`, kindling said `{r}`"
                );
            }
        } else {
            assert!(ok, "{name}: ignition-validate rejected it: {out}");
        }
        if name.starts_with("warn-")
            && let Some((path, line, col, msg)) = first_located(&out, "warning")
        {
            let found = r.warnings().any(|e| {
                e.path == path
                    && e.line == Some(line)
                    && e.column == Some(col)
                    && e.message.eq_ignore_ascii_case(&msg)
            });
            assert!(
                found,
                "{name}: ignition-validate said `{out}`, kindling said `{r}`"
            );
        }
    }
}

#[test]
fn json_syntax_errors_have_positions() {
    let r = validate_ignition(
        b"{\"ignition\": {\"version\": \"3.0.0\"},\n  \"storage\": {\"files\": [}\n}",
    );
    let e = r.errors().next().unwrap();
    assert_eq!((e.line, e.column), (Some(2), Some(25)));
    let r = validate_ignition(b"  ");
    assert_eq!(r.errors().next().unwrap().message, "not a config (empty)");
}

#[test]
fn spec_versions_3_0_to_3_5_accepted_2x_rejected() {
    for v in ["3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0"] {
        let r = validate_ignition(format!("{{\"ignition\":{{\"version\":\"{v}\"}}}}").as_bytes());
        assert!(r.is_empty(), "{v}: {r}");
    }
    let r = validate_ignition(br#"{"ignition":{"version":"2.2.0"}}"#);
    assert!(
        r.errors()
            .next()
            .unwrap()
            .message
            .contains("spec 2.x is not supported")
    );
    let r = validate_ignition(
        br#"{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/a","mode":2541}]}}"#,
    );
    assert_eq!(
        r.entries
            .iter()
            .filter(|e| e.severity == Severity::Warning)
            .count(),
        1,
        "{r}"
    );
}
