//! Kindling's operator view: every boot, per machine, where people look.
//!
//! * [`Ops`] is the hub. It implements [`kindling_dhcp::DhcpObserver`],
//!   [`kindling_tftp::TftpObserver`] and [`kindling_http::RequestObserver`]; events are
//!   keyed by MAC (HTTP and TFTP requests without one are tied to a MAC through the client
//!   IP), classified into boot [`Stage`]s, held in a bounded [`store::Store`], appended to
//!   a rotated JSON-lines [`journal`] and broadcast to live subscribers.
//! * [`Ops::extensions`] adds `/metrics`, `/readyz`, `/api/v1/...` and `/ui/` to the HTTP
//!   service.
//! * [`cli`] is `kindling machines [show MAC]`.
//!
//! See `docs/operations.md`.

pub mod classify;
pub mod cli;
pub mod event;
pub mod http;
pub mod journal;
pub mod metrics;
pub mod ops;
mod packed;
pub mod store;
pub mod ui;

use std::sync::Arc;

pub use event::{Event, Kind, Source, Stage};
pub use journal::FsyncPolicy;
pub use ops::{AssetStatus, NeighbourLookup, Ops, OpsConfig, OpsError, Update};
pub use store::{BootError, Limits, MachineDetail, MachineSummary};

impl Ops {
    /// The HTTP endpoints, to append to `kindling_http::Shared::extensions`:
    /// `/metrics`, `/readyz`, `/api/v1/*`, `/ui` + `/ui/*`.
    pub fn extensions(self: &Arc<Self>) -> Vec<Arc<dyn kindling_http::Extension>> {
        vec![
            Arc::new(http::MetricsEndpoint(self.clone())),
            Arc::new(http::ReadyEndpoint(self.clone())),
            Arc::new(http::ApiEndpoint(self.clone())),
            Arc::new(http::UiEndpoint(self.clone())),
        ]
    }
}
