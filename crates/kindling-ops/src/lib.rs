//! Kindling's operator view, live: every boot, per machine, where people look.
//!
//! * [`Ops`] is the hub. It implements [`kindling_dhcp::DhcpObserver`],
//!   [`kindling_tftp::TftpObserver`] and [`kindling_http::RequestObserver`]; events are
//!   keyed by MAC (HTTP and TFTP requests without one are tied to a MAC through the client
//!   IP), classified into boot stages and held in a bounded store (both
//!   `kindling-timeline`, sans I/O), appended to a rotated JSON-lines [`journal`] and
//!   broadcast to live subscribers.
//! * [`Ops::admin_extensions`] are `/metrics`, `/readyz`, `/api/v1/...` and `/ui/`, for the
//!   admin listener; [`Ops::boot_extensions`] (`/readyz`) go on the boot listener.
//! * `kindling machines [show MAC]` is a client of these (`kindling_api::machines_cli`).
//!
//! See `docs/operations.md`.

pub mod binding;
pub mod http;
/// The boot journal: `kindling-journal`'s rotated JSON-lines log, of boot events.
pub use kindling_journal as journal;
mod leases;
pub mod metrics;
mod neighbours;
mod observe;
pub mod ops;
pub mod ui;

use std::sync::Arc;

pub use journal::{FsyncPolicy, JournalStatus};
pub use metrics::AssetStatus;
pub use ops::{Ops, OpsConfig, SubscriberSlot, Update, give_back_freed_memory};

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
