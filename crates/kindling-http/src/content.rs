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

/// The content type of an open regular file: by `name`'s extension (Go's
/// table), else sniffed from its first 512 bytes, read at offset 0 (`pread`,
/// so the position the body is later sent from does not matter). This may
/// read the disk: call it where the file was opened (the assets' blocking
/// call), so that one answer costs one trip off the async threads, not two.
pub fn content_type_of(file: &std::fs::File, name: &Path) -> &'static str {
    if let Some(t) = type_by_extension(name) {
        return t;
    }
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A file that cannot be read is caught when its body is sent.
            Err(_) => break,
        }
    }
    kindling_render::detect_content_type(&head[..n])
}

/// Serves an opened regular file: Content-Length, Range and Last-Modified come
/// from `meta`, the metadata of that open file (fstat); `content_type` from
/// [`content_type_of`] on the same file. The body is the open file itself
/// ([`body::Content::File`]: `sendfile(2)` on the boot listener). Nothing here
/// touches the disk.
pub fn serve_open_file(
    req: &HeaderMap,
    file: std::fs::File,
    meta: &std::fs::Metadata,
    content_type: &'static str,
) -> Reply {
    let size = meta.len();
    let modified = meta.modified().ok();
    if not_modified_since(req, modified) {
        return not_modified(modified);
    }
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
        file,
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
    fn types_by_extension_else_by_the_first_bytes_whatever_the_read_position() {
        use std::io::{Read, Write};
        let tmp = kindling_testkit::tempdir("content-type");
        let at = |name: &str, bytes: &[u8]| {
            let p = tmp.path().join(name);
            std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
            std::fs::File::open(&p).unwrap()
        };
        let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1];
        // Text after the head: a read from the position would say text/plain.
        elf.resize(4096, b'a');
        let mut kernel = at("kernel", &elf);
        // Moved past the head: the sniff reads at offset 0 all the same.
        kernel.read_exact(&mut [0u8; 1000]).unwrap();
        let name = tmp.path().join("kernel");
        assert_eq!(content_type_of(&kernel, &name), "application/octet-stream");
        let page = at("page", b"<html><body>x");
        assert_eq!(
            content_type_of(&page, &tmp.path().join("page")),
            "text/html; charset=utf-8"
        );
        let empty = at("empty", b"");
        let empty_name = tmp.path().join("empty");
        assert_eq!(
            content_type_of(&empty, &empty_name),
            "text/plain; charset=utf-8"
        );
        // The extension wins over the contents.
        let json = at("x.json", b"<html>");
        assert_eq!(
            content_type_of(&json, &tmp.path().join("x.json")),
            "application/json"
        );
    }

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
