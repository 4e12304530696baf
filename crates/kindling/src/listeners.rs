//! Setting up the HTTP listeners: the descriptor limit, the admin listener's credentials
//! (bearer token, mTLS).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_rustls::rustls;

/// Listen backlog of the TCP listeners, capped by the kernel at `net.core.somaxconn`
/// (4096 by default): a rack's connections arriving at once wait to be accepted instead
/// of being dropped (tokio's `bind` asks 1024; a dropped SYN costs its client a
/// retransmission a second later).
const BACKLOG: i32 = 4096;

/// A TCP listener on `addr` with [`BACKLOG`] (and `SO_REUSEADDR`, as tokio's `bind`).
pub fn bind_tcp(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    tokio::net::TcpListener::from_std(s.into())
}

/// The soft `RLIMIT_NOFILE` before and after [`raise_nofile`], and the hard limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileChange {
    pub old_soft: u64,
    pub new_soft: u64,
    pub hard: u64,
}

/// The soft limit to ask for, pure: the hard limit (as Go's runtime does), capped so that
/// an "unlimited" hard limit does not ask for more than the kernel's `nr_open` allows.
pub fn wanted_soft(soft: u64, hard: u64, nr_open: Option<u64>) -> u64 {
    let target = match nr_open {
        Some(n) => hard.min(n),
        None => hard,
    };
    soft.max(target)
}

/// The soft descriptor limit in force.
pub fn current_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. systemd's default soft limit is
/// 1,024, which a thousand idle connections exhaust; the hard limit is usually far higher.
pub fn raise_nofile() -> std::io::Result<NofileChange> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let old_soft: u64 = lim.rlim_cur;
    let hard: u64 = lim.rlim_max;
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let want = wanted_soft(old_soft, hard, nr_open);
    if want == old_soft {
        return Ok(NofileChange {
            old_soft,
            new_soft: old_soft,
            hard,
        });
    }
    let new = libc::rlimit {
        rlim_cur: want,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(NofileChange {
        old_soft,
        new_soft: want,
        hard,
    })
}

/// Reads the bearer token: the file's first line, surrounding whitespace dropped.
pub fn read_token(path: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the admin token file {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.len() < 16 {
        anyhow::bail!(
            "the admin token in {} is shorter than 16 characters (use e.g. `openssl rand -hex 32`)",
            path.display()
        );
    }
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o004 != 0
        {
            tracing::warn!(
                file = %path.display(),
                "the admin token file is readable by every user (chmod 600 it)"
            );
        }
    }
    Ok(token.as_bytes().to_vec())
}

/// TLS for the admin listener and the gRPC API: this certificate chain and key, client certificates required
/// and verified against `client_ca` (rustls with the ring provider).
pub fn tls_config(cert: &Path, key: &Path, client_ca: &Path) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the certificates in {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in {}", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key {}", key.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(client_ca)
        .with_context(|| format!("reading {}", client_ca.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the certificates in {}", client_ca.display()))?;
    for ca in cas {
        roots
            .add(ca)
            .with_context(|| format!("a CA certificate in {}", client_ca.display()))?;
    }
    if roots.is_empty() {
        anyhow::bail!("no CA certificate in {}", client_ca.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .context("building the client-certificate verifier")?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("the certificate and key do not match")?;
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_limit_goes_to_the_hard_limit() {
        assert_eq!(wanted_soft(1024, 524_288, None), 524_288);
        assert_eq!(wanted_soft(1024, 1024, None), 1024);
        // "unlimited" hard limit: capped by nr_open.
        assert_eq!(wanted_soft(1024, u64::MAX, Some(1_048_576)), 1_048_576);
        // Never lowered.
        assert_eq!(wanted_soft(4096, 2048, None), 4096);
    }

    #[test]
    fn short_tokens_are_refused() {
        let dir = std::env::temp_dir().join(format!("kindling-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t");
        std::fs::write(&p, "short\n").unwrap();
        assert!(read_token(&p).is_err());
        std::fs::write(&p, "  0123456789abcdef0123  \nsecond line\n").unwrap();
        assert_eq!(read_token(&p).unwrap(), b"0123456789abcdef0123");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
