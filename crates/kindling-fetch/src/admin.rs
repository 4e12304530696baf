//! The command-line side of a Kindling admin listener: one blocking request, with the
//! bearer token read from a file, on a current-thread runtime. Used by
//! `kindling machines --server`, `kindling group|profile|... --server` and the other
//! commands that talk to a running server.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{ClientOptions, builder, reqwest};

/// How a command proves itself to the admin listener: the flags every command that talks
/// to a running server takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdminAuth {
    /// The admin listener's bearer token, in a file: its first line (`[admin] token_file`).
    #[arg(long, global = true, env = "KINDLING_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// A client certificate (PEM) for an admin listener with TLS (`[admin] client_ca`
    /// must trust it); with --client-key and an https:// --server.
    #[arg(
        long,
        global = true,
        env = "KINDLING_CLIENT_CERT",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        global = true,
        env = "KINDLING_CLIENT_KEY",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
    /// The CA certificates (PEM) the admin listener's own certificate must chain to
    /// (default: the system's roots).
    #[arg(long, global = true, env = "KINDLING_SERVER_CA")]
    pub server_ca: Option<PathBuf>,
}

/// A server's answer.
#[derive(Debug, Clone)]
pub struct AdminAnswer {
    pub status: u16,
    /// The `ETag`, without its quotes.
    pub etag: Option<String>,
    pub body: Vec<u8>,
}

impl AdminAnswer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// What a failed answer says: its JSON `error` field, else its body.
    pub fn error_message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(str::to_string))
            .unwrap_or_else(|| self.text().trim().to_string())
    }

    /// A failed answer for the operator: `{server} answered {status}: {message}`, and what
    /// to change when the status says the credentials are missing or wrong (401, 403) or
    /// `server` is not the admin listener (a 404 that is not the API's JSON).
    pub fn refusal(&self, server: &str) -> String {
        let hint = match self.status {
            401 => " (--token-file: the admin token)",
            403 => " (the server's admin listener needs a token_file or TLS for this API)",
            404 if !self.body.trim_ascii_start().starts_with(b"{") => {
                " (the API is on the admin listener, http://127.0.0.1:8082 by default, not on the boot port)"
            }
            _ => "",
        };
        format!(
            "{server} answered {}: {}{hint}",
            self.status,
            self.error_message()
        )
    }
}

/// Why a request to the admin listener failed before it had an answer.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("--server {0:?} is not an http:// or https:// URL")]
    Url(String),
    #[error("reading the token file {path}: {source}")]
    Token { path: PathBuf, source: io::Error },
    #[error("reading {path}: {source}")]
    File { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Pem {
        path: PathBuf,
        source: reqwest::Error,
    },
    #[error("starting the async runtime: {0}")]
    Runtime(io::Error),
    #[error("building the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("connecting to {server}: {source}")]
    Connect {
        server: String,
        source: reqwest::Error,
    },
    #[error("reading the answer of {server}: {source}")]
    Read {
        server: String,
        source: reqwest::Error,
    },
}

impl AdminError {
    /// Nothing listens there (connection refused): no server runs.
    pub fn nothing_listens(&self) -> bool {
        matches!(self, AdminError::Connect { source, .. } if source.is_connect())
    }
}

/// The bearer token in `path`: its first line, surrounding whitespace dropped.
pub fn read_token(path: &Path) -> io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

/// The base URL of `server` (`host:port`, or an `http://`/`https://` URL whose path is
/// ignored).
fn base_url(server: &str) -> Result<String, AdminError> {
    let (scheme, rest) = match server.split_once("://") {
        Some((s, rest)) if s == "http" || s == "https" => (s, rest),
        Some(_) => return Err(AdminError::Url(server.to_string())),
        None => ("http", server),
    };
    let hostport = rest.split('/').next().unwrap_or(rest);
    if hostport.is_empty() {
        return Err(AdminError::Url(server.to_string()));
    }
    Ok(format!("{scheme}://{hostport}"))
}

fn read(path: &Path) -> Result<Vec<u8>, AdminError> {
    std::fs::read(path).map_err(|source| AdminError::File {
        path: path.to_path_buf(),
        source,
    })
}

fn pem<T>(
    path: &Path,
    bytes: &[u8],
    parse: impl FnOnce(&[u8]) -> reqwest::Result<T>,
) -> Result<T, AdminError> {
    parse(bytes).map_err(|source| AdminError::Pem {
        path: path.to_path_buf(),
        source,
    })
}

/// The client for `auth`: the server's CA and a client certificate when given.
fn admin_client(auth: &AdminAuth) -> Result<reqwest::Client, AdminError> {
    let mut b = builder(&ClientOptions {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Some(Duration::from_secs(30)),
        timeout: None,
        max_redirects: 0,
    });
    if let Some(ca) = &auth.server_ca {
        let bytes = read(ca)?;
        b = b.tls_certs_only(pem(ca, &bytes, reqwest::Certificate::from_pem_bundle)?);
    }
    if let (Some(cert), Some(key)) = (&auth.client_cert, &auth.client_key) {
        let mut bytes = read(cert)?;
        bytes.push(b'\n');
        bytes.extend(read(key)?);
        b = b.identity(pem(cert, &bytes, reqwest::Identity::from_pem)?);
    }
    b.build().map_err(AdminError::Client)
}

/// One request to the admin listener at `server`: `path` (with its query, already
/// escaped), extra `headers`, an optional `body`; credentials from `auth`.
pub fn admin_request(
    server: &str,
    auth: &AdminAuth,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> Result<AdminAnswer, AdminError> {
    let url = reqwest::Url::parse(&format!("{}{path}", base_url(server)?))
        .map_err(|_| AdminError::Url(server.to_string()))?;
    let token = match auth.token_file.as_deref() {
        Some(p) => Some(read_token(p).map_err(|source| AdminError::Token {
            path: p.to_path_buf(),
            source,
        })?),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AdminError::Runtime)?;
    let c = admin_client(auth)?;
    rt.block_on(async {
        let mut rb = c
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(t) = &token {
            rb = rb.bearer_auth(t);
        }
        for (h, v) in headers {
            rb = rb.header(*h, v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let resp = rb.send().await.map_err(|e| AdminError::Connect {
            server: server.to_string(),
            source: e.without_url(),
        })?;
        let status = resp.status().as_u16();
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"').to_string());
        let body = resp.bytes().await.map_err(|e| AdminError::Read {
            server: server.to_string(),
            source: e.without_url(),
        })?;
        Ok(AdminAnswer {
            status,
            etag,
            body: body.to_vec(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_and_error_messages() {
        assert_eq!(base_url("127.0.0.1:8082").unwrap(), "http://127.0.0.1:8082");
        assert_eq!(
            base_url("http://127.0.0.1:8082/api/").unwrap(),
            "http://127.0.0.1:8082"
        );
        assert_eq!(base_url("https://h:1").unwrap(), "https://h:1");
        assert!(base_url("ftp://h").is_err());
        let a = AdminAnswer {
            status: 403,
            etag: None,
            body: br#"{"error": "needs \"credentials\""}"#.to_vec(),
        };
        assert_eq!(a.error_message(), r#"needs "credentials""#);
        let b = AdminAnswer {
            status: 404,
            etag: None,
            body: b"404 page not found\n".to_vec(),
        };
        assert_eq!(b.error_message(), "404 page not found");
        assert_eq!(
            b.refusal("h:1"),
            "h:1 answered 404: 404 page not found (the API is on the admin listener, http://127.0.0.1:8082 by default, not on the boot port)"
        );
        assert_eq!(
            a.refusal("h:1"),
            r#"h:1 answered 403: needs "credentials" (the server's admin listener needs a token_file or TLS for this API)"#
        );
    }
}
