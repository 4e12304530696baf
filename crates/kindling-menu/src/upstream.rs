//! The HTTP(S) client the cache fetches upstream files with: hyper-util's
//! client over rustls (ring, webpki roots), following redirects.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kindling_guard::chain;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Why an upstream request failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("bad URL {0:?}")]
    BadUrl(String),
    #[error("{url}: {why}")]
    Request { url: String, why: String },
    #[error("{url}: no response within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("{url}: upstream answered {status}")]
    Status { url: String, status: StatusCode },
    #[error("{url}: more than {max} redirects")]
    Redirects { url: String, max: u32 },
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// A shared client.
#[derive(Clone)]
pub struct Upstream {
    client: Client<Connector, Empty<Bytes>>,
    head_timeout: Duration,
    max_redirects: u32,
}

/// Resolves a `Location` against the URL that sent it.
pub fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.parse().ok();
    }
    let scheme = base.scheme_str()?;
    let auth = base.authority()?.as_str();
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}").parse().ok();
    }
    if location.starts_with('/') {
        return format!("{scheme}://{auth}{location}").parse().ok();
    }
    let path = base.path();
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    format!("{scheme}://{auth}{dir}/{location}").parse().ok()
}

impl Upstream {
    pub fn new(head_timeout: Duration, max_redirects: u32) -> Result<Upstream, UpstreamError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| UpstreamError::Tls(chain(&e)))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Upstream {
            client,
            head_timeout,
            max_redirects,
        })
    }

    /// GETs `url`, following redirects, and returns a 200 response (or,
    /// with `range_ok`, a 206) with the URL it finally came from.
    pub async fn get(
        &self,
        url: &str,
        extra: &[(header::HeaderName, String)],
    ) -> Result<(Response<Incoming>, String), UpstreamError> {
        let mut uri: Uri = url
            .parse()
            .map_err(|_| UpstreamError::BadUrl(url.to_string()))?;
        for _ in 0..=self.max_redirects {
            let mut b = Request::get(uri.clone()).header(
                header::USER_AGENT,
                concat!("kindling/", env!("CARGO_PKG_VERSION")),
            );
            for (k, v) in extra {
                b = b.header(k, v);
            }
            let req = b.body(Empty::new()).map_err(|e| UpstreamError::Request {
                url: uri.to_string(),
                why: chain(&e),
            })?;
            let resp = match tokio::time::timeout(self.head_timeout, self.client.request(req)).await
            {
                Err(_) => {
                    return Err(UpstreamError::Timeout {
                        url: uri.to_string(),
                        secs: self.head_timeout.as_secs(),
                    });
                }
                Ok(Err(e)) => {
                    // hyper-util says `client error (Connect)`; the cause
                    // (`Connection refused`, `dns error: ...`, a TLS alert)
                    // is further down the chain.
                    return Err(UpstreamError::Request {
                        url: uri.to_string(),
                        why: chain(&e),
                    });
                }
                Ok(Ok(r)) => r,
            };
            let status = resp.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let loc = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| resolve(&uri, l));
                match loc {
                    Some(next) => {
                        uri = next;
                        continue;
                    }
                    None => {
                        return Err(UpstreamError::Request {
                            url: uri.to_string(),
                            why: format!("{status} without a usable Location"),
                        });
                    }
                }
            }
            if status != StatusCode::OK && status != StatusCode::PARTIAL_CONTENT {
                return Err(UpstreamError::Status {
                    url: uri.to_string(),
                    status,
                });
            }
            return Ok((resp, uri.to_string()));
        }
        Err(UpstreamError::Redirects {
            url: url.to_string(),
            max: self.max_redirects,
        })
    }

    /// GETs a small text file (checksums), at most `limit` bytes.
    pub async fn get_text(
        &self,
        url: &str,
        limit: usize,
        idle: Duration,
    ) -> Result<String, UpstreamError> {
        let (resp, final_url) = self.get(url, &[]).await?;
        let mut body = resp.into_body();
        let mut out = Vec::new();
        loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => {
                    return Err(UpstreamError::Timeout {
                        url: final_url,
                        secs: idle.as_secs(),
                    });
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(UpstreamError::Request {
                        url: final_url,
                        why: chain(&e),
                    });
                }
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(d) = frame.into_data() {
                out.extend_from_slice(&d);
                if out.len() > limit {
                    return Err(UpstreamError::Request {
                        url: final_url,
                        why: format!("larger than {limit} bytes"),
                    });
                }
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Looks `name` up in a checksum file; returns the lowercase hex SHA-256.
pub fn find_sum(text: &str, format: crate::catalog::SumsFormat, name: &str) -> Option<String> {
    use crate::catalog::SumsFormat;
    let norm = |s: &str| {
        s.trim()
            .trim_start_matches('*')
            .trim_start_matches("./")
            .to_string()
    };
    let want = norm(name);
    let hex_ok = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
    match format {
        SumsFormat::Sha256sums => text.lines().find_map(|l| {
            let (h, n) = l.trim().split_once(char::is_whitespace)?;
            (hex_ok(h) && norm(n) == want).then(|| h.to_ascii_lowercase())
        }),
        SumsFormat::Treeinfo => {
            let mut in_section = false;
            for l in text.lines() {
                let l = l.trim();
                if l.starts_with('[') {
                    in_section = l == "[checksums]";
                    continue;
                }
                if !in_section {
                    continue;
                }
                if let Some((n, v)) = l.split_once('=')
                    && norm(n) == want
                    && let Some(h) = v.trim().strip_prefix("sha256:")
                    && hex_ok(h)
                {
                    return Some(h.to_ascii_lowercase());
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::SumsFormat;

    #[test]
    fn sums_formats() {
        let h = "a".repeat(64);
        let t = format!(
            "{h}  ./netboot/debian-installer/amd64/linux\n{} *ubuntu.iso\n",
            "B".repeat(64)
        );
        assert_eq!(
            find_sum(
                &t,
                SumsFormat::Sha256sums,
                "./netboot/debian-installer/amd64/linux"
            ),
            Some(h.clone())
        );
        assert_eq!(
            find_sum(&t, SumsFormat::Sha256sums, "ubuntu.iso"),
            Some("b".repeat(64))
        );
        assert_eq!(find_sum(&t, SumsFormat::Sha256sums, "nope"), None);
        let ti = format!(
            "[general]\nfoo = bar\n[checksums]\nimages/pxeboot/vmlinuz = sha256:{h}\nimages/efiboot.img = sha256:{}\n[stage2]\nimages/pxeboot/initrd.img = sha256:{h}\n",
            "c".repeat(64)
        );
        assert_eq!(
            find_sum(&ti, SumsFormat::Treeinfo, "images/pxeboot/vmlinuz"),
            Some(h.clone())
        );
        assert_eq!(
            find_sum(&ti, SumsFormat::Treeinfo, "images/pxeboot/initrd.img"),
            None
        );
    }

    #[test]
    fn redirects_resolve() {
        let b: Uri = "https://a.example/x/y/z.img".parse().unwrap();
        assert_eq!(
            resolve(&b, "/p/q").unwrap().to_string(),
            "https://a.example/p/q"
        );
        assert_eq!(
            resolve(&b, "w.img").unwrap().to_string(),
            "https://a.example/x/y/w.img"
        );
        assert_eq!(
            resolve(&b, "http://m.example/r").unwrap().to_string(),
            "http://m.example/r"
        );
        assert_eq!(
            resolve(&b, "//m.example/r").unwrap().to_string(),
            "https://m.example/r"
        );
    }
}
