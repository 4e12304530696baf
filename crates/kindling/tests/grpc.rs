//! matchbox's gRPC API as terraform-provider-matchbox uses it, checked with a client
//! Kindling did not write: Python grpcio (from PyPI, installed by scripts/install-deps
//! into a venv), stubs generated from crates/kindling-api/proto at test time. The real
//! binary on loopback, mutual TLS with a CA made here.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::pki::pki;
use common::{Scratch, Server, free_port};

/// The venv's python with grpcio and grpcio-tools (scripts/install-deps), or
/// `KINDLING_GRPC_PYTHON`.
fn grpc_python() -> Option<PathBuf> {
    let candidates = std::env::var_os("KINDLING_GRPC_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::env::var_os("KINDLING_GRPC_VENV").map(|v| PathBuf::from(v).join("bin/python3")))
        .chain(
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|c| c.join("kindling/grpc-venv/bin/python3")),
        );
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import grpc, grpc_tools"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Skips (with a message) only where scripts/install-deps could not have installed the
/// client: not root and not CI.
fn missing(test: &str, msg: &str) {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root || std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED {test}: {msg}");
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn terraform_provider_flow_with_python_grpcio() {
    let Some(python) = grpc_python() else {
        return missing(
            "terraform_provider_flow_with_python_grpcio",
            "grpcio and grpcio-tools are not installed (scripts/install-deps puts them in ~/.cache/kindling/grpc-venv)",
        );
    };
    let scratch = Scratch::new("grpc");
    let data = scratch.root.join("data");
    for d in ["groups", "profiles", "ignition", "generic", "assets"] {
        std::fs::create_dir_all(data.join(d)).unwrap();
    }
    let pem = scratch.root.join("pki");
    std::fs::create_dir_all(&pem).unwrap();
    pki().write(&pem);
    let rpc = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "[rpc]\ncert_file = \"{}\"\nkey_file = \"{}\"\nca_file = \"{}\"\n",
        pem.join("server.pem").display(),
        pem.join("server.key").display(),
        pem.join("ca.pem").display()
    );
    let server = Server::start_with(
        &data,
        &scratch.root,
        &config,
        &["--rpc-address", &rpc],
        |_| {},
    );
    let out = Command::new(&python)
        .arg(repo().join("tests/grpc/terraform_flow.py"))
        .arg("--rpc")
        .arg(&rpc)
        .arg("--http")
        .arg(server.addr.to_string())
        .arg("--proto-dir")
        .arg(repo().join("crates/kindling-api/proto"))
        .arg("--stubs")
        .arg(scratch.root.join("stubs"))
        .arg("--ca")
        .arg(pem.join("ca.pem"))
        .arg("--cert")
        .arg(pem.join("client.pem"))
        .arg("--key")
        .arg(pem.join("client.key"))
        .arg("--other-cert")
        .arg(pem.join("other.pem"))
        .arg("--other-key")
        .arg(pem.join("other.key"))
        .output()
        .expect("run terraform_flow.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "terraform_flow.py failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        server.log_text()
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    println!("{stdout}");
    // Nothing the API refused reached the disk, and what was deleted is gone.
    for area in ["groups", "profiles", "ignition", "generic"] {
        let left: Vec<_> = std::fs::read_dir(data.join(area))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{area}/ still holds {left:?}");
    }
    assert!(!data.join("profiles/evil.json").exists());
    // Writes are logged with who made them; refused handshakes are counted.
    assert!(server.log_has("written"), "{}", server.log_text());
    assert!(
        server.log_has("TLS handshake refused"),
        "{}",
        server.log_text()
    );
    let metrics = common::request(server.admin, "GET", "/metrics", &[], b"").unwrap();
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(
        text.lines().any(
            |l| l.starts_with("kindling_admin_tls_failed_total{listener=\"rpc\"}")
                && !l.ends_with(" 0")
        ),
        "{text}"
    );
}

/// The .proto files describe matchbox v0.9.1's wire interface exactly (packages,
/// services, methods, messages, field names, numbers, types, labels, JSON names,
/// reserved ranges): compared with the facts read off matchbox's own files
/// (tests/grpc/matchbox-v0.9.1.interface).
#[test]
fn protos_match_matchbox_wire_interface() {
    let Some(python) = grpc_python() else {
        return missing(
            "protos_match_matchbox_wire_interface",
            "grpcio-tools is not installed (scripts/install-deps)",
        );
    };
    let out = Command::new(&python)
        .arg(repo().join("scripts/matchbox-proto-diff"))
        .arg("--golden")
        .arg(repo().join("tests/grpc/matchbox-v0.9.1.interface"))
        .output()
        .expect("run scripts/matchbox-proto-diff");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("no differences (44 fields"), "{stdout}");
}
