//! Response bodies and the small reply type every endpoint returns.

use std::io;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{HeaderMap, StatusCode, header};

pub type Body = BoxBody<Bytes, io::Error>;

/// A body built from bytes.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A body streamed from an async reader, limited to `len` bytes.
pub fn stream<R: tokio::io::AsyncRead + Send + Sync + 'static>(reader: R, len: u64) -> Body {
    use futures_util::StreamExt;
    use tokio::io::AsyncReadExt;
    let limited = reader.take(len);
    let s = tokio_util::io::ReaderStream::with_capacity(limited, 256 * 1024)
        .map(|r| r.map(Frame::data));
    BodyExt::boxed(StreamBody::new(s))
}

/// How a large body ended, for the request log and the boot timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEnd {
    /// Every byte was handed to the connection.
    Complete,
    /// The client closed the connection (or stopped reading) before the end.
    ClientGone,
    /// The body itself failed (a read error, an upstream that stopped, a file cut short).
    Failed(String),
}

/// Called once when a large body is done, with the data bytes handed to the connection
/// (which may still sit in kernel buffers: a client that goes away during the last few
/// hundred KiB can count as complete; a download cut earlier never does).
pub type BodyDone = Box<dyn FnOnce(u64, BodyEnd) + Send + Sync>;

/// What a reply's body is made of. The boot listener ([`crate::conn`]) sends a
/// [`Content::File`] with `sendfile(2)` (the kernel copies page cache to socket), the
/// others as they come; the admin listener (hyper) turns any of them into a [`Body`].
pub enum Content {
    Bytes(Bytes),
    /// The reply's `len` bytes of an open regular file, from `offset`.
    File {
        file: std::fs::File,
        offset: u64,
    },
    /// Frames as they come (the cache's followers of a download, event streams).
    Stream(Body),
}

impl Content {
    pub fn empty() -> Content {
        Content::Bytes(Bytes::new())
    }

    /// A [`Body`] of `len` bytes, for hyper.
    pub fn into_body(self, len: u64) -> Body {
        match self {
            Content::Bytes(b) => full(b),
            Content::Stream(b) => b,
            Content::File { mut file, offset } => {
                use std::io::Seek;
                match file.seek(io::SeekFrom::Start(offset)) {
                    Ok(_) => stream(tokio::fs::File::from_std(file), len),
                    Err(e) => BodyExt::boxed(StreamBody::new(futures_util::stream::iter([Err::<
                        Frame<Bytes>,
                        _,
                    >(
                        e
                    )]))),
                }
            }
        }
    }
}

impl From<Body> for Content {
    fn from(b: Body) -> Content {
        Content::Stream(b)
    }
}

/// Go's `html.EscapeString`.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// What an endpoint produced, before logging and HEAD handling.
pub struct Reply {
    pub status: StatusCode,
    /// Headers but `Content-Length`, which the connection writes from the body's length.
    pub headers: HeaderMap,
    pub body: Content,
    /// Length of the body in bytes (always known: Kindling never chunks).
    pub len: u64,
    /// Why the request failed, for the request log (never sent to clients).
    pub reason: Option<String>,
    /// Group and profile chosen, for the request log.
    pub group: Option<String>,
    pub profile: Option<String>,
}

impl Reply {
    pub fn new(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
        Reply::typed(status, content_type.parse().ok(), body.into())
    }

    fn typed(status: StatusCode, content_type: Option<header::HeaderValue>, body: Bytes) -> Reply {
        let mut headers = HeaderMap::new();
        if let Some(v) = content_type {
            headers.insert(header::CONTENT_TYPE, v);
        }
        Reply {
            status,
            headers,
            len: body.len() as u64,
            body: Content::Bytes(body),
            reason: None,
            group: None,
            profile: None,
        }
    }

    /// A text body whose content type is sniffed as Go's net/http does.
    pub fn sniffed(body: impl Into<Bytes>) -> Reply {
        let body: Bytes = body.into();
        // A constant of the sniffer's table: no copy.
        let ct = header::HeaderValue::from_static(kindling_render::detect_content_type(&body));
        Reply::typed(StatusCode::OK, Some(ct), body)
    }

    /// Go's `http.NotFound`, with the reason kept for the log.
    pub fn not_found(reason: impl Into<String>) -> Reply {
        let mut r = Reply::new(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 page not found\n",
        );
        r.headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        );
        r.reason = Some(reason.into());
        r
    }

    /// Go's `http.Error(w, msg, code)`.
    pub fn error(status: StatusCode, msg: &str) -> Reply {
        let mut r = Reply::new(status, "text/plain; charset=utf-8", format!("{msg}\n"));
        r.headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        );
        r.reason = Some(msg.to_string());
        r
    }

    /// `405 Method Not Allowed`, with the methods that are (`allow`, e.g. `"GET, HEAD"`).
    pub fn not_allowed(allow: &'static str) -> Reply {
        let mut r = Reply::error(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
        r.headers
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        r
    }

    /// Go's `http.Redirect(w, r, url, 301)`.
    pub fn moved(location: &str, method: &hyper::Method) -> Reply {
        let mut r = if method == hyper::Method::GET || method == hyper::Method::HEAD {
            let esc = html_escape(location);
            Reply::new(
                StatusCode::MOVED_PERMANENTLY,
                "text/html; charset=utf-8",
                format!("<a href=\"{esc}\">Moved Permanently</a>.\n\n"),
            )
        } else {
            let mut r = Reply::new(StatusCode::MOVED_PERMANENTLY, "", Bytes::new());
            r.headers.remove(header::CONTENT_TYPE);
            r
        };
        if let Ok(v) = location.parse() {
            r.headers.insert(header::LOCATION, v);
        }
        r
    }

    /// Go's `localRedirect` (used by `FileServer`): a 301 with a relative
    /// `Location` (the query kept), no body and no content type.
    pub fn local_redirect(location: &str, raw_query: &str) -> Reply {
        let mut loc = location.to_string();
        if !raw_query.is_empty() {
            loc.push('?');
            loc.push_str(raw_query);
        }
        let mut r = Reply::new(StatusCode::MOVED_PERMANENTLY, "", Bytes::new());
        r.headers.remove(header::CONTENT_TYPE);
        if let Ok(v) = loc.parse() {
            r.headers.insert(header::LOCATION, v);
        }
        r
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> Reply {
        self.reason = Some(reason.into());
        self
    }
}
