//! The etcd store over TLS with client certificates (etcd's `--client-cert-auth`): a
//! server and `kindling store import` with the right client certificate work; one from
//! another CA is refused with a message; an https:// endpoint without `ca_file` is a
//! configuration error. A real etcd (Debian's etcd-server) on loopback.

#![cfg(feature = "etcd")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Scratch, Server, free_port, pki::pki, request};
use kindling_testkit::Proc;

fn kindling(config: &Path, args: &[&str]) -> (bool, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kindling"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KINDLING_") {
            c.env_remove(k);
        }
    }
    let o = c.arg("--config").arg(config).args(args).output().unwrap();
    (
        o.status.success(),
        format!(
            "{} {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn store_config(port: u16, pki: &Path, client: &str, extra: &str) -> String {
    format!(
        "[store]\nbackend = \"etcd\"\nendpoints = [\"https://127.0.0.1:{port}\"]\n\
         prefix = \"/tls/\"\ntimeout_secs = 2\nfirst_load_secs = 5\n\
         ca_file = \"{d}/ca.pem\"\ncert_file = \"{d}/{client}.pem\"\nkey_file = \"{d}/{client}.key\"\n{extra}",
        d = pki.display()
    )
}

#[test]
fn client_certificates_are_used_and_checked() {
    if !Path::new("/usr/bin/etcd").is_file() {
        eprintln!("/usr/bin/etcd not found (Debian etcd-server, scripts/install-deps); skipping");
        return;
    }
    let scratch = Scratch::new("fleet-tls");
    let dir = scratch.root.join("pki");
    std::fs::create_dir_all(&dir).unwrap();
    pki().write(&dir);
    let (client, peer) = (free_port(), free_port());
    let d = |f: &str| dir.join(f).display().to_string();
    let mut etcd = Command::new("/usr/bin/etcd");
    etcd.args(["--name", "tls", "--data-dir"])
        .arg(scratch.root.join("etcd"))
        .arg(format!("--listen-client-urls=https://127.0.0.1:{client}"))
        .arg(format!(
            "--advertise-client-urls=https://127.0.0.1:{client}"
        ))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
        ))
        .arg(format!("--initial-cluster=tls=http://127.0.0.1:{peer}"))
        .arg(format!("--cert-file={}", d("server.pem")))
        .arg(format!("--key-file={}", d("server.key")))
        .arg(format!("--trusted-ca-file={}", d("ca.pem")))
        .args([
            "--client-cert-auth",
            "--logger",
            "zap",
            "--log-level",
            "info",
        ]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ETCD") {
            etcd.env_remove(k);
        }
    }
    let etcd = Proc::spawn(etcd);
    etcd.wait_for(
        "serving client traffic securely",
        true,
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("etcd did not start: {e}"));

    // Import with the client certificate of the CA etcd trusts.
    let data = scratch.root.join("data");
    for d in ["groups", "profiles", "assets"] {
        std::fs::create_dir_all(data.join(d)).unwrap();
    }
    std::fs::write(
        data.join("profiles/p.json"),
        r#"{"id":"p","boot":{"kernel":"/assets/tls-kernel"}}"#,
    )
    .unwrap();
    std::fs::write(
        data.join("groups/g.json"),
        r#"{"id":"g","profile":"p","selector":{"mac":"52:54:00:00:00:41"}}"#,
    )
    .unwrap();
    let good = scratch.root.join("good.toml");
    std::fs::write(&good, store_config(client, &dir, "client", "")).unwrap();
    let (ok, out) = kindling(&good, &["store", "import", data.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("imported 2 object(s)"), "{out}");

    // A server with it serves what etcd holds.
    let work = scratch.root.join("server");
    std::fs::create_dir_all(&work).unwrap();
    let server = Server::start_with(
        &data,
        &work,
        &store_config(client, &dir, "client", ""),
        &[],
        |_| {},
    );
    let r = request(server.addr, "GET", "/ipxe?mac=52:54:00:00:00:41", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("tls-kernel"));

    // A certificate from another CA: refused, and said so.
    let bad = scratch.root.join("bad.toml");
    std::fs::write(&bad, store_config(client, &dir, "other", "")).unwrap();
    let (ok, out) = kindling(
        &bad,
        &["store", "export", scratch.root.join("x").to_str().unwrap()],
    );
    assert!(!ok, "a foreign client certificate was accepted: {out}");
    assert!(out.contains("etcd"), "message: {out:?}");

    // https:// without a CA: a configuration error naming the key.
    let no_ca = scratch.root.join("no-ca.toml");
    std::fs::write(
        &no_ca,
        format!("[store]\nbackend = \"etcd\"\nendpoints = [\"https://127.0.0.1:{client}\"]\n"),
    )
    .unwrap();
    let (ok, out) = kindling(&no_ca, &["store", "export", "/nonexistent"]);
    assert!(!ok);
    assert!(out.contains("ca_file"), "{out}");
    drop(etcd);
}
