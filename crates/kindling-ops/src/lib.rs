//! Kindling's operator view: every boot, per machine, where people look.
//!
//! * [`Ops`] is the hub. It implements [`kindling_dhcp::DhcpObserver`],
//!   [`kindling_tftp::TftpObserver`] and [`kindling_http::RequestObserver`]; events are
//!   keyed by MAC (HTTP and TFTP requests without one are tied to a MAC through the client
//!   IP), classified into boot [`Stage`]s, held in a bounded [`store::Store`], appended to
//!   a rotated JSON-lines [`journal`] and broadcast to live subscribers.
//! * [`Ops::admin_extensions`] are `/metrics`, `/readyz`, `/api/v1/...` and `/ui/`, for the
//!   admin listener; [`Ops::boot_extensions`] (`/readyz`) go on the boot listener.
//! * [`cli`] is `kindling machines [show MAC]` and prints `--discovered|--installed`
//!   ([`lifecycle`]: the lifecycle state in text) as kindling-api's lifecycle client
//!   (`kindling_api::lifecycle_cli`, with `reinstall MAC` and `mark-installed MAC`) reads it.
//!
//! See `docs/operations.md`.

pub mod binding;
pub mod classify;
pub mod cli;
pub mod event;
pub mod http;
pub mod journal;
mod leases;
pub mod lifecycle;
pub mod metrics;
mod neighbours;
mod observe;
pub mod ops;
pub mod store;
pub mod ui;

use std::sync::Arc;

pub use event::{
    Detail, Dhcp, DhcpStep, Endpoint, Event, Http, Kind, Name, Reason, Source, Stage, Tftp,
};
pub use journal::{FsyncPolicy, JournalStatus};
pub use ops::{
    AssetStatus, Ops, OpsConfig, SubscriberLimits, SubscriberSlot, Update, give_back_freed_memory,
};
pub use store::{BootError, LeaseSummary, Limits, MachineDetail, MachineSummary};

impl Ops {
    /// The endpoints of the boot listener, to append to
    /// `kindling_http::Shared::extensions`: `/readyz` only (health probes). Nothing here
    /// reveals machines, events or configuration.
    pub fn boot_extensions(self: &Arc<Self>) -> Vec<Arc<dyn kindling_http::Extension>> {
        vec![Arc::new(http::ReadyEndpoint(self.clone()))]
    }

    /// The operator surface, for the admin listener (`kindling_http::server::Admin`):
    /// `/metrics`, `/readyz`, `/api/v1/*`, `/ui` + `/ui/*`.
    pub fn admin_extensions(self: &Arc<Self>) -> Vec<Arc<dyn kindling_http::Extension>> {
        vec![
            Arc::new(http::MetricsEndpoint(self.clone())),
            Arc::new(http::ReadyEndpoint(self.clone())),
            Arc::new(http::ApiEndpoint(self.clone())),
            Arc::new(http::UiEndpoint(self.clone())),
        ]
    }
}

/// What the unit tests share with the examples (a BIOS PXE client and its DISCOVER/OFFER).
#[cfg(test)]
#[path = "../examples/support/mod.rs"]
mod test_support;
