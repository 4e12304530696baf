//! Kindling's outbound HTTP: the one way to build a client, and the one way to
//! download a file.
//!
//! * [`client`]: reqwest over rustls with the `ring` provider (no aws-lc, no cmake),
//!   the system's roots (reqwest's platform verifier), connect and read timeouts, a
//!   redirect limit and Kindling's user agent. Used by the Fedora CoreOS sync, the
//!   menu cache's upstream fetches and `kindling machines --server`.
//! * [`Part`]: a response body streamed into a `.part` file while it is hashed with
//!   SHA-256 (resumable: the bytes already there are hashed first and the request asks
//!   for the rest with `Range`, see [`request_rest`]); a hook per chunk (progress lines,
//!   waking readers that follow the growing file); [`Part::finish`] syncs it and
//!   returns its length and digest; [`Finished::check`] compares them with what was
//!   published; [`persist`] renames it into place atomically. [`download`] does all of
//!   it for a caller that needs nothing in between.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use reqwest;

pub mod admin;
pub use admin::{AdminAnswer, AdminAuth, AdminError, admin_request};
use reqwest::{StatusCode, header};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `kindling/<version>`, sent with every request.
pub const USER_AGENT: &str = concat!("kindling/", env!("CARGO_PKG_VERSION"));

/// How a client is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Time allowed to connect (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time allowed between two reads of a response (None: no limit).
    pub read_timeout: Option<Duration>,
    /// Time allowed for a whole request, body included (None: no limit).
    pub timeout: Option<Duration>,
    /// Redirects followed before giving up (0: none followed, the 3xx is returned).
    pub max_redirects: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(30),
            read_timeout: Some(Duration::from_secs(120)),
            timeout: None,
            max_redirects: 10,
        }
    }
}

/// Builds a client. Installs rustls' `ring` provider as the process default unless
/// one is installed already (reqwest is built with `rustls-no-provider`).
pub fn client(o: &ClientOptions) -> Result<reqwest::Client, reqwest::Error> {
    match builder(o).build() {
        Ok(c) => Ok(c),
        // A host without CA certificates (a minimal container image, a host without
        // ca-certificates): the server must still start and fetch over plain HTTP;
        // HTTPS upstreams then fail per request with a certificate error.
        Err(e) => {
            tracing::warn!(error = %e, "no usable system CA certificates: HTTPS downloads will fail until ca-certificates is installed");
            builder(o)
                .tls_certs_only(Vec::<reqwest::Certificate>::new())
                .build()
        }
    }
}

/// The builder every client starts from: the `ring` provider installed as the process
/// default (reqwest is built with `rustls-no-provider`), the user agent, the timeouts and
/// the redirect policy of `o`.
pub(crate) fn builder(o: &ClientOptions) -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(o.connect_timeout)
        .redirect(redirect_policy(o.max_redirects));
    if let Some(t) = o.read_timeout {
        b = b.read_timeout(t);
    }
    if let Some(t) = o.timeout {
        b = b.timeout(t);
    }
    b
}

fn redirect_policy(max: usize) -> reqwest::redirect::Policy {
    if max == 0 {
        reqwest::redirect::Policy::none()
    } else {
        reqwest::redirect::Policy::limited(max)
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lowercase hex SHA-256 of a whole file.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut hasher = Sha256::new();
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(buf.get(..n).unwrap_or_default());
    }
}

/// Why a body did not make it into the part file whole. Every variant but
/// [`BodyError::Io`] leaves the part file synced, so a later attempt can resume.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The transport failed after `got` bytes (the part file's length).
    #[error("after {got} bytes: {source}")]
    Transport {
        got: u64,
        #[source]
        source: reqwest::Error,
    },
    /// Nothing arrived for `idle`.
    #[error("nothing received for {} s after {got} bytes", idle.as_secs())]
    Idle { got: u64, idle: Duration },
    /// The body ended (cleanly) before its Content-Length: `got` of `want`
    /// bytes of the part file.
    #[error("the body ended after {got} of {want} bytes")]
    Truncated { got: u64, want: u64 },
    /// The body went past its Content-Length (`limit`, the whole file's length).
    #[error("more than its Content-Length {limit}")]
    Overlong { limit: u64 },
    /// The part file would grow past [`Limits::max_len`] (the part file is removed).
    #[error("larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// Writing the part file failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// What a body may be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Largest part file accepted (None: no limit).
    pub max_len: Option<u64>,
    /// Longest wait for the next chunk (None: the client's read timeout only).
    pub idle: Option<Duration>,
}

/// A partial download: a file being written and the SHA-256 of everything in it.
#[derive(Debug)]
pub struct Part {
    path: Option<PathBuf>,
    file: tokio::fs::File,
    hasher: Sha256,
    len: u64,
}

/// A part file whose body arrived whole, synced to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub len: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// What a download must turn out to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// Lowercase or uppercase hex.
    pub sha256: Option<String>,
    pub len: Option<u64>,
}

/// A finished download is not what was published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("checksum mismatch: expected sha256 {expected}, got {actual}")]
    Sha256 { expected: String, actual: String },
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    Len { expected: u64, actual: u64 },
}

impl Finished {
    /// Compares the download with what was published.
    pub fn check(&self, want: &Expect) -> Result<(), Mismatch> {
        if let Some(expected) = want.len
            && expected != self.len
        {
            return Err(Mismatch::Len {
                expected,
                actual: self.len,
            });
        }
        if let Some(expected) = &want.sha256
            && !expected.eq_ignore_ascii_case(&self.sha256)
        {
            return Err(Mismatch::Sha256 {
                expected: expected.to_ascii_lowercase(),
                actual: self.sha256.clone(),
            });
        }
        Ok(())
    }
}

impl Part {
    /// Starts `path` anew (created or truncated).
    pub async fn create(path: &Path) -> io::Result<Part> {
        let file = tokio::fs::File::create(path).await?;
        Ok(Part {
            path: Some(path.to_path_buf()),
            file,
            hasher: Sha256::new(),
            len: 0,
        })
    }

    /// Continues `path`: hashes the bytes already in it (none when it is
    /// missing) and appends after them.
    pub async fn resume(path: &Path) -> io::Result<Part> {
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)
            .await?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            len += n as u64;
            hasher.update(buf.get(..n).unwrap_or_default());
        }
        Ok(Part {
            path: Some(path.to_path_buf()),
            file,
            hasher,
            len,
        })
    }

    /// A part in a file the caller created empty and opened for writing (for
    /// example beneath a directory handle).
    pub fn from_std(file: std::fs::File) -> Part {
        Part {
            path: None,
            file: tokio::fs::File::from_std(file),
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes in the part file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Nothing in the part file yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The SHA-256 of what is in the part file so far (lowercase hex).
    pub fn sha256_so_far(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    /// Empties the part file (the server sent the whole file instead of the rest).
    pub async fn restart(&mut self) -> io::Result<()> {
        use tokio::io::AsyncSeekExt;
        self.file.set_len(0).await?;
        self.file.seek(io::SeekFrom::Start(0)).await?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    /// Streams `resp`'s body into the part file, hashing it. After each chunk is
    /// written (and visible to other readers of the file) `on_chunk` gets the part
    /// file's length. The body must be as long as its Content-Length, if it has one.
    pub async fn write_body(
        &mut self,
        resp: &mut reqwest::Response,
        limits: &Limits,
        mut on_chunk: impl FnMut(u64),
    ) -> Result<(), BodyError> {
        let start = self.len;
        let want = resp.content_length().map(|n| start + n);
        loop {
            let next = match limits.idle {
                Some(idle) => match tokio::time::timeout(idle, resp.chunk()).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.sync().await?;
                        return Err(BodyError::Idle {
                            got: self.len,
                            idle,
                        });
                    }
                },
                None => resp.chunk().await,
            };
            let chunk = match next {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(source) => {
                    self.sync().await?;
                    return Err(BodyError::Transport {
                        got: self.len,
                        source,
                    });
                }
            };
            let len = self.len + chunk.len() as u64;
            if let Some(limit) = want
                && len > limit
            {
                self.sync().await?;
                return Err(BodyError::Overlong { limit });
            }
            if let Some(limit) = limits.max_len
                && len > limit
            {
                if let Some(p) = &self.path {
                    let _ = tokio::fs::remove_file(p).await;
                }
                return Err(BodyError::TooLarge { limit });
            }
            self.hasher.update(&chunk);
            self.file.write_all(&chunk).await?;
            // tokio's File finishes a write in the background: flush so that
            // readers following the part file see these bytes.
            self.file.flush().await?;
            self.len = len;
            on_chunk(len);
        }
        if let Some(want) = want
            && self.len < want
        {
            self.sync().await?;
            return Err(BodyError::Truncated {
                got: self.len,
                want,
            });
        }
        Ok(())
    }

    async fn sync(&mut self) -> io::Result<()> {
        self.file.flush().await?;
        self.file.sync_data().await
    }

    /// Syncs the part file and closes it; its length and digest.
    pub async fn finish(mut self) -> io::Result<Finished> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        Ok(Finished {
            len: self.len,
            sha256: hex::encode(self.hasher.finalize()),
        })
    }
}

/// Renames a finished part file to `dest` (atomically, on one file system) and
/// syncs `dest`'s directory so the rename survives a crash.
pub fn persist(part: &Path, dest: &Path) -> io::Result<()> {
    std::fs::rename(part, dest)?;
    if let Some(dir) = dest.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `<dest>.part`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// How the server answered a request for the rest of a part file.
#[derive(Debug)]
pub enum Rest {
    /// The whole file (200): the part file was emptied; write the body.
    Whole(reqwest::Response),
    /// The bytes after the part file (206 starting where it ends): write the body.
    Rest(reqwest::Response),
    /// 416 to a non-empty part file: it holds the whole file already, or junk.
    Unsatisfiable,
    /// A 206 for another range (`Some(start)`), or without a usable Content-Range.
    /// The part file was removed.
    OtherRange(Option<u64>),
    /// Any other status.
    Status(reqwest::Response),
}

/// GETs `url`, asking for the bytes after `part`'s (with `Range` when it is not empty).
pub async fn request_rest(
    client: &reqwest::Client,
    url: reqwest::Url,
    part: &mut Part,
) -> Result<Rest, RestError> {
    let have = part.len();
    let mut req = client.get(url);
    if have > 0 {
        req = req.header(header::RANGE, format!("bytes={have}-"));
    }
    let resp = req.send().await.map_err(RestError::Http)?;
    Ok(match resp.status() {
        StatusCode::PARTIAL_CONTENT if have > 0 => {
            let start = resp
                .headers()
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(content_range_start);
            if start == Some(have) {
                Rest::Rest(resp)
            } else {
                if let Some(p) = &part.path {
                    tokio::fs::remove_file(p).await.map_err(RestError::Io)?;
                }
                Rest::OtherRange(start)
            }
        }
        StatusCode::OK => {
            if have > 0 {
                part.restart().await.map_err(RestError::Io)?;
            }
            Rest::Whole(resp)
        }
        StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => Rest::Unsatisfiable,
        _ => Rest::Status(resp),
    })
}

/// Why [`request_rest`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("{0}")]
    Http(reqwest::Error),
    #[error("{0}")]
    Io(io::Error),
}

/// `bytes 100-199/200` -> 100.
pub fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (start, _) = rest.split_once('-')?;
    start.trim().parse().ok()
}

/// Why [`download`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{0}")]
    Http(#[source] reqwest::Error),
    #[error("the server answered {0}")]
    Status(StatusCode),
    #[error("the server answered another range than asked")]
    OtherRange,
    #[error(transparent)]
    Body(BodyError),
    /// The finished file is not what was published; the part file was removed
    /// or kept as [`OnMismatch`] said, never renamed into place.
    #[error(transparent)]
    Mismatch(Mismatch),
    #[error("{0}")]
    Io(#[source] io::Error),
}

/// What [`download`] does with a part file that does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMismatch {
    Remove,
    Keep,
}

/// Downloads `url` to `dest`: resumes `<dest>.part` (see [`request_rest`]), checks
/// the result against `want`, syncs it and renames it to `dest`. On a transport
/// error or a short body the part file stays for the next call to resume.
pub async fn download(
    client: &reqwest::Client,
    url: reqwest::Url,
    dest: &Path,
    want: &Expect,
    limits: &Limits,
    on_mismatch: OnMismatch,
    on_chunk: impl FnMut(u64),
) -> Result<Finished, DownloadError> {
    let part_file = part_path(dest);
    let mut part = Part::resume(&part_file).await.map_err(DownloadError::Io)?;
    let mismatch = |m: Mismatch| {
        if on_mismatch == OnMismatch::Remove {
            let _ = std::fs::remove_file(&part_file);
        }
        DownloadError::Mismatch(m)
    };
    let finished = match request_rest(client, url, &mut part).await {
        Err(RestError::Http(e)) => return Err(DownloadError::Http(e)),
        Err(RestError::Io(e)) => return Err(DownloadError::Io(e)),
        Ok(Rest::Status(r)) => return Err(DownloadError::Status(r.status())),
        Ok(Rest::OtherRange(_)) => return Err(DownloadError::OtherRange),
        Ok(Rest::Unsatisfiable) => part.finish().await.map_err(DownloadError::Io)?,
        Ok(Rest::Whole(mut resp) | Rest::Rest(mut resp)) => {
            part.write_body(&mut resp, limits, on_chunk)
                .await
                .map_err(DownloadError::Body)?;
            part.finish().await.map_err(DownloadError::Io)?
        }
    };
    finished.check(want).map_err(mismatch)?;
    persist(&part_file, dest).map_err(DownloadError::Io)?;
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes */200"), None);
        assert_eq!(content_range_start("items 1-2/3"), None);
    }

    #[test]
    fn part_path_appends() {
        assert_eq!(part_path(Path::new("a/b.img")), Path::new("a/b.img.part"));
    }

    #[test]
    fn check_compares_len_then_digest() {
        let f = Finished {
            len: 3,
            sha256: sha256_hex(b"abc"),
        };
        assert!(f.check(&Expect::default()).is_ok());
        let upper = Expect {
            sha256: Some(sha256_hex(b"abc").to_ascii_uppercase()),
            len: Some(3),
        };
        assert!(f.check(&upper).is_ok());
        assert!(matches!(
            f.check(&Expect {
                sha256: None,
                len: Some(4)
            }),
            Err(Mismatch::Len { .. })
        ));
        assert!(matches!(
            f.check(&Expect {
                sha256: Some(sha256_hex(b"abd")),
                len: None
            }),
            Err(Mismatch::Sha256 { .. })
        ));
    }
}
