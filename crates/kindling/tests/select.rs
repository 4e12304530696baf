//! `kindling select` arguments (issue 15): a bare MAC address means `mac=<it>`;
//! any other argument without `=` is a usage error naming it (exit code 2),
//! never a silently made-up label.

use std::path::PathBuf;
use std::process::{Command, Output};

fn select(args: &[&str]) -> Output {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed");
    Command::new(env!("CARGO_BIN_EXE_kindling"))
        .arg("select")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("KINDLING_CONFIG")
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn bare_mac_means_mac_label() {
    for mac in ["00:24:1d:18:28:09", "00-24-1D-18-28-09"] {
        let out = select(&["--json", mac]);
        let v = json(&out);
        assert_eq!(out.status.code(), Some(0), "{v}");
        assert_eq!(
            v["labels"],
            serde_json::json!({"mac": "00:24:1d:18:28:09"}),
            "{v}"
        );
        assert_eq!(v["group"]["file"], "groups/fs01.json", "{v}");
    }
    // The same decision as the explicit form.
    let bare = json(&select(&["--json", "00:24:1d:18:28:09"]));
    let explicit = json(&select(&["--json", "mac=00:24:1d:18:28:09"]));
    assert_eq!(bare, explicit);
}

#[test]
fn bare_mac_with_other_labels() {
    let out = select(&["--json", "os=installed", "00:24:1d:18:28:09"]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(
        v["labels"],
        serde_json::json!({"mac": "00:24:1d:18:28:09", "os": "installed"}),
        "{v}"
    );
}

#[test]
fn argument_without_equals_is_a_usage_error() {
    for arg in ["installed", "00:24:1d:18:28", "zz:zz:zz:zz:zz:zz"] {
        let out = select(&["mac=00:24:1d:18:28:09", arg]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{arg}: {err}");
        assert!(out.stdout.is_empty(), "{arg}: {err}");
        assert!(err.contains(&format!("{arg:?}")), "{arg}: {err}");
        assert!(err.contains("LABEL=VALUE"), "{arg}: {err}");
    }
}

#[test]
fn help_says_a_bare_mac_means_mac() {
    let out = Command::new(env!("CARGO_BIN_EXE_kindling"))
        .args(["select", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{help}");
    assert!(help.contains("A bare MAC address"), "{help}");
    assert!(help.contains("means `mac=<it>`"), "{help}");
}
