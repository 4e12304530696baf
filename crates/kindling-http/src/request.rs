//! One request from start to end: size limits, routing, the request log and the observer
//! record (for a large body, when it ends).

use crate::endpoint::Endpoint;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{HeaderMap, Method, StatusCode, Uri};
use kindling_model::Labels;

use crate::body::{self, BodyDone, Content, Reply};
use crate::counts::Stats;
use crate::route::route;
use crate::shared::{
    MAX_HEAD_BYTES, MAX_URI_LEN, RequestObserver, RequestRecord, Shared, TRACK_BODY_BYTES,
};

/// What the connection sends for one request.
pub struct Answer {
    pub status: StatusCode,
    /// Every header but `Date`, `Connection` and `Content-Length`.
    pub headers: HeaderMap,
    /// `Content-Length` (none on a 304), written after `headers` without a header value.
    pub content_length: Option<u64>,
    /// The body (empty for HEAD).
    pub content: Content,
    /// The body's bytes to send (0 for HEAD).
    pub send_len: u64,
    /// For a large body: the report to make when it ends, with the bytes sent.
    pub done: Option<BodyDone>,
}

/// Handles one request of the boot listener.
pub async fn handle(
    shared: &Shared,
    stats: &Arc<Stats>,
    peer: SocketAddr,
    local: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Answer {
    let start = Instant::now();
    let raw_path = uri.path();
    let raw_query = uri.query().unwrap_or("");
    let mut labels_for_log: Option<Labels> = None;
    let head_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    let (endpoint, mut reply) =
        if uri.path_and_query().map_or(0, |pq| pq.as_str().len()) > MAX_URI_LEN {
            (
                Endpoint::Invalid,
                Reply::error(StatusCode::URI_TOO_LONG, "414 URI Too Long"),
            )
        } else if head_bytes > MAX_HEAD_BYTES {
            (
                Endpoint::Invalid,
                Reply::error(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "431 Request Header Fields Too Large",
                ),
            )
        } else {
            route(
                shared,
                peer,
                local,
                method,
                raw_path,
                raw_query,
                headers,
                &mut labels_for_log,
            )
            .await
        };
    let status = reply.status;
    let len = reply.len;
    log_request(
        method,
        raw_path,
        raw_query,
        endpoint,
        labels_for_log.as_ref(),
        &reply,
        start.elapsed(),
    );
    let head = method == Method::HEAD;
    let content = if head {
        Content::empty()
    } else {
        std::mem::replace(&mut reply.body, Content::empty())
    };
    let observer = shared.observer.clone();
    let mut done = None;
    if !head && len >= TRACK_BODY_BYTES {
        done = Some(report_at_end(
            observer,
            stats.clone(),
            peer,
            method.clone(),
            raw_path.to_string(),
            endpoint,
            labels_for_log,
            &reply,
            start,
        ));
    } else {
        let bytes = if head { 0 } else { len };
        stats
            .requests
            .answered(endpoint, status.as_u16(), bytes, true);
        if let Some(obs) = &observer {
            obs.request(&RequestRecord {
                peer,
                method,
                path: raw_path,
                endpoint,
                labels: labels_for_log.as_ref(),
                group: reply.group.as_deref(),
                profile: reply.profile.as_deref(),
                status: status.as_u16(),
                bytes,
                length: len,
                duration: start.elapsed(),
                reason: reply.reason.as_deref(),
                complete: true,
            });
        }
    }
    Answer {
        status,
        headers: std::mem::take(&mut reply.headers),
        content_length: (status != StatusCode::NOT_MODIFIED).then_some(len),
        content,
        send_len: if head || status == StatusCode::NOT_MODIFIED {
            0
        } else {
            len
        },
        done,
    }
}

/// The observer call for a large body, made when the body ends (or is dropped).
#[allow(clippy::too_many_arguments)]
fn report_at_end(
    obs: Option<Arc<dyn RequestObserver>>,
    stats: Arc<Stats>,
    peer: SocketAddr,
    method: Method,
    path: String,
    endpoint: Endpoint,
    labels: Option<Labels>,
    reply: &Reply,
    start: Instant,
) -> body::BodyDone {
    let status = reply.status.as_u16();
    let group = reply.group.clone();
    let profile = reply.profile.clone();
    let reason = reply.reason.clone();
    let len = reply.len;
    Box::new(move |sent, end| {
        let duration = start.elapsed();
        let ms = duration.as_secs_f64() * 1000.0;
        let (complete, reason) = match end {
            body::BodyEnd::Complete => (true, reason),
            body::BodyEnd::ClientGone => {
                tracing::warn!(
                    target: "kindling::http",
                    %peer, %method, path, endpoint = endpoint.label(), sent, length = len, ms = format_args!("{ms:.3}"),
                    "download cut short: the client closed the connection"
                );
                (false, None)
            }
            body::BodyEnd::Failed(e) => {
                tracing::warn!(
                    target: "kindling::http",
                    %peer, %method, path, endpoint = endpoint.label(), sent, length = len, ms = format_args!("{ms:.3}"),
                    error = %e, "download cut short: the body failed"
                );
                (false, Some(e))
            }
        };
        stats.requests.answered(endpoint, status, sent, complete);
        let Some(obs) = &obs else { return };
        obs.request(&RequestRecord {
            peer,
            method: &method,
            path: &path,
            endpoint,
            labels: labels.as_ref(),
            group: group.as_deref(),
            profile: profile.as_deref(),
            status,
            bytes: sent,
            length: len,
            duration,
            reason: reason.as_deref(),
            complete,
        });
    })
}

fn log_request(
    method: &Method,
    path: &str,
    query: &str,
    endpoint: Endpoint,
    labels: Option<&Labels>,
    reply: &Reply,
    elapsed: Duration,
) {
    let status = reply.status.as_u16();
    // The label list is built only for a line that will be written.
    let enabled = if status >= 400 {
        tracing::enabled!(target: "kindling::http", tracing::Level::WARN)
    } else {
        tracing::enabled!(target: "kindling::http", tracing::Level::INFO)
    };
    if !enabled {
        return;
    }
    let labels = labels.map(|l| {
        let mut s = String::with_capacity(l.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
        for (k, v) in l {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s
    });
    let ms = elapsed.as_secs_f64() * 1000.0;
    if status >= 400 {
        tracing::warn!(
            target: "kindling::http",
            %method, path, query, endpoint = endpoint.label(), labels = labels.as_deref().unwrap_or(""),
            group = reply.group.as_deref().unwrap_or(""), profile = reply.profile.as_deref().unwrap_or(""),
            status, bytes = reply.len, ms = format_args!("{ms:.3}"),
            reason = reply.reason.as_deref().unwrap_or(""),
            "request failed"
        );
    } else if let Some(reason) = reply.reason.as_deref() {
        // A successful answer that is not the ordinary one (a local boot for an installed
        // machine, the discovery profile, an install recorded) says why.
        tracing::info!(
            target: "kindling::http",
            %method, path, query, endpoint = endpoint.label(), labels = labels.as_deref().unwrap_or(""),
            group = reply.group.as_deref().unwrap_or(""), profile = reply.profile.as_deref().unwrap_or(""),
            status, bytes = reply.len, ms = format_args!("{ms:.3}"),
            reason,
            "request"
        );
    } else {
        tracing::info!(
            target: "kindling::http",
            %method, path, query, endpoint = endpoint.label(), labels = labels.as_deref().unwrap_or(""),
            group = reply.group.as_deref().unwrap_or(""), profile = reply.profile.as_deref().unwrap_or(""),
            status, bytes = reply.len, ms = format_args!("{ms:.3}"),
            "request"
        );
    }
}
