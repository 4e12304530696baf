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

/// How a [`tracked`] body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEnd {
    /// Every byte was handed to the connection.
    Complete,
    /// Dropped before its end: the client closed the connection.
    ClientGone,
    /// The body itself failed (a read error, an upstream that stopped).
    Failed(String),
}

/// Called once when a [`tracked`] body is done, with the data bytes handed to the
/// connection.
pub type BodyDone = Box<dyn FnOnce(u64, BodyEnd) + Send + Sync>;

/// A body that reports once how far it got: at its end, when it fails, or when it is
/// dropped before its end (the client closed the connection). Bytes handed to the
/// connection may still sit in kernel buffers, so a client that goes away during the last
/// few hundred KiB can count as complete; a download cut earlier never does.
struct Tracked {
    inner: Body,
    sent: u64,
    len: u64,
    done: Option<BodyDone>,
}

impl Tracked {
    fn finish(&mut self, end: BodyEnd) {
        if let Some(done) = self.done.take() {
            done(self.sent, end);
        }
    }
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        let r = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.sent += d.len() as u64;
                }
            }
            Poll::Ready(Some(Err(e))) => this.finish(BodyEnd::Failed(e.to_string())),
            Poll::Ready(None) if this.sent < this.len => {
                let short = this.len - this.sent;
                this.finish(BodyEnd::Failed(format!(
                    "the body ended {short} bytes short"
                )));
            }
            Poll::Ready(None) => this.finish(BodyEnd::Complete),
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // Connections may stop polling once Content-Length bytes went: that is complete.
        let end = if self.sent >= self.len {
            BodyEnd::Complete
        } else {
            BodyEnd::ClientGone
        };
        self.finish(end);
    }
}

/// `body` (of `len` bytes), calling `done` once with how far it got.
pub fn tracked(body: Body, len: u64, done: BodyDone) -> Body {
    BodyExt::boxed(Tracked {
        inner: body,
        sent: 0,
        len,
        done: Some(done),
    })
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
    pub headers: HeaderMap,
    pub body: Body,
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
        let body: Bytes = body.into();
        let mut headers = HeaderMap::new();
        if let Ok(v) = content_type.parse() {
            headers.insert(header::CONTENT_TYPE, v);
        }
        Reply {
            status,
            headers,
            len: body.len() as u64,
            body: full(body),
            reason: None,
            group: None,
            profile: None,
        }
    }

    /// A text body whose content type is sniffed as Go's net/http does.
    pub fn sniffed(body: impl Into<Bytes>) -> Reply {
        let body: Bytes = body.into();
        let ct = kindling_render::detect_content_type(&body);
        Reply::new(StatusCode::OK, ct, body)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    type Seen = Arc<Mutex<Vec<(u64, BodyEnd)>>>;

    fn recorder() -> (Seen, BodyDone) {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        (
            seen,
            Box::new(move |n, end| s.lock().unwrap().push((n, end))),
        )
    }

    fn chunks(parts: Vec<io::Result<&'static [u8]>>) -> Body {
        let s = futures_util::stream::iter(
            parts
                .into_iter()
                .map(|p| p.map(|b| Frame::data(Bytes::from_static(b)))),
        );
        BodyExt::boxed(StreamBody::new(s))
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn reports_once_how_far_the_body_got() {
        // Read to the end.
        let (seen, done) = recorder();
        let mut b = tracked(chunks(vec![Ok(b"abc"), Ok(b"de")]), 5, done);
        block_on(async { while b.frame().await.is_some() {} });
        drop(b);
        assert_eq!(*seen.lock().unwrap(), vec![(5, BodyEnd::Complete)]);

        // Dropped after the first chunk: the client went away.
        let (seen, done) = recorder();
        let mut b = tracked(chunks(vec![Ok(b"abc"), Ok(b"de")]), 5, done);
        block_on(async { b.frame().await });
        drop(b);
        assert_eq!(*seen.lock().unwrap(), vec![(3, BodyEnd::ClientGone)]);

        // Dropped once every byte went, without reading the end: complete.
        let (seen, done) = recorder();
        let mut b = tracked(chunks(vec![Ok(b"abcde")]), 5, done);
        block_on(async { b.frame().await });
        drop(b);
        assert_eq!(*seen.lock().unwrap(), vec![(5, BodyEnd::Complete)]);

        // The body itself failed.
        let (seen, done) = recorder();
        let mut b = tracked(
            chunks(vec![Ok(b"ab"), Err(io::Error::other("upstream stopped"))]),
            5,
            done,
        );
        block_on(async { while let Some(Ok(_)) = b.frame().await {} });
        drop(b);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(2, BodyEnd::Failed("upstream stopped".into()))]
        );

        // A body shorter than announced (a file cut while served) failed.
        let (seen, done) = recorder();
        let mut b = tracked(chunks(vec![Ok(b"ab")]), 5, done);
        block_on(async { while b.frame().await.is_some() {} });
        drop(b);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(2, BodyEnd::Failed("the body ended 3 bytes short".into()))]
        );
    }
}
