//! One upstream download: written to a part file in `tmp/` while followers
//! read it, checked against the expected sha256 (given in the catalog or
//! looked up in the upstream checksum list meanwhile), then renamed into
//! `files/` and indexed, evicting older files to make room; plus the
//! progress log lines.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::api::Cache;
use super::error::CacheError;
use super::follow::Flight;
use super::index::{Held, evict, now};
use crate::catalog::{Arch, FileSpec, Sums};
use crate::guard::Ticket;
use crate::upstream::{UpstreamError, find_sum};
use kindling_fetch::{BodyError, Expect, Limits, Mismatch, Part};
use kindling_guard::chain;
use kindling_guard::progress::{Meter, Snapshot};

impl Cache {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_download(
        self: Arc<Self>,
        k: String,
        entry: String,
        arch: Arch,
        file: String,
        spec: FileSpec,
        sums: Option<Sums>,
        flight: Arc<Flight>,
        ticket: Option<Ticket>,
    ) {
        tracing::info!(target: "kindling::cache", file = %k, url = %spec.url, "fetching from upstream");
        let started = Instant::now();
        let res = self.download(&k, &spec, sums.as_ref(), &flight).await;
        let mut st = self.lock();
        st.inflight.remove(&k);
        let outcome = match res {
            Ok((size, sha256, verified)) => {
                let keep = size <= self.cfg.max_bytes;
                let moved = if keep {
                    let parent = Path::new(&k).parent().unwrap_or(Path::new(""));
                    self.files
                        .create_dir_all(parent)
                        .and_then(|_| self.tmp.rename(&flight.part, &self.files, &k))
                } else {
                    tracing::warn!(target: "kindling::cache", file = %k, size, max = self.cfg.max_bytes, "larger than the cache; served but not kept");
                    Ok(())
                };
                match moved {
                    Ok(()) if keep => {
                        let t = now();
                        st.index.insert(
                            k.clone(),
                            Held {
                                entry,
                                arch,
                                file,
                                url: spec.url.clone(),
                                size,
                                sha256,
                                verified,
                                fetched: t,
                                last_used: t,
                            },
                        );
                        st.dirty = true;
                        tracing::info!(target: "kindling::cache", file = %k, size, verified, secs = started.elapsed().as_secs_f64(), "cached");
                        Ok(())
                    }
                    Ok(()) => Ok(()),
                    Err(e) => Err(CacheError::Disk {
                        key: k.clone(),
                        why: chain(&e),
                    }),
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &outcome {
            tracing::warn!(target: "kindling::cache", error = %e, "download failed; nothing kept");
        }
        let evicted = if outcome.is_ok() {
            evict(&mut st, self.cfg.max_bytes, &k)
        } else {
            Vec::new()
        };
        drop(st);
        for h in evicted {
            tracing::info!(target: "kindling::cache", file = %h.key(), size = h.size, "evicted (least recently used)");
            let _ = self.files.remove_file(h.key());
        }
        // Unlinking is safe: clients following the part file keep their
        // open descriptors.
        if outcome.is_err() || self.tmp.exists(&flight.part) {
            let _ = self.tmp.remove_file(&flight.part);
        }
        // The index is on disk before anyone hears the file is kept.
        self.save_index();
        // The client's slot is free before its last byte is released.
        drop(ticket);
        flight.tx.send_modify(|p| p.outcome = Some(outcome));
    }

    /// Downloads into the part file; returns (size, sha256, verified).
    async fn download(
        &self,
        k: &str,
        spec: &FileSpec,
        sums: Option<&Sums>,
        flight: &Flight,
    ) -> Result<(u64, String, bool), CacheError> {
        let up_err = |e: UpstreamError| CacheError::Upstream {
            key: k.to_string(),
            why: chain(&e),
        };
        let idle = Duration::from_secs(self.cfg.idle_timeout_secs.max(1));
        // The expected checksum is looked up while the body streams.
        let expected = {
            let (sha, sums, name, up) = (
                spec.sha256.clone(),
                sums.cloned(),
                spec.sums_name.clone(),
                self.upstream.clone(),
            );
            let k = k.to_string();
            tokio::spawn(async move {
                if let Some(h) = sha {
                    return Ok(Some(h.to_ascii_lowercase()));
                }
                let (Some(s), Some(n)) = (sums, name) else {
                    return Ok(None);
                };
                let text = up.get_text(&s.url, 16 << 20, idle).await.map_err(|e| {
                    CacheError::Unverifiable {
                        key: k.clone(),
                        why: chain(&e),
                    }
                })?;
                match find_sum(&text, s.format, &n) {
                    Some(h) => Ok(Some(h)),
                    None => Err(CacheError::Unverifiable {
                        key: k,
                        why: format!("{n:?} is not listed in {}", s.url),
                    }),
                }
            })
        };
        let mut resp = self.upstream.send(&spec.url, &[]).await.map_err(up_err)?;
        let total = resp.content_length();
        let disk = |e: io::Error| CacheError::Disk {
            key: k.to_string(),
            why: chain(&e),
        };
        let created = self
            .tmp
            .open_with(
                &flight.part,
                cap_std::fs::OpenOptions::new().write(true).create_new(true),
            )
            .map_err(disk)?;
        let mut part = Part::from_std(created.into_std());
        flight.tx.send_modify(|p| {
            p.started = true;
            p.total = total;
        });
        let limits = Limits {
            max_len: None,
            idle: Some(idle),
        };
        let mut meter = Meter::new(0, total, Instant::now());
        part.write_body(&mut resp, &limits, |written| {
            // Followers reading the part file may send these bytes now.
            flight.tx.send_modify(|p| p.written = written);
            if let Some(s) = meter.log_due(written, Instant::now()) {
                log_progress(k, &s);
            }
        })
        .await
        .map_err(|e| match e {
            BodyError::Idle { got, idle } => CacheError::Upstream {
                key: k.to_string(),
                why: format!(
                    "upstream sent nothing for {} s after {got} bytes",
                    idle.as_secs()
                ),
            },
            BodyError::Transport { got, source } => match total {
                Some(want) => CacheError::Truncated {
                    key: k.to_string(),
                    got,
                    want,
                    why: chain(&source.without_url()),
                },
                None => CacheError::Upstream {
                    key: k.to_string(),
                    why: format!("after {got} bytes: {}", chain(&source.without_url())),
                },
            },
            BodyError::Truncated { got, want } => CacheError::Truncated {
                key: k.to_string(),
                got,
                want,
                why: String::new(),
            },
            BodyError::Overlong { limit } | BodyError::TooLarge { limit } => CacheError::Upstream {
                key: k.to_string(),
                why: format!("upstream sent more than its Content-Length {limit}"),
            },
            BodyError::Io(e) => disk(e),
        })?;
        let done = part.finish().await.map_err(disk)?;
        let written = done.len;
        log_complete(k, &meter.snapshot(written, Instant::now()));
        if total.is_none() {
            flight.tx.send_modify(|p| p.total = Some(written));
        }
        let expected = match expected.await {
            Ok(r) => r?,
            Err(e) => {
                return Err(CacheError::Unverifiable {
                    key: k.to_string(),
                    why: chain(&e),
                });
            }
        };
        let want = Expect {
            sha256: expected,
            len: None,
        };
        match done.check(&want) {
            Err(Mismatch::Sha256 { expected, actual }) => Err(CacheError::Mismatch {
                key: k.to_string(),
                expected,
                actual,
            }),
            Err(m @ Mismatch::Len { .. }) => Err(CacheError::Unverifiable {
                key: k.to_string(),
                why: m.to_string(),
            }),
            Ok(()) => Ok((written, done.sha256, want.sha256.is_some())),
        }
    }
}

/// A progress line of a download (`kindling::cache`, at the rate
/// [`Meter::log_due`] allows): file, bytes, total, percent, rate, ETA.
pub(crate) fn log_progress(file: &str, s: &Snapshot) {
    tracing::info!(
        target: "kindling::cache",
        file = %kindling_guard::Esc::str(file),
        bytes = s.bytes,
        total = s.total,
        percent = s.percent(),
        rate_bps = s.rate,
        eta_secs = s.eta().map(|d| d.as_secs()),
        "download progress"
    );
}

/// The last progress line of a download: every byte is there.
pub(crate) fn log_complete(file: &str, s: &Snapshot) {
    tracing::info!(
        target: "kindling::cache",
        file = %kindling_guard::Esc::str(file),
        bytes = s.bytes,
        total = s.total.unwrap_or(s.bytes),
        secs = s.elapsed.as_secs_f64(),
        rate_bps = s.rate,
        "download complete"
    );
}
