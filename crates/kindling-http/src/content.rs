//! `http.ServeContent` semantics: Range (single range), HEAD, Last-Modified,
//! If-Modified-Since, Accept-Ranges and an exact Content-Length.

use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use hyper::{HeaderMap, StatusCode, header};

use crate::body::{self, Reply};

/// The outcome of a `Range` header against a body of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// No usable range: send the whole body with 200.
    Full,
    /// One range, `start..=end`.
    Part(u64, u64),
    /// Malformed or no overlap: 416.
    Unsatisfiable,
}

/// Parses a `Range` header like Go's `parseRange` (several ranges are
/// answered with the whole body, which RFC 9110 allows).
pub fn parse_range(h: &str, size: u64) -> Ranged {
    let Some(spec) = h.strip_prefix("bytes=") else {
        return Ranged::Unsatisfiable;
    };
    let mut parts = Vec::new();
    let mut any_overlap = false;
    for r in spec.split(',') {
        let r = r.trim();
        if r.is_empty() {
            continue;
        }
        let Some((a, b)) = r.split_once('-') else {
            return Ranged::Unsatisfiable;
        };
        let (a, b) = (a.trim(), b.trim());
        let (start, end) = if a.is_empty() {
            // Suffix range: last N bytes.
            if b.is_empty() || b.starts_with('-') {
                return Ranged::Unsatisfiable;
            }
            let Ok(n) = b.parse::<u64>() else {
                return Ranged::Unsatisfiable;
            };
            if n == 0 {
                continue;
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        } else {
            let Ok(start) = a.parse::<u64>() else {
                return Ranged::Unsatisfiable;
            };
            if start >= size {
                continue;
            }
            let end = if b.is_empty() {
                size - 1
            } else {
                match b.parse::<u64>() {
                    Ok(e) if e >= start => e.min(size - 1),
                    _ => return Ranged::Unsatisfiable,
                }
            };
            (start, end)
        };
        if size == 0 {
            continue;
        }
        any_overlap = true;
        parts.push((start, end));
    }
    match parts.as_slice() {
        [] if !any_overlap => Ranged::Unsatisfiable,
        [(s, e)] => Ranged::Part(*s, *e),
        _ => Ranged::Full,
    }
}

pub(crate) fn not_modified_since(req: &HeaderMap, modified: Option<SystemTime>) -> bool {
    let (Some(m), Some(ims)) = (modified, req.get(header::IF_MODIFIED_SINCE)) else {
        return false;
    };
    let Ok(ims) = ims.to_str() else { return false };
    let Ok(ims) = httpdate::parse_http_date(ims) else {
        return false;
    };
    // HTTP dates have one-second resolution.
    let m = httpdate::HttpDate::from(m);
    SystemTime::from(m) <= ims
}

/// A 304 with the modification time.
pub(crate) fn not_modified(modified: Option<SystemTime>) -> Reply {
    let mut r = Reply::new(StatusCode::NOT_MODIFIED, "", Bytes::new());
    r.headers.remove(header::CONTENT_TYPE);
    if let Some(m) = modified {
        set(
            &mut r.headers,
            header::LAST_MODIFIED,
            &httpdate::fmt_http_date(m),
        );
    }
    r
}

/// Serves in-memory content (`/generic`, `/cloud`).
pub fn serve_bytes(req: &HeaderMap, content: Bytes, content_type: &str) -> Reply {
    let size = content.len() as u64;
    let mut r = match req.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(h) => match parse_range(h, size) {
            Ranged::Full => Reply::new(StatusCode::OK, content_type, content),
            Ranged::Part(s, e) => {
                let mut r = Reply::new(
                    StatusCode::PARTIAL_CONTENT,
                    content_type,
                    content.slice(s as usize..=e as usize),
                );
                set(
                    &mut r.headers,
                    header::CONTENT_RANGE,
                    &format!("bytes {s}-{e}/{size}"),
                );
                r
            }
            Ranged::Unsatisfiable => return unsatisfiable(size),
        },
        None => Reply::new(StatusCode::OK, content_type, content),
    };
    set(&mut r.headers, header::ACCEPT_RANGES, "bytes");
    r
}

fn unsatisfiable(size: u64) -> Reply {
    let mut r = Reply::error(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "invalid range: failed to overlap",
    );
    set(
        &mut r.headers,
        header::CONTENT_RANGE,
        &format!("bytes */{size}"),
    );
    r
}

fn set(h: &mut HeaderMap, name: header::HeaderName, v: &str) {
    if let Ok(v) = v.parse() {
        h.insert(name, v);
    }
}

/// Content type from a file extension (Go's built-in table), else sniffed.
pub fn type_by_extension(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "css" => "text/css; charset=utf-8",
        "gif" => "image/gif",
        "htm" | "html" => "text/html; charset=utf-8",
        "jpg" | "jpeg" => "image/jpeg",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "wasm" => "application/wasm",
        "webp" => "image/webp",
        "xml" => "text/xml; charset=utf-8",
        "ipxe" => "text/plain; charset=utf-8",
        "iso" => "application/x-iso9660-image",
        "gz" => "application/gzip",
        "xz" => "application/x-xz",
        _ => return None,
    })
}

/// Serves an opened regular file: Content-Length, Range and Last-Modified come
/// from `meta`, the metadata of that open file (fstat); `name` only gives the
/// content type by its extension. The body is the open file itself
/// ([`body::Content::File`]: `sendfile(2)` on the boot listener).
pub async fn serve_open_file(
    req: &HeaderMap,
    mut file: tokio::fs::File,
    meta: &std::fs::Metadata,
    name: &Path,
) -> Reply {
    let path = name;
    let size = meta.len();
    let modified = meta.modified().ok();
    if not_modified_since(req, modified) {
        return not_modified(modified);
    }
    let content_type = match type_by_extension(path) {
        Some(t) => t,
        None => {
            use tokio::io::AsyncReadExt;
            // The body is sent from explicit offsets: the read position does not matter.
            let mut head = vec![0u8; 512.min(size as usize)];
            let n = file.read(&mut head).await.unwrap_or(0);
            kindling_render::detect_content_type(&head[..n])
        }
    };
    let (status, start, len) = match req.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(h) => match parse_range(h, size) {
            Ranged::Full => (StatusCode::OK, 0, size),
            Ranged::Part(s, e) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
            Ranged::Unsatisfiable => return unsatisfiable(size),
        },
        None => (StatusCode::OK, 0, size),
    };
    let mut r = Reply::new(status, content_type, Bytes::new());
    r.body = body::Content::File {
        file: file.into_std().await,
        offset: start,
    };
    r.len = len;
    set(&mut r.headers, header::ACCEPT_RANGES, "bytes");
    if let Some(m) = modified {
        set(
            &mut r.headers,
            header::LAST_MODIFIED,
            &httpdate::fmt_http_date(m),
        );
    }
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            &mut r.headers,
            header::CONTENT_RANGE,
            &format!("bytes {}-{}/{size}", start, start + len - 1),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ranged::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Ranged::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Ranged::Part(90, 99));
        assert_eq!(parse_range("bytes=-200", 100), Ranged::Part(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), Ranged::Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ranged::Full);
        assert_eq!(parse_range("items=0-1", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=x-1", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Ranged::Unsatisfiable);
    }
}
