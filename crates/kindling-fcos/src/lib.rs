//! Fedora CoreOS asset sync for Kindling.
//!
//! * [`stream`]: the stream metadata (`<base>/streams/<stream>.json`) and the
//!   live-PXE artifacts picked out of it (file names come from `location` only).
//! * [`download`]: resumable, retried downloads into `.part` files, the sha256
//!   from the metadata checked while streaming.
//! * [`keyring`]: detached OpenPGP signatures checked with rPGP against the
//!   operator's keyring (Fedora's keys).
//! * [`profile`]: the `profiles/fedora-coreos-<stream>.json` live-PXE profile,
//!   rewritten atomically, operator arguments preserved.
//! * [`state`]: `assets/fedora-coreos/<stream>/state.json` (current and kept releases).
//! * [`sync`]: `pull`, `rollback`, `status`: the whole verified switch.
//! * [`track`](mod@track): the `[fcos]` config table and the tracking loop for `kindling serve`.
//! * `metrics`: the tracker's `kindling_fcos_*` series ([`FcosStatus::register`]).
//! * [`cli`]: `kindling fcos pull|status|rollback`.

pub mod cli;
pub mod download;
mod error;
mod fsutil;
pub mod keyring;
mod metrics;
pub mod profile;
pub mod state;
pub mod stream;
pub mod sync;
pub mod track;

pub use error::FcosError;
pub use kindling_model::FcosTrack;
pub use sync::{PullOptions, PullOutcome, RetryPolicy, StreamReport, pull, rollback, status};
pub use track::{FcosConfig, FcosStatus, track};

/// Default stream metadata host.
pub const DEFAULT_BASE_URL: &str = "https://builds.coreos.fedoraproject.org";

/// Where Debian's / Fedora's `distribution-gpg-keys` package puts Fedora's keys,
/// then where a Fedora host keeps its own: the first one that exists is the
/// default keyring.
pub const DEFAULT_KEYRINGS: &[&str] = &[
    "/usr/share/distribution-gpg-keys/fedora",
    "/etc/pki/rpm-gpg",
];
