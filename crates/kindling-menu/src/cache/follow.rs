//! Serving a file while it downloads: a download's [`Progress`], broadcast
//! on a watch channel; the [`Follower`] each request holds; and the body
//! ([`Follow`]) that reads the growing part file, never past what has
//! arrived and never the last byte before the download is verified.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

use super::error::CacheError;
use super::files::open_beneath;

/// Progress of one download, watched by its clients.
#[derive(Debug, Clone, Default)]
pub(super) struct Progress {
    /// Response head received (and the part file exists).
    pub(super) started: bool,
    /// Content-Length from upstream.
    pub(super) total: Option<u64>,
    /// Bytes on disk in the part file.
    pub(super) written: u64,
    /// Finished: Ok (verified and kept, or not kept but complete) or Err.
    pub(super) outcome: Option<Result<(), CacheError>>,
}

impl Progress {
    /// Bytes clients may send: everything once finished well, otherwise all
    /// but the last byte (so a failed verification still cuts them short).
    fn available(&self) -> u64 {
        match (&self.outcome, self.total) {
            (Some(Ok(())), _) => self.written,
            (_, Some(t)) => self.written.min(t.saturating_sub(1)),
            (_, None) => 0,
        }
    }
}

pub(super) struct Flight {
    pub(super) tx: watch::Sender<Progress>,
    /// Name inside `tmp/`.
    pub(super) part: String,
}

/// A request attached to a download.
pub struct Follower {
    pub(super) rx: watch::Receiver<Progress>,
    pub(super) tmp: Arc<cap_std::fs::Dir>,
    pub(super) part: String,
    pub(super) key: String,
}

/// How a follower should answer.
pub enum Start {
    /// Stream `len` bytes from `offset` of a download of `total` bytes.
    Stream {
        body: kindling_http::Body,
        total: u64,
    },
    /// The download is finished: look the file up again (on disk).
    Done,
}

impl Follower {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Waits for the end of the download, telling `progress` the bytes on
    /// disk and the total (when upstream said) as they change; returns the
    /// length.
    pub async fn wait_with(
        mut self,
        mut progress: impl FnMut(u64, Option<u64>),
    ) -> Result<u64, CacheError> {
        let mut shown = None;
        loop {
            let (outcome, written, total) = {
                let p = self.rx.borrow_and_update();
                (p.outcome.clone(), p.written, p.total)
            };
            if shown != Some((written, total)) {
                shown = Some((written, total));
                progress(written, total);
            }
            if let Some(o) = outcome {
                return o.map(|()| written);
            }
            if self.rx.changed().await.is_err() {
                return self.wait().await.map(|()| written);
            }
        }
    }

    /// Waits for the end of the download.
    pub async fn wait(mut self) -> Result<(), CacheError> {
        loop {
            if let Some(o) = self.rx.borrow_and_update().outcome.clone() {
                return o;
            }
            if self.rx.changed().await.is_err() {
                return self.rx.borrow().outcome.clone().unwrap_or_else(|| {
                    Err(CacheError::Disk {
                        key: self.key.clone(),
                        why: "download task ended without an outcome".into(),
                    })
                });
            }
        }
    }

    /// Waits for the response head; then either a body following the part
    /// file from `range` (start, end inclusive; `None` = all), or the
    /// finished file (also when upstream gave no length).
    pub async fn start(mut self, range: Option<(u64, u64)>) -> Result<Start, CacheError> {
        loop {
            let p = self.rx.borrow_and_update().clone();
            match &p.outcome {
                Some(Err(e)) => return Err(e.clone()),
                Some(Ok(())) => return Ok(Start::Done),
                None => {}
            }
            if p.started
                && let Some(total) = p.total
            {
                let file = match open_beneath(&self.tmp, &self.part) {
                    Ok(f) => tokio::fs::File::from_std(f),
                    // Renamed or removed meanwhile: the outcome tells which.
                    Err(_) => {
                        return match self.wait_outcome().await {
                            Ok(()) => Ok(Start::Done),
                            Err(e) => Err(e),
                        };
                    }
                };
                let (start, end) = match range {
                    Some((s, e)) => (s, e.saturating_add(1).min(total)),
                    None => (0, total),
                };
                let mut file = file;
                if start > 0 && file.seek(io::SeekFrom::Start(start)).await.is_err() {
                    return Err(CacheError::Disk {
                        key: self.key.clone(),
                        why: "seek in the partial file".into(),
                    });
                }
                let follow = Follow {
                    file,
                    pos: start,
                    end,
                    rx: self.rx,
                    key: self.key,
                    done: false,
                };
                return Ok(Start::Stream {
                    body: follow.into_body(),
                    total,
                });
            }
            if self.rx.changed().await.is_err() {
                return self.wait_outcome().await.map(|_| Start::Done);
            }
        }
    }

    async fn wait_outcome(&mut self) -> Result<(), CacheError> {
        loop {
            if let Some(o) = self.rx.borrow_and_update().outcome.clone() {
                return o;
            }
            if self.rx.changed().await.is_err() {
                return Err(CacheError::Disk {
                    key: self.key.clone(),
                    why: "download task ended without an outcome".into(),
                });
            }
        }
    }
}

/// A body that reads the part file as it grows.
struct Follow {
    file: tokio::fs::File,
    pos: u64,
    end: u64,
    rx: watch::Receiver<Progress>,
    key: String,
    done: bool,
}

const CHUNK: u64 = 256 * 1024;

impl Follow {
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        if self.done || self.pos >= self.end {
            return None;
        }
        let mut closed = false;
        loop {
            let (avail, outcome) = {
                let p = self.rx.borrow_and_update();
                (p.available(), p.outcome.clone())
            };
            let limit = avail.min(self.end);
            if self.pos < limit {
                let n = (limit - self.pos).min(CHUNK) as usize;
                let mut buf = vec![0u8; n];
                return match self.file.read(&mut buf).await {
                    Ok(0) => {
                        self.done = true;
                        Some(Err(io::Error::other(format!(
                            "{}: partial file shorter than announced",
                            self.key
                        ))))
                    }
                    Ok(got) => {
                        buf.truncate(got);
                        self.pos += got as u64;
                        Some(Ok(Bytes::from(buf)))
                    }
                    Err(e) => {
                        self.done = true;
                        Some(Err(e))
                    }
                };
            }
            if let Some(Err(e)) = outcome {
                self.done = true;
                return Some(Err(io::Error::other(e.to_string())));
            }
            if closed {
                self.done = true;
                return Some(Err(io::Error::other(format!(
                    "{}: download ended early",
                    self.key
                ))));
            }
            if self.rx.changed().await.is_err() {
                closed = true;
            }
        }
    }

    fn into_body(self) -> kindling_http::Body {
        let s = futures_util::stream::unfold(self, |mut f| async move {
            let item = f.next().await?;
            Some((item.map(hyper::body::Frame::data), f))
        });
        http_body_util::BodyExt::boxed(http_body_util::StreamBody::new(s))
    }
}
