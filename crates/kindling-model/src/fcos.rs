//! What the Fedora CoreOS tracker knows of one stream and architecture: written by
//! `kindling-fcos`, shown by `kindling-ops` (`/api/v1/status` field `fcos`, the
//! `kindling_fcos_*` metrics, the dashboard). A plain type here so that the two share it
//! without depending on each other.

use serde::{Deserialize, Serialize};

/// One tracked stream and architecture.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FcosTrack {
    pub stream: String,
    /// Architecture of the tracked artifacts (`x86_64`, `aarch64`).
    pub arch: String,
    /// Release the profile boots.
    pub current: Option<String>,
    /// Release seen upstream at the last successful check.
    pub upstream: Option<String>,
    /// Error of the last check (`None` after a successful one).
    pub last_error: Option<String>,
    /// Unix time (seconds) of the last check, failed or not.
    pub last_check: Option<u64>,
    /// Unix time (seconds) of the last successful check.
    pub last_success: Option<u64>,
    /// Checks that failed since start.
    pub failures: u64,
    /// Checks that failed since the last successful one (0 after a success).
    pub consecutive_failures: u64,
    /// Profile switches since start.
    pub switches: u64,
}

impl FcosTrack {
    /// Whether the last check failed.
    pub fn failing(&self) -> bool {
        self.last_error.is_some()
    }
}
