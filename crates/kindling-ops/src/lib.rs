//! Kindling's operator view: every boot, per machine, where people look.
//!
//! * [`Ops`] is the hub. It implements [`kindling_dhcp::DhcpObserver`],
//!   [`kindling_tftp::TftpObserver`] and [`kindling_http::RequestObserver`]; events are
//!   keyed by MAC (HTTP and TFTP requests without one are tied to a MAC through the client
//!   IP), classified into boot [`Stage`]s, held in a bounded [`store::Store`], appended to
//!   a rotated JSON-lines [`journal`] and broadcast to live subscribers.
//! * [`Ops::admin_extensions`] are `/metrics`, `/readyz`, `/api/v1/...` and `/ui/`, for the
//!   admin listener; [`Ops::boot_extensions`] (`/readyz`) go on the boot listener.
//! * [`cli`] is `kindling machines [show MAC]`.
//!
//! See `docs/operations.md`.

pub mod binding;
pub mod classify;
pub mod cli;
pub mod event;
pub mod http;
pub mod journal;
pub mod metrics;
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
    AssetStatus, NeighbourLookup, Ops, OpsConfig, SubscriberLimits, SubscriberSlot, Update,
};
pub use store::{BootError, Limits, MachineDetail, MachineSummary};

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

/// Nice value of the timeline's own threads (the applier and the journal writer): when
/// the CPU is short, answering DHCP, TFTP and HTTP comes first and the timeline catches
/// up in the gaps (its queue is bounded; what does not fit is counted as dropped).
const BACKGROUND_NICE: i32 = 5;

/// Lowers the calling thread's scheduling priority (on Linux, nice is per thread).
fn background_priority() {
    // SAFETY: setpriority(2) on the calling thread (who = 0); no pointers.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the timeline threads' priority");
    }
}

/// What the unit tests share with the examples (a BIOS PXE client and its DISCOVER/OFFER).
#[cfg(test)]
#[path = "../examples/support/mod.rs"]
mod test_support;
