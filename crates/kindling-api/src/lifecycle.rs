//! The machine lifecycle API of the admin listener:
//!
//! - `GET /api/v1/lifecycle`: every machine with lifecycle state (installed, discovered);
//! - `GET /api/v1/lifecycle/{mac}`: one machine's record (404 when it has none);
//! - `POST /api/v1/lifecycle/{mac}/reinstall`: re-arm an installed machine: its next boot
//!   installs again;
//! - `POST /api/v1/lifecycle/{mac}/installed`: mark a machine installed by hand.
//!
//! Writes are durable before the answer, and need credentials on the admin listener
//! (a re-armed machine may wipe its disk on its next boot).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use kindling_http::{Endpoint, ExtRequest, Extension, Reply};
use kindling_model::{Change, MacAddr, Machines};
use serde_json::json;

use crate::rest::{json_reply, needs_credentials, not_allowed};

/// The lifecycle API as an admin-listener extension. It is mounted before kindling-ops'
/// `/api/v1/*` endpoint, which answers every other path under `/api/v1/` (and every
/// method but GET with 405).
pub struct LifecycleApi {
    /// `None`: `[machines] track = false` (every request gets a 404 saying so).
    machines: Option<Arc<Machines>>,
    credentialed: bool,
}

impl LifecycleApi {
    /// `credentialed`: as for [`crate::ObjectsApi`]; without it writes get 403 (reads are
    /// answered as the rest of the admin listener's API is).
    pub fn new(machines: Option<Arc<Machines>>, credentialed: bool) -> LifecycleApi {
        LifecycleApi {
            machines,
            credentialed,
        }
    }
}

type Answer<'a> = Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

fn bad_mac(text: &str) -> Reply {
    let why = format!("not a MAC address: \"{}\"", kindling_guard::Esc::str(text));
    json_reply(StatusCode::BAD_REQUEST, &json!({ "error": why })).with_reason(why)
}

impl Extension for LifecycleApi {
    fn name(&self) -> Endpoint {
        Endpoint::Api
    }

    fn handle<'a>(&'a self, req: &'a ExtRequest<'a>) -> Option<Answer<'a>> {
        let rest = req.path.strip_prefix("/api/v1/lifecycle")?;
        let rest = match rest {
            "" | "/" => None,
            r => Some(r.strip_prefix('/')?),
        };
        Some(Box::pin(self.answer(req, rest)))
    }
}

impl LifecycleApi {
    async fn answer(&self, req: &ExtRequest<'_>, rest: Option<&str>) -> Reply {
        let Some(machines) = &self.machines else {
            let why = "machine lifecycle tracking is off ([machines] track = false)";
            return json_reply(StatusCode::NOT_FOUND, &json!({ "error": why })).with_reason(why);
        };
        let get = *req.method == Method::GET || *req.method == Method::HEAD;
        let Some(rest) = rest else {
            if !get {
                return not_allowed("GET, HEAD");
            }
            return json_reply(
                StatusCode::OK,
                &json!({
                    "machines": machines.list(),
                    "discovered_dropped": machines.dropped(),
                    "discovered_unwritten": machines.unwritten(),
                    "unavailable": machines.broken(),
                    "read_only": machines.read_only(),
                }),
            );
        };
        let (mac_text, change) = match rest.split_once('/') {
            None => (rest, None),
            Some((m, "reinstall")) => (m, Some(Change::Reinstall)),
            Some((m, "installed")) => (m, Some(Change::Installed)),
            Some(_) => return Reply::not_found(format!("no endpoint {}", req.path)),
        };
        let Ok(mac) = MacAddr::parse(mac_text) else {
            return bad_mac(mac_text);
        };
        let Some(change) = change else {
            if !get {
                return not_allowed("GET, HEAD");
            }
            return match machines.get(mac) {
                Some(r) => json_reply(StatusCode::OK, &json!(r)),
                None => json_reply(
                    StatusCode::NOT_FOUND,
                    &json!({ "error": format!("no lifecycle state for {mac}") }),
                ),
            };
        };
        if *req.method != Method::POST {
            return not_allowed("POST");
        }
        if !self.credentialed {
            return needs_credentials("the lifecycle API");
        }
        let m = Arc::clone(machines);
        let result = tokio::task::spawn_blocking(move || change.apply(&m, mac))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        match result {
            Ok(changed) => {
                tracing::info!(target: "kindling::machines", %mac, change = change.segment(), changed, peer = %req.peer, "lifecycle changed by the operator");
                json_reply(
                    StatusCode::OK,
                    &json!({ "mac": mac.to_string(), "change": change.segment(), "changed": changed, "record": machines.get(mac) }),
                )
            }
            Err(e) => {
                let why = format!("cannot write the state of {mac}: {e}");
                json_reply(StatusCode::INTERNAL_SERVER_ERROR, &json!({ "error": why }))
                    .with_reason(why)
            }
        }
    }
}
