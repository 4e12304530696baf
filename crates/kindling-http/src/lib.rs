//! Kindling's HTTP service. The matchbox endpoints (`/`, `/boot.ipxe`,
//! `/boot.ipxe.0`, `/ipxe`, `/grub`, `/ignition`, `/generic`, `/metadata`,
//! `/cloud`, `/assets/`) answer byte for byte as matchbox does for the same
//! data directory and query, with Go `net/http` routing semantics (path
//! cleaning with 301, every method accepted). Every 404 carries a reason in
//! the request log.

// A `Reply` is the response itself and is moved once per request; boxing it
// would only add an allocation.
#![allow(clippy::result_large_err)]

pub mod body;
pub mod conn;
pub mod content;
pub mod listen;
pub mod paths;
pub mod server;

mod assets;
mod counts;
mod endpoint;
mod endpoints;
mod lifecycle;
mod queue;
mod request;
mod route;
mod shared;
#[cfg(test)]
mod tests;

pub use assets::hidden_asset;
pub use body::{Body, Content, Reply};
pub use counts::RequestCounts;
pub use endpoint::Endpoint;
pub use endpoints::grub_for_query;
pub use lifecycle::DISCOVERY_GROUP;
pub use request::{Answer, handle};
pub use server::serve;
pub use shared::{
    ExtRequest, Extension, MAX_ADMIN_BODY_BYTES, MAX_HEAD_BYTES, MAX_URI_LEN, MachineBinding,
    RequestObserver, RequestRecord, Shared, TRACK_BODY_BYTES, Translate,
};
