//! One request from start to end: size limits, routing, the request log and the observer
//! record (for a large body, when it ends).

use crate::endpoint::Endpoint;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use kindling_model::Labels;

use crate::body::{self, Body, Reply};
use crate::counts::Stats;
use crate::route::route;
use crate::shared::{
    MAX_HEAD_BYTES, MAX_URI_LEN, RequestObserver, RequestRecord, Shared, TRACK_BODY_BYTES,
};

/// Handles one request.
pub async fn handle(
    shared: &Shared,
    stats: &Arc<Stats>,
    peer: SocketAddr,
    local: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let raw_path = uri.path();
    let raw_query = uri.query().unwrap_or("");
    let mut labels_for_log: Option<Labels> = None;
    let head_bytes: usize = req
        .headers()
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
                &method,
                raw_path,
                raw_query,
                req.headers(),
                &mut labels_for_log,
            )
            .await
        };
    let status = reply.status;
    let len = reply.len;
    let path_for_log = raw_path.to_string();
    log_request(
        &method,
        &path_for_log,
        raw_query,
        endpoint,
        labels_for_log.as_ref(),
        &reply,
        start.elapsed(),
    );
    let mut out_body = if method == Method::HEAD {
        body::empty()
    } else {
        std::mem::replace(&mut reply.body, body::empty())
    };
    let observer = shared.observer.clone();
    if method != Method::HEAD && len >= TRACK_BODY_BYTES {
        out_body = body::tracked(
            out_body,
            len,
            report_at_end(
                observer,
                stats.clone(),
                peer,
                method.clone(),
                path_for_log,
                endpoint,
                labels_for_log,
                &reply,
                start,
            ),
        );
    } else {
        let bytes = if method == Method::HEAD { 0 } else { len };
        stats
            .requests
            .answered(endpoint, status.as_u16(), bytes, true);
        if let Some(obs) = &observer {
            obs.request(&RequestRecord {
                peer,
                method: &method,
                path: &path_for_log,
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
    let mut resp = Response::new(out_body);
    *resp.status_mut() = status;
    *resp.headers_mut() = std::mem::take(&mut reply.headers);
    if status != StatusCode::NOT_MODIFIED {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    }
    resp
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
        l.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
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
