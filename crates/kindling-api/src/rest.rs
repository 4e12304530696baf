//! The REST objects API of the admin listener (behind its token and/or mTLS):
//!
//! - `GET /api/v1/{groups,profiles,ignition,generic}`: the ids, a sorted JSON array;
//! - `GET /api/v1/{kind}/{id}` (and HEAD): the object as stored, with its `ETag`;
//! - `PUT /api/v1/{kind}/{id}`: the body is the file (a group or profile in matchbox's
//!   JSON, a template as it is); checked as the loader and `kindling check` check it (a
//!   body that would not load is refused with the line and column, nothing written);
//!   `201` when new, `200` when replaced, with the new `ETag`;
//! - `DELETE /api/v1/{kind}/{id}`: `200`, or `404` when there is none.
//!
//! `If-Match: "<etag>"` (or `*`) and `If-None-Match: *` make a write or a delete happen
//! only when the object is as expected, checked and written as one step; otherwise
//! `412` with the current `ETag`, nothing written. Writes return once the server's
//! snapshot holds them, as the gRPC API's do.

// A `Reply` is the response itself and is moved once per request (as in kindling-http);
// boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use std::future::Future;
use std::pin::Pin;

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use kindling_http::{Endpoint, ExtRequest, Extension, Reply};
use kindling_model::store::{Expect, Kind, ObjectError};
use serde_json::json;

use crate::core::{Api, Who};
use crate::status::ApiError;

/// The objects API as an admin-listener extension.
pub struct ObjectsApi {
    api: Api,
    credentialed: bool,
}

impl ObjectsApi {
    /// `credentialed`: the admin listener asks for a token or a client certificate. Without
    /// credentials every request is refused (403): these objects decide what machines
    /// boot and hold their secrets, and any local user can reach a loopback listener.
    pub fn new(api: Api, credentialed: bool) -> ObjectsApi {
        ObjectsApi { api, credentialed }
    }
}

type Answer<'a> = Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

impl Extension for ObjectsApi {
    fn name(&self) -> Endpoint {
        Endpoint::Api
    }

    fn handle<'a>(&'a self, req: &'a ExtRequest<'a>) -> Option<Answer<'a>> {
        let rest = req.path.strip_prefix("/api/v1/")?;
        let (area, id) = match rest.split_once('/') {
            Some((a, id)) => (a, Some(id)),
            None => (rest, None),
        };
        let kind = match area {
            "groups" => Kind::Group,
            "profiles" => Kind::Profile,
            "ignition" => Kind::Ignition,
            "generic" => Kind::Generic,
            _ => return None,
        };
        Some(Box::pin(self.answer(req, kind, id)))
    }
}

impl ObjectsApi {
    async fn answer(&self, req: &ExtRequest<'_>, kind: Kind, id: Option<&str>) -> Reply {
        if !self.credentialed {
            return needs_credentials("the objects API");
        }
        let who = Who(Some(req.peer));
        let m = req.method;
        let r = match id {
            None if *m == Method::GET || *m == Method::HEAD => self.list(kind).await,
            None => Err(not_allowed("GET, HEAD")),
            Some(id) if *m == Method::GET || *m == Method::HEAD => self.get(kind, id).await,
            Some(id) if *m == Method::PUT => self.put(who, kind, id, req).await,
            Some(id) if *m == Method::DELETE => self.delete(who, kind, id, req.headers).await,
            Some(_) => Err(not_allowed("GET, HEAD, PUT, DELETE")),
        };
        r.unwrap_or_else(|e| e)
    }

    async fn list(&self, kind: Kind) -> Result<Reply, Reply> {
        let ids = self.api.ids(kind).await.map_err(refusal)?;
        Ok(json_reply(StatusCode::OK, &json!(ids)))
    }

    async fn get(&self, kind: Kind, id: &str) -> Result<Reply, Reply> {
        let (bytes, tag) = self
            .api
            .get_tagged(kind, id.to_string())
            .await
            .map_err(refusal)?;
        let ctype = match kind {
            Kind::Group | Kind::Profile => "application/json",
            Kind::Ignition | Kind::Generic => "application/octet-stream",
        };
        let mut r = Reply::new(StatusCode::OK, ctype, bytes);
        set_etag(&mut r.headers, &tag);
        Ok(r)
    }

    async fn put(
        &self,
        who: Who,
        kind: Kind,
        id: &str,
        req: &ExtRequest<'_>,
    ) -> Result<Reply, Reply> {
        let expect = expectation(req.headers)?;
        if matches!(kind, Kind::Group | Kind::Profile) {
            named_as_the_path(kind, id, req.body)?;
        }
        let (tag, created) = self
            .api
            .put(who, kind, id.to_string(), req.body.to_vec(), expect)
            .await
            .map_err(refusal)?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let mut r = json_reply(
            status,
            &json!({"kind": kind.what(), "id": id, "etag": tag, "created": created}),
        );
        set_etag(&mut r.headers, &tag);
        Ok(r)
    }

    async fn delete(
        &self,
        who: Who,
        kind: Kind,
        id: &str,
        headers: &HeaderMap,
    ) -> Result<Reply, Reply> {
        let expect = expectation(headers)?;
        let existed = self
            .api
            .delete(who, kind, id.to_string(), expect)
            .await
            .map_err(refusal)?;
        if !existed {
            return Err(refusal(ApiError::Object(ObjectError::NotFound {
                what: kind.what(),
                id: id.to_string(),
            })));
        }
        Ok(json_reply(
            StatusCode::OK,
            &json!({"kind": kind.what(), "id": id, "deleted": true}),
        ))
    }
}

/// `If-Match` (a tag, or `*`; it takes precedence) and `If-None-Match: *` as an
/// [`Expect`]; a weak tag never matches (412); other forms (several tags, `If-None-Match`
/// with a tag) are refused with 400 rather than guessed at.
fn expectation(headers: &HeaderMap) -> Result<Expect, Reply> {
    let text = |name| {
        headers
            .get(name)
            .map(|v: &HeaderValue| v.to_str().map(str::trim).unwrap_or("\u{0}"))
    };
    let bad = |why: &str| {
        json_reply(StatusCode::BAD_REQUEST, &json!({"error": why})).with_reason(why.to_string())
    };
    if let Some(v) = text(header::IF_MATCH) {
        if v == "*" {
            return Ok(Expect::Present);
        }
        if v.starts_with("W/") {
            // A weak tag never matches strongly (RFC 9110 13.1.1): 412, nothing written.
            return Ok(Expect::Tag(String::new()));
        }
        return match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(t) if !t.is_empty() && !t.contains(['"', ',']) => Ok(Expect::Tag(t.to_string())),
            _ => Err(bad(
                "If-Match takes one strong tag (\"...\", as ETag gave it) or *",
            )),
        };
    }
    match text(header::IF_NONE_MATCH) {
        None => Ok(Expect::Anything),
        Some("*") => Ok(Expect::Absent),
        Some(_) => Err(bad("If-None-Match takes only * (create only)")),
    }
}

/// A group's or profile's own `id`, when it has one, must be the path's: the file is
/// found by its name, and two names for one object would confuse every reader.
fn named_as_the_path(kind: Kind, id: &str, body: &[u8]) -> Result<(), Reply> {
    let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(body) else {
        // Not JSON: the loader's parser says why, with the line and column.
        return Ok(());
    };
    let own = m
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("id"))
        .and_then(|(_, v)| v.as_str());
    match own {
        Some(own) if !own.is_empty() && own != id => {
            let why = format!(
                "the {} says its id is {own:?}, but the path names {id:?}",
                kind.what()
            );
            Err(json_reply(StatusCode::BAD_REQUEST, &json!({"error": why})).with_reason(why))
        }
        _ => Ok(()),
    }
}

fn refusal(e: ApiError) -> Reply {
    let status = crate::status::http_status(&e);
    let msg = e.to_string();
    let mut r = json_reply(status, &json!({"error": msg})).with_reason(msg);
    if let ApiError::Object(ObjectError::Changed {
        current: Some(t), ..
    }) = &e
    {
        set_etag(&mut r.headers, t);
    }
    r
}

pub(crate) fn not_allowed(allow: &'static str) -> Reply {
    let mut r = json_reply(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": format!("allowed: {allow}")}),
    )
    .with_reason("method not allowed");
    r.headers
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn set_etag(h: &mut HeaderMap, tag: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{tag}\"")) {
        h.insert(header::ETAG, v);
    }
}

/// The 403 of a write API on an admin listener without credentials.
pub(crate) fn needs_credentials(what: &str) -> Reply {
    let why = format!(
        "{what} needs credentials on the admin listener: set [admin] token_file, or tls_cert, tls_key and client_ca"
    );
    json_reply(StatusCode::FORBIDDEN, &json!({ "error": why })).with_reason(why)
}

pub(crate) fn json_reply(status: StatusCode, v: &serde_json::Value) -> Reply {
    let mut body = v.to_string();
    body.push('\n');
    Reply::new(status, "application/json", body)
}
