#![allow(dead_code)]
use std::path::Path;
use std::process::Command;

/// Runs Debian's `ignition-validate` (Ignition 2.14: specs 3.0.0-3.3.0) on `json`.
/// Returns None when the binary is missing.
pub fn ignition_validate(json: &str) -> Option<(bool, String)> {
    let bin = Path::new("/usr/bin/ignition-validate");
    if !bin.exists() {
        eprintln!("SKIP: /usr/bin/ignition-validate missing (apt-get install -y ignition)");
        return None;
    }
    let dir = tempfile::tempdir().ok()?;
    let f = dir.path().join("config.ign");
    std::fs::write(&f, json).ok()?;
    let out = Command::new(bin).arg(&f).output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}
