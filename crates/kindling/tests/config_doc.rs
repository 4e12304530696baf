//! docs/configuration.md is generated (`kindling config-doc`, from the configuration types,
//! the command line and crates/kindling/src/config_doc.md): this test fails when the file in
//! the repository differs from what the code generates. `KINDLING_BLESS=1` rewrites it.

use std::path::PathBuf;
use std::process::Command;

const REGENERATE: &str = "cargo run -q -p kindling -- config-doc > docs/configuration.md";

#[test]
fn configuration_md_is_generated_from_the_code() {
    let out = Command::new(env!("CARGO_BIN_EXE_kindling"))
        .arg("config-doc")
        // The document must not depend on who generates it.
        .env_remove("KINDLING_CONFIG")
        .env_remove("KINDLING_DATA_DIR")
        .env_remove("KINDLING_STATE_DIR")
        .env_remove("KINDLING_CACHE_DIR")
        .output()
        .expect("running kindling config-doc");
    assert!(
        out.status.success(),
        "kindling config-doc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("UTF-8");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    if std::env::var_os("KINDLING_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("writing docs/configuration.md");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != generated {
        let first = current
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| current.lines().count().min(generated.lines().count()));
        let line = |s: &str| s.lines().nth(first).unwrap_or("(end of file)").to_string();
        panic!(
            "docs/configuration.md is out of date (it is generated from the configuration \
             types' doc comments and defaults, the flags, and crates/kindling/src/config_doc.md). \
             Regenerate it from the repository's root with:\n\n    {REGENERATE}\n\n\
             (or KINDLING_BLESS=1 cargo test -p kindling --test config_doc)\n\n\
             first difference at line {}:\n  file:      {}\n  generated: {}",
            first + 1,
            line(&current),
            line(&generated),
        );
    }
}

/// Two runs give the same bytes (no map order, environment or time in the output).
#[test]
fn config_doc_is_deterministic() {
    let run = |envs: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kindling"));
        c.arg("config-doc");
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().expect("running kindling config-doc").stdout
    };
    assert_eq!(
        run(&[]),
        run(&[
            ("KINDLING_HTTP_LISTEN", "127.0.0.1:9"),
            ("STATE_DIRECTORY", "/tmp/x"),
            ("HOME", "/nonexistent")
        ])
    );
}
