//! The operator surface lives on the admin listener, never on the boot listener; an
//! admin listener that needs credentials refuses requests without them (bearer token,
//! mTLS). The real binary, real sockets, loopback only.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::pki::pki;
use common::{Scratch, Server, request};

const ADMIN_PATHS: [&str; 5] = [
    "/api/v1/machines",
    "/metrics",
    "/ui/",
    "/api/v1/events",
    "/api/v1/status",
];

fn data_dir(root: &Path) {
    for d in ["groups", "profiles", "ignition", "assets"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
}

/// The status of a request, reading only the response head (the event stream never ends).
fn head_status(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<u16, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    read_status(&mut s)
}

fn read_status(s: &mut impl Read) -> Result<u16, String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&buf))),
            Ok(_) => buf.push(byte[0]),
            Err(e) => return Err(format!("read: {e}")),
        }
        if buf.len() > 64 * 1024 {
            return Err("head too long".into());
        }
    }
    let text = String::from_utf8_lossy(&buf);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("status line of {text:?}"))
}

#[test]
fn admin_surface_is_on_the_admin_listener_only() {
    let scratch = Scratch::new("admin-split");
    let data = scratch.root.join("data");
    data_dir(&data);
    let server = Server::start(&data, &scratch.root);
    for p in ADMIN_PATHS {
        assert_eq!(
            head_status(server.addr, p, &[]),
            Ok(404),
            "{p} must not be on the boot listener"
        );
        assert_eq!(
            head_status(server.admin, p, &[]),
            Ok(200),
            "{p} on the admin listener"
        );
    }
    // Other spellings that clean to the same paths are not a way in either.
    for p in [
        "/api/v1/../v1/machines",
        "/ui",
        "//metrics",
        "/api/v1/machines/52:54:00:12:34:56",
    ] {
        let s = head_status(server.addr, p, &[]).unwrap();
        assert!(s == 404 || s == 301, "{p}: {s}");
        if s == 301 {
            let r = request(server.addr, "GET", p, &[], b"").unwrap();
            let loc = r
                .header("location")
                .unwrap()
                .unwrap_or_default()
                .to_string();
            assert_eq!(head_status(server.addr, &loc, &[]), Ok(404), "{p} -> {loc}");
        }
    }
    // Directory listings are part of what the boot listener no longer shows by default
    // (`[http] asset_listings`; the conformance suite turns them on).
    assert_eq!(head_status(server.addr, "/assets/", &[]), Ok(404));
    // Health probes stay on the boot listener; the admin listener has no matchbox routes.
    assert_eq!(head_status(server.addr, "/readyz", &[]), Ok(200));
    assert_eq!(head_status(server.addr, "/healthz", &[]), Ok(200));
    assert_eq!(head_status(server.addr, "/boot.ipxe", &[]), Ok(200));
    assert_eq!(head_status(server.admin, "/boot.ipxe", &[]), Ok(404));
    assert_eq!(
        head_status(server.admin, "/ignition?mac=52:54:00:12:34:56", &[]),
        Ok(404)
    );
    assert_eq!(head_status(server.admin, "/assets/", &[]), Ok(404));
    // The admin listener cleans paths like the boot listener.
    assert_eq!(
        head_status(server.admin, "/api/v1/../v1/status", &[]),
        Ok(301)
    );
    assert_eq!(head_status(server.admin, "/api/v1/%zz", &[]), Ok(400));
}

#[test]
fn admin_listener_can_be_turned_off() {
    let scratch = Scratch::new("admin-off");
    let data = scratch.root.join("data");
    data_dir(&data);
    let server = Server::start_with(
        &data,
        &scratch.root,
        "[admin]\nenabled = false\n",
        &[],
        |_| {},
    );
    assert_eq!(head_status(server.addr, "/metrics", &[]), Ok(404));
    assert!(
        server.log_has("admin listener off"),
        "{}",
        server.log_text()
    );
}

#[test]
fn exposed_admin_without_credentials_refuses_to_start() {
    let scratch = Scratch::new("admin-exposed");
    let data = scratch.root.join("data");
    data_dir(&data);
    // Only the start-up error is checked: nothing is bound, no traffic leaves loopback.
    for (config, extra) in [
        ("", vec!["--admin-listen", "0.0.0.0:0"]),
        ("", vec!["--admin-listen", "[::]:0"]),
        ("[admin]\nrequire_auth = true\n", vec![]),
    ] {
        let err = match Server::try_start_with(&data, &scratch.root, config, &extra, |_| {}) {
            Ok(_) => panic!(
                "started with an exposed admin listener and no credentials: {config:?} {extra:?}"
            ),
            Err(e) => e,
        };
        assert!(err.contains("exited with exit status: 2"), "{err}");
        assert!(err.contains("without credentials"), "{err}");
    }
}

fn write_token(dir: &Path, token: &str) -> std::path::PathBuf {
    let p = dir.join("admin.token");
    std::fs::write(&p, format!("{token}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

#[test]
fn bearer_token_is_required_when_auth_is() {
    let scratch = Scratch::new("admin-token");
    let data = scratch.root.join("data");
    data_dir(&data);
    let token = "3f1c0b8e5d2a4c6f9e7b1a2d3c4e5f60";
    let file = write_token(&scratch.root, token);
    let config = format!(
        "[admin]\nrequire_auth = true\ntoken_file = \"{}\"\n",
        file.display()
    );
    let server = Server::start_with(&data, &scratch.root, &config, &[], |_| {});
    let good = format!("Bearer {token}");
    let wrong = format!("Bearer {}x", &token[..token.len() - 1]);
    for p in ADMIN_PATHS {
        let r = request(server.admin, "GET", p, &[], b"");
        if p != "/api/v1/events" {
            let r = r.unwrap();
            assert_eq!(r.status, 401, "{p} without a token");
            assert_eq!(
                r.header("www-authenticate").unwrap(),
                Some("Bearer realm=\"kindling-admin\"")
            );
        }
        assert_eq!(
            head_status(server.admin, p, &[]),
            Ok(401),
            "{p} without a token"
        );
        assert_eq!(
            head_status(server.admin, p, &[("Authorization", &wrong)]),
            Ok(401),
            "{p} with a wrong token"
        );
        assert_eq!(
            head_status(server.admin, p, &[("Authorization", "Basic YTpi")]),
            Ok(401),
            "{p} with another scheme"
        );
        assert_eq!(
            head_status(server.admin, p, &[("Authorization", &good)]),
            Ok(200),
            "{p} with the token"
        );
        // Still never on the boot listener, token or not.
        assert_eq!(
            head_status(server.addr, p, &[("Authorization", &good)]),
            Ok(404)
        );
    }
    let r = request(
        server.admin,
        "GET",
        "/metrics",
        &[("Authorization".into(), good.clone())],
        b"",
    )
    .unwrap();
    let text = String::from_utf8_lossy(&r.body);
    let refused = text
        .lines()
        .find(|l| l.starts_with("kindling_admin_auth_refused_total{listener=\"admin\"}"))
        .unwrap_or_else(|| panic!("{text}"));
    let n: u64 = refused.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 15, "{refused}");
    // The token never reaches the log.
    assert!(!server.log_text().contains(token));
}

// ---- mTLS -------------------------------------------------------------------------

/// GET `path` over TLS with this client certificate (or none); the status, or why not.
fn tls_get(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<(&str, &str)>,
    path: &str,
) -> Result<u16, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<_> = CertificateDer::pem_slice_iter(cert.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).map_err(|e| e.to_string())?;
    let sock =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sock.set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("write: {e}"))?;
    read_status(&mut tls)
}

#[test]
fn mtls_admits_only_clients_of_the_configured_ca() {
    let scratch = Scratch::new("admin-mtls");
    let data = scratch.root.join("data");
    data_dir(&data);
    let pki = pki();
    let put = |name: &str, text: &str| {
        let p = scratch.root.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cert = put("server.pem", &pki.server_cert);
    let key = put("server.key", &pki.server_key);
    let ca = put("clients-ca.pem", &pki.ca_pem);
    let config = format!(
        "[admin]\nrequire_auth = true\ntls_cert = \"{}\"\ntls_key = \"{}\"\nclient_ca = \"{}\"\n",
        cert.display(),
        key.display(),
        ca.display()
    );
    let server = Server::start_with(&data, &scratch.root, &config, &[], |_| {});
    for p in [
        "/api/v1/machines",
        "/metrics",
        "/ui/",
        "/api/v1/status",
        "/api/v1/events",
    ] {
        assert_eq!(
            tls_get(
                server.admin,
                &pki.ca_pem,
                Some((&pki.client_cert, &pki.client_key)),
                p
            ),
            Ok(200),
            "{p} with a good client certificate"
        );
        let none = tls_get(server.admin, &pki.ca_pem, None, p);
        assert!(none.is_err(), "{p} without a client certificate: {none:?}");
        let other = tls_get(
            server.admin,
            &pki.ca_pem,
            Some((&pki.other_cert, &pki.other_key)),
            p,
        );
        assert!(
            other.is_err(),
            "{p} with another CA's certificate: {other:?}"
        );
    }
    // Plain HTTP gets no answer on a TLS listener.
    let plain = head_status(server.admin, "/metrics", &[]);
    assert!(plain.is_err(), "{plain:?}");
    assert!(
        server.log_has("TLS handshake refused"),
        "{}",
        server.log_text()
    );

    // The CLI speaks mTLS too: --server-ca for the listener's certificate, --client-cert
    // and --client-key for its own.
    let client_cert = put("client.pem", &pki.client_cert);
    let client_key = put("client.key", &pki.client_key);
    let other_cert = put("other.pem", &pki.other_cert);
    let other_key = put("other.key", &pki.other_key);
    let url = format!("https://{}", server.admin);
    let cli = |cert: &Path, key: &Path| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"))
            .env_remove("KINDLING_SERVER")
            .args(["machines", "--server", &url, "--server-ca"])
            .arg(&ca)
            .arg("--client-cert")
            .arg(cert)
            .arg("--client-key")
            .arg(key)
            .arg("--json")
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (ok, out) = cli(&client_cert, &client_key);
    assert!(ok && out.contains("\"machines\""), "{out}");
    let (ok, out) = cli(&other_cert, &other_key);
    assert!(!ok, "another CA's client certificate: {out}");
}
