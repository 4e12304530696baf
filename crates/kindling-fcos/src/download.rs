//! Resumable, retried downloads into `.part` files, hashed while streaming.
//!
//! Every download logs progress lines (`download progress`: file, bytes,
//! total, percent, rate, ETA; at most one a second, on each tenth of the
//! total or every 5 s) and `download complete` with the final byte count;
//! with `progress` and stderr a terminal it also draws one updating line.

use std::fs::{self, File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kindling_guard::progress::{Meter, Snapshot, TtyLine};
use reqwest::{StatusCode, Url, header};
use sha2::{Digest, Sha256};

use crate::FcosError;

/// How often and how patiently a download is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled after each failure.
    pub initial_backoff: Duration,
    /// Upper bound of the wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Largest artifact accepted (the rootfs is about 1 GiB today).
pub const MAX_ARTIFACT: u64 = 16 << 30;

/// An HTTP client (reqwest over rustls with the ring provider).
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    retry: RetryPolicy,
    progress: bool,
}

impl Fetcher {
    /// `progress`: draw a progress line when stderr is a terminal.
    pub fn new(retry: RetryPolicy, progress: bool) -> Result<Fetcher, FcosError> {
        // reqwest is built with `rustls-no-provider`: install ring as the
        // process default unless someone installed a provider already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("kindling/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|error| FcosError::Http {
                url: String::new(),
                error,
            })?;
        Ok(Fetcher {
            client,
            retry,
            progress: progress && std::io::stderr().is_terminal(),
        })
    }

    /// GETs a small document (metadata, signature) into memory, retrying
    /// transient failures. A non-success status is returned as
    /// [`FcosError::Status`] (404 is not retried).
    pub async fn get_small(&self, url: &Url, limit: u64) -> Result<Vec<u8>, FcosError> {
        self.with_retries(url, || self.get_small_once(url, limit))
            .await
    }

    async fn get_small_once(&self, url: &Url, limit: u64) -> Result<Vec<u8>, FcosError> {
        let http = |e| FcosError::http(url, e);
        let mut resp = self.client.get(url.clone()).send().await.map_err(http)?;
        if !resp.status().is_success() {
            return Err(FcosError::Status {
                url: url.to_string(),
                status: resp.status().as_u16(),
            });
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(http)? {
            out.extend_from_slice(&chunk);
            if out.len() as u64 > limit {
                return Err(FcosError::TooLarge {
                    url: url.to_string(),
                    limit,
                });
            }
        }
        Ok(out)
    }

    async fn with_retries<T, F, Fut>(&self, url: &Url, mut f: F) -> Result<T, FcosError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, FcosError>>,
    {
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && attempt < attempts => {
                    let wait = self.retry.backoff(attempt);
                    tracing::warn!(%url, attempt, error = %e, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) if e.is_transient() && attempts > 1 => {
                    return Err(FcosError::GaveUp {
                        url: url.to_string(),
                        attempts,
                        last: Box::new(e),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Downloads `url` into `part`, resuming from the bytes already in
    /// `part` with an HTTP Range request, retrying transient failures with
    /// exponential backoff, and checking the sha256 of the whole file. On a
    /// checksum mismatch `part` is deleted and the error returned: the caller
    /// never gets unverified data. `label` names the file in logs.
    pub async fn download(
        &self,
        url: &Url,
        part: &Path,
        sha256: &str,
        label: &str,
    ) -> Result<(), FcosError> {
        // The terminal line of this file (each attempt starts it anew).
        let line = Mutex::new(None);
        let r = self
            .with_retries(url, || self.download_once(url, part, sha256, label, &line))
            .await;
        let line = line.into_inner().unwrap_or_else(|p| p.into_inner());
        match (&r, line) {
            (Ok(bytes), Some(l)) => l.finish(*bytes),
            (Err(_), Some(l)) => l.clear(),
            _ => {}
        }
        r.map(|_| ())
    }

    /// One attempt; returns the file's length.
    async fn download_once(
        &self,
        url: &Url,
        part: &Path,
        sha256: &str,
        label: &str,
        line: &Mutex<Option<TtyLine>>,
    ) -> Result<u64, FcosError> {
        let http = |e| FcosError::http(url, e);
        let io = |e| FcosError::io(part, e);
        let mut have = match fs::metadata(part) {
            Ok(m) => m.len(),
            Err(_) => 0,
        };
        let mut hasher = Sha256::new();
        if have > 0 {
            hash_prefix(part, &mut hasher).map_err(io)?;
        }
        let mut req = self.client.get(url.clone());
        if have > 0 {
            req = req.header(header::RANGE, format!("bytes={have}-"));
        }
        let mut resp = req.send().await.map_err(http)?;
        let status = resp.status();
        match status {
            StatusCode::PARTIAL_CONTENT if have > 0 => {
                let start = resp
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(content_range_start);
                if start != Some(have) {
                    // Not the range we asked for: start over.
                    match start {
                        Some(start) => {
                            tracing::warn!(%url, file = %label, start, have, "unexpected Content-Range; restarting")
                        }
                        None => {
                            tracing::warn!(%url, file = %label, have, "unexpected or missing Content-Range; restarting")
                        }
                    }
                    fs::remove_file(part).map_err(io)?;
                    return Err(FcosError::Interrupted {
                        url: url.to_string(),
                        why: "the server answered another range than asked; starting over",
                    });
                }
                tracing::info!(%url, file = %label, resumed_from = have, "resuming download");
            }
            StatusCode::OK => {
                if have > 0 {
                    tracing::info!(%url, file = %label, "server ignored the Range request; downloading again");
                    have = 0;
                    hasher = Sha256::new();
                }
                tracing::info!(%url, file = %label, "downloading");
            }
            StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {
                // Everything is there already, or the part file is bogus.
                let actual = hex::encode(hasher.finalize());
                if actual == sha256 {
                    return Ok(have);
                }
                fs::remove_file(part).map_err(io)?;
                return Err(FcosError::Interrupted {
                    url: url.to_string(),
                    why: "the partial file does not match; starting over",
                });
            }
            s => {
                return Err(FcosError::Status {
                    url: url.to_string(),
                    status: s.as_u16(),
                });
            }
        }
        let remaining = resp.content_length();
        let total = remaining.map(|r| have + r);
        let mut meter = Meter::new(have, total, Instant::now());
        let set_line = |l: Option<TtyLine>| *line.lock().unwrap_or_else(|p| p.into_inner()) = l;
        set_line(
            self.progress
                .then(|| TtyLine::new(label.to_string(), have, total)),
        );
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(have == 0)
            .append(have > 0)
            .open(part)
            .map_err(io)?;
        let mut got: u64 = 0;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    file.sync_data().map_err(io)?;
                    let e = http(e);
                    tracing::warn!(%url, file = %label, received = have + got, error = %e, "download interrupted");
                    return Err(e);
                }
            };
            file.write_all(&chunk).map_err(io)?;
            hasher.update(&chunk);
            got += chunk.len() as u64;
            if have + got > MAX_ARTIFACT {
                drop(file);
                let _ = fs::remove_file(part);
                return Err(FcosError::TooLarge {
                    url: url.to_string(),
                    limit: MAX_ARTIFACT,
                });
            }
            if let Some(s) = meter.log_due(have + got, Instant::now()) {
                log_progress(label, &s);
            }
            if let Some(l) = line.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                l.update(have + got);
            }
        }
        file.sync_all().map_err(io)?;
        drop(file);
        if let Some(len) = remaining
            && got < len
        {
            // The body ended early without a transport error: keep what we
            // have and resume on the next attempt.
            return Err(FcosError::Interrupted {
                url: url.to_string(),
                why: "the body ended before its Content-Length; resuming",
            });
        }
        log_complete(label, &meter.snapshot(have + got, Instant::now()));
        let actual = hex::encode(hasher.finalize());
        if actual != sha256 {
            let _ = fs::remove_file(part);
            return Err(FcosError::Checksum {
                file: label.to_string(),
                expected: sha256.to_string(),
                actual,
            });
        }
        tracing::info!(%url, file = %label, bytes = have + got, sha256 = %actual, "sha256 verified");
        Ok(have + got)
    }
}

/// A progress line (at the rate [`Meter::log_due`] allows).
fn log_progress(file: &str, s: &Snapshot) {
    tracing::info!(
        file = %file,
        bytes = s.bytes,
        total = s.total,
        percent = s.percent(),
        rate_bps = s.rate,
        eta_secs = s.eta().map(|d| d.as_secs()),
        "download progress"
    );
}

/// The last progress line: every byte is there (not yet verified).
fn log_complete(file: &str, s: &Snapshot) {
    tracing::info!(
        file = %file,
        bytes = s.bytes,
        total = s.total.unwrap_or(s.bytes),
        secs = s.elapsed.as_secs_f64(),
        rate_bps = s.rate,
        "download complete"
    );
}

fn hash_prefix(path: &Path, hasher: &mut Sha256) -> std::io::Result<()> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(buf.get(..n).unwrap_or_default());
    }
}

/// The sha256 of a whole file, as lowercase hex.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    hash_prefix(path, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// `bytes 100-199/200` -> 100.
fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (start, _) = rest.split_once('-')?;
    start.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(800));
        assert_eq!(p.backoff(5), Duration::from_millis(1000));
        assert_eq!(p.backoff(60), Duration::from_millis(1000));
    }

    /// A resolver that fails like the system one does for an unknown name (no
    /// network is asked).
    struct NoSuchHost;

    impl reqwest::dns::Resolve for NoSuchHost {
        fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
            Box::pin(async {
                Err(Box::new(std::io::Error::other(
                    "failed to lookup address information: Name or service not known",
                ))
                    as Box<dyn std::error::Error + Send + Sync>)
            })
        }
    }

    /// The message of a failed request to `url` through `client`.
    fn failed_request(client: reqwest::Client, url: &str) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let url = Url::parse(url).expect("url");
        let error = rt
            .block_on(client.get(url.clone()).send())
            .expect_err("the request fails");
        FcosError::http(&url, error).to_string()
    }

    /// The error says why the request failed (the OS's and the resolver's words), not
    /// only reqwest's "error sending request".
    #[test]
    fn http_errors_keep_the_underlying_cause() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let msg = failed_request(
            reqwest::Client::new(),
            &format!("http://127.0.0.1:{port}/streams/stable.json"),
        );
        assert!(
            msg.to_ascii_lowercase().contains("connection refused"),
            "{msg}"
        );
        assert!(
            msg.starts_with(&format!(
                "http request to http://127.0.0.1:{port}/streams/stable.json failed: "
            )),
            "{msg}"
        );

        let client = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(NoSuchHost))
            .build()
            .expect("client");
        let msg = failed_request(client, "http://builds.kindling.invalid/streams/stable.json");
        assert!(msg.contains("dns error"), "{msg}");
        assert!(
            msg.contains("failed to lookup address information: Name or service not known"),
            "{msg}"
        );
    }

    #[test]
    fn content_range() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes */200"), None);
        assert_eq!(content_range_start("items 1-2/3"), None);
    }
}
