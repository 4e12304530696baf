//! The HTTP(S) client the cache fetches upstream files with: Kindling's one
//! outbound client ([`kindling_fetch::client`]: reqwest over rustls with ring),
//! following redirects.

use std::time::Duration;

use hyper::{Response, StatusCode, header};
use kindling_fetch::{ClientOptions, reqwest};
use kindling_guard::chain;

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
    client: reqwest::Client,
    head_timeout: Duration,
    max_redirects: u32,
}

impl Upstream {
    /// `head_timeout`: to connect and to receive the response head.
    pub fn new(head_timeout: Duration, max_redirects: u32) -> Result<Upstream, UpstreamError> {
        let client = kindling_fetch::client(&ClientOptions {
            connect_timeout: head_timeout,
            // The cache applies its own idle timeout to bodies.
            read_timeout: None,
            timeout: None,
            max_redirects: max_redirects as usize,
        })
        .map_err(|e| UpstreamError::Tls(chain(&e)))?;
        Ok(Upstream {
            client,
            head_timeout,
            max_redirects,
        })
    }

    /// GETs `url`, following redirects; a 200 (or 206) response.
    pub(crate) async fn send(
        &self,
        url: &str,
        extra: &[(header::HeaderName, String)],
    ) -> Result<reqwest::Response, UpstreamError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|_| UpstreamError::BadUrl(url.to_string()))?;
        let mut req = self.client.get(parsed);
        for (k, v) in extra {
            req = req.header(k, v);
        }
        let resp = match tokio::time::timeout(self.head_timeout, req.send()).await {
            Err(_) => {
                return Err(UpstreamError::Timeout {
                    url: url.to_string(),
                    secs: self.head_timeout.as_secs(),
                });
            }
            Ok(Err(e)) if e.is_redirect() => {
                return Err(UpstreamError::Redirects {
                    url: url.to_string(),
                    max: self.max_redirects,
                });
            }
            Ok(Err(e)) => {
                // The cause (`Connection refused`, `dns error: ...`, a TLS
                // alert) is further down the chain; the URL is said once.
                let at = e.url().map(|u| u.to_string()).unwrap_or(url.to_string());
                return Err(UpstreamError::Request {
                    url: at,
                    why: chain(&e.without_url()),
                });
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        let at = resp.url().to_string();
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            if resp.headers().contains_key(header::LOCATION) {
                return Err(UpstreamError::Redirects {
                    url: url.to_string(),
                    max: self.max_redirects,
                });
            }
            return Err(UpstreamError::Request {
                url: at,
                why: format!("{status} without a usable Location"),
            });
        }
        if status != StatusCode::OK && status != StatusCode::PARTIAL_CONTENT {
            return Err(UpstreamError::Status { url: at, status });
        }
        Ok(resp)
    }

    /// GETs `url`, following redirects, and returns a 200 response (or a
    /// 206) with the URL it finally came from.
    pub async fn get(
        &self,
        url: &str,
        extra: &[(header::HeaderName, String)],
    ) -> Result<(Response<reqwest::Body>, String), UpstreamError> {
        let resp = self.send(url, extra).await?;
        let from = resp.url().to_string();
        Ok((resp.into(), from))
    }

    /// GETs a small text file (checksums), at most `limit` bytes.
    pub async fn get_text(
        &self,
        url: &str,
        limit: usize,
        idle: Duration,
    ) -> Result<String, UpstreamError> {
        let mut resp = self.send(url, &[]).await?;
        let final_url = resp.url().to_string();
        let mut out = Vec::new();
        loop {
            let chunk = match tokio::time::timeout(idle, resp.chunk()).await {
                Err(_) => {
                    return Err(UpstreamError::Timeout {
                        url: final_url,
                        secs: idle.as_secs(),
                    });
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    return Err(UpstreamError::Request {
                        url: final_url,
                        why: chain(&e.without_url()),
                    });
                }
                Ok(Ok(Some(c))) => c,
            };
            out.extend_from_slice(&chunk);
            if out.len() > limit {
                return Err(UpstreamError::Request {
                    url: final_url,
                    why: format!("larger than {limit} bytes"),
                });
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
}
