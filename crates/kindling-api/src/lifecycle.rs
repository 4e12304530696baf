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
use kindling_model::{MacAddr, Machines, Via};
use serde_json::json;

use crate::rest::{json_reply, needs_credentials};

/// The lifecycle API as an admin-listener extension.
pub struct LifecycleApi {
    machines: Arc<Machines>,
    credentialed: bool,
}

impl LifecycleApi {
    /// `credentialed`: as for [`crate::ObjectsApi`]; without it writes get 403 (reads are
    /// answered as the rest of the admin listener's API is).
    pub fn new(machines: Arc<Machines>, credentialed: bool) -> LifecycleApi {
        LifecycleApi {
            machines,
            credentialed,
        }
    }
}

type Answer<'a> = Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

/// What a lifecycle write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Reinstall,
    Installed,
}

impl Change {
    pub fn segment(self) -> &'static str {
        match self {
            Change::Reinstall => "reinstall",
            Change::Installed => "installed",
        }
    }

    /// Applies the change (blocking, durable); whether anything changed.
    pub fn apply(self, machines: &Machines, mac: MacAddr) -> std::io::Result<bool> {
        match self {
            Change::Reinstall => machines.rearm(mac),
            Change::Installed => machines.mark_installed(mac, Via::Operator, "", ""),
        }
    }
}

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
            "" => None,
            r => Some(r.strip_prefix('/')?),
        };
        Some(Box::pin(self.answer(req, rest)))
    }
}

impl LifecycleApi {
    async fn answer(&self, req: &ExtRequest<'_>, rest: Option<&str>) -> Reply {
        let get = *req.method == Method::GET || *req.method == Method::HEAD;
        let Some(rest) = rest else {
            if !get {
                return Reply::error(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
            }
            return json_reply(
                StatusCode::OK,
                &json!({ "machines": self.machines.list(), "discovered_dropped": self.machines.dropped() }),
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
                return Reply::error(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
            }
            return match self.machines.get(mac) {
                Some(r) => json_reply(StatusCode::OK, &json!(r)),
                None => json_reply(
                    StatusCode::NOT_FOUND,
                    &json!({ "error": format!("no lifecycle state for {mac}") }),
                ),
            };
        };
        if *req.method != Method::POST {
            return Reply::error(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
        }
        if !self.credentialed {
            return needs_credentials("the lifecycle API");
        }
        let m = Arc::clone(&self.machines);
        match tokio::task::spawn_blocking(move || change.apply(&m, mac)).await {
            Ok(Ok(changed)) => {
                tracing::info!(target: "kindling::machines", %mac, change = change.segment(), changed, peer = %req.peer, "lifecycle changed by the operator");
                json_reply(
                    StatusCode::OK,
                    &json!({ "mac": mac.to_string(), "change": change.segment(), "changed": changed, "record": self.machines.get(mac) }),
                )
            }
            Ok(Err(e)) => {
                let why = format!("cannot write the state of {mac}: {}", e.kind());
                json_reply(StatusCode::INTERNAL_SERVER_ERROR, &json!({ "error": why }))
                    .with_reason(why)
            }
            Err(e) => {
                let why = format!("cannot write the state of {mac}: {e}");
                json_reply(StatusCode::INTERNAL_SERVER_ERROR, &json!({ "error": why }))
                    .with_reason(why)
            }
        }
    }
}
