//! Resumable, retried downloads into `.part` files, hashed while streaming.
//!
//! Every download logs progress lines (`download progress`: file, bytes,
//! total, percent, rate, ETA; at most one a second, on each tenth of the
//! total or every 5 s) and `download complete` with the final byte count;
//! with `progress` and stderr a terminal it also draws one updating line.

use std::fs;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kindling_fetch::reqwest::{self, Url};
use kindling_fetch::{
    BodyError, ClientOptions, Expect, Limits, Part, Rest, RestError, request_rest,
};
use kindling_guard::progress::{Meter, Snapshot, TtyLine};

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

/// An HTTP client ([`kindling_fetch::client`]: reqwest over rustls with the ring
/// provider) with a retry policy.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    retry: RetryPolicy,
    progress: bool,
}

impl Fetcher {
    /// `progress`: draw a progress line when stderr is a terminal.
    pub fn new(retry: RetryPolicy, progress: bool) -> Result<Fetcher, FcosError> {
        let client =
            kindling_fetch::client(&ClientOptions::default()).map_err(|error| FcosError::Http {
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
        part_path: &Path,
        sha256: &str,
        label: &str,
        line: &Mutex<Option<TtyLine>>,
    ) -> Result<u64, FcosError> {
        let http = |e| FcosError::http(url, e);
        let io = |e| FcosError::io(part_path, e);
        let mut part = Part::resume(part_path).await.map_err(io)?;
        let have = part.len();
        let rest = request_rest(&self.client, url.clone(), &mut part)
            .await
            .map_err(|e| match e {
                RestError::Http(e) => http(e),
                RestError::Io(e) => io(e),
            })?;
        let mut resp = match rest {
            Rest::Rest(resp) => {
                tracing::info!(%url, file = %label, resumed_from = have, "resuming download");
                resp
            }
            Rest::Whole(resp) => {
                if have > 0 {
                    tracing::info!(%url, file = %label, "server ignored the Range request; downloading again");
                }
                tracing::info!(%url, file = %label, "downloading");
                resp
            }
            Rest::OtherRange(start) => {
                // Not the range we asked for: the part file is gone; start over.
                match start {
                    Some(start) => {
                        tracing::warn!(%url, file = %label, start, have, "unexpected Content-Range; restarting")
                    }
                    None => {
                        tracing::warn!(%url, file = %label, have, "unexpected or missing Content-Range; restarting")
                    }
                }
                return Err(FcosError::Interrupted {
                    url: url.to_string(),
                    why: "the server answered another range than asked; starting over",
                });
            }
            Rest::Unsatisfiable => {
                // Everything is there already, or the part file is bogus.
                if part.sha256_so_far() == sha256 {
                    return Ok(have);
                }
                drop(part);
                fs::remove_file(part_path).map_err(io)?;
                return Err(FcosError::Interrupted {
                    url: url.to_string(),
                    why: "the partial file does not match; starting over",
                });
            }
            Rest::Status(resp) => {
                return Err(FcosError::Status {
                    url: url.to_string(),
                    status: resp.status().as_u16(),
                });
            }
        };
        let have = part.len();
        let total = resp.content_length().map(|r| have + r);
        let mut meter = Meter::new(have, total, Instant::now());
        let set_line = |l: Option<TtyLine>| *line.lock().unwrap_or_else(|p| p.into_inner()) = l;
        set_line(
            self.progress
                .then(|| TtyLine::new(label.to_string(), have, total)),
        );
        let limits = Limits {
            max_len: Some(MAX_ARTIFACT),
            idle: None,
        };
        let written = part
            .write_body(&mut resp, &limits, |len| {
                if let Some(s) = meter.log_due(len, Instant::now()) {
                    log_progress(label, &s);
                }
                if let Some(l) = line.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                    l.update(len);
                }
            })
            .await;
        match written {
            Ok(()) => {}
            Err(BodyError::Transport { got, source }) => {
                let e = http(source);
                tracing::warn!(%url, file = %label, received = got, error = %e, "download interrupted");
                return Err(e);
            }
            // The body ended early without a transport error: keep what we
            // have and resume on the next attempt.
            Err(BodyError::Truncated { .. } | BodyError::Overlong { .. }) => {
                return Err(FcosError::Interrupted {
                    url: url.to_string(),
                    why: "the body ended before its Content-Length; resuming",
                });
            }
            Err(BodyError::Idle { .. }) => {
                return Err(FcosError::Interrupted {
                    url: url.to_string(),
                    why: "the server stopped sending; resuming",
                });
            }
            Err(BodyError::TooLarge { .. }) => {
                return Err(FcosError::TooLarge {
                    url: url.to_string(),
                    limit: MAX_ARTIFACT,
                });
            }
            Err(BodyError::Io(e)) => return Err(io(e)),
        }
        let done = part.finish().await.map_err(io)?;
        log_complete(label, &meter.snapshot(done.len, Instant::now()));
        let want = Expect {
            sha256: Some(sha256.to_string()),
            len: None,
        };
        if done.check(&want).is_err() {
            let _ = fs::remove_file(part_path);
            return Err(FcosError::Checksum {
                file: label.to_string(),
                expected: sha256.to_string(),
                actual: done.sha256,
            });
        }
        tracing::info!(%url, file = %label, bytes = done.len, sha256 = %done.sha256, "sha256 verified");
        Ok(done.len)
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

/// The sha256 of a whole file, as lowercase hex.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    kindling_fetch::sha256_file(path)
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
            .block_on(async { client.get(url.clone()).send().await })
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
        let msg = failed_request(
            kindling_fetch::client(&ClientOptions::default()).expect("client"),
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
}
