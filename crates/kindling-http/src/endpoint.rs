//! Which endpoint answered a request: the request log's `endpoint` field, the
//! `endpoint` label of the HTTP metrics, and (for the endpoints of a machine's boot) the
//! boot timeline. One enum for the server, its extensions (menus, cache, the admin API)
//! and the observers, so that no crate matches on endpoint names in text.

use std::fmt;

/// The endpoint a request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/`.
    Home,
    BootIpxe,
    Ipxe,
    Grub,
    Ignition,
    Generic,
    Cloud,
    Metadata,
    /// `/install/done`: an install script reports that it finished.
    InstallDone,
    Healthz,
    /// `/assets/...`.
    Assets,
    /// `/tftp/<name>`: the iPXE binaries over HTTP (UEFI HTTP Boot).
    Tftp,
    /// `/menu.ipxe` and the other menu scripts (kindling-menu).
    Menu,
    /// `/cache/...` (kindling-menu).
    Cache,
    /// Admin listener: `/metrics`, `/readyz`, `/api/...`, `/ui/...` (kindling-ops).
    Metrics,
    Readyz,
    Api,
    Ui,
    /// Admin listener: no or a wrong bearer token.
    Unauthorized,
    /// No route matched.
    None,
    /// A redirect to the clean path.
    Redirect,
    /// Refused before routing (bad escape, URI or header too long).
    Invalid,
}

impl Endpoint {
    pub const ALL: [Endpoint; 22] = [
        Endpoint::Home,
        Endpoint::BootIpxe,
        Endpoint::Ipxe,
        Endpoint::Grub,
        Endpoint::Ignition,
        Endpoint::Generic,
        Endpoint::Cloud,
        Endpoint::Metadata,
        Endpoint::InstallDone,
        Endpoint::Healthz,
        Endpoint::Assets,
        Endpoint::Tftp,
        Endpoint::Menu,
        Endpoint::Cache,
        Endpoint::Metrics,
        Endpoint::Readyz,
        Endpoint::Api,
        Endpoint::Ui,
        Endpoint::Unauthorized,
        Endpoint::None,
        Endpoint::Redirect,
        Endpoint::Invalid,
    ];

    /// Position in [`Endpoint::ALL`] (counters' index).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The stable name (logs, metrics, the journal).
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Home => "home",
            Endpoint::BootIpxe => "boot.ipxe",
            Endpoint::Ipxe => "ipxe",
            Endpoint::Grub => "grub",
            Endpoint::Ignition => "ignition",
            Endpoint::Generic => "generic",
            Endpoint::Cloud => "cloud",
            Endpoint::Metadata => "metadata",
            Endpoint::InstallDone => "install-done",
            Endpoint::Healthz => "healthz",
            Endpoint::Assets => "assets",
            Endpoint::Tftp => "tftp",
            Endpoint::Menu => "menu",
            Endpoint::Cache => "cache",
            Endpoint::Metrics => "metrics",
            Endpoint::Readyz => "readyz",
            Endpoint::Api => "api",
            Endpoint::Ui => "ui",
            Endpoint::Unauthorized => "unauthorized",
            Endpoint::None => "none",
            Endpoint::Redirect => "redirect",
            Endpoint::Invalid => "invalid",
        }
    }

    /// The endpoint of a [`label`](Self::label).
    pub fn from_label(label: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.label() == label)
    }

    /// Part of a machine's boot (recorded on its timeline): the boot scripts, the
    /// per-machine answers, assets, the iPXE binaries, menus and the cache, and requests
    /// on the boot listener that went nowhere (a wrong URL in a profile). Not: the home
    /// page, health checks, the admin listener.
    pub fn is_boot(self) -> bool {
        !matches!(
            self,
            Endpoint::Home
                | Endpoint::Healthz
                | Endpoint::Metrics
                | Endpoint::Readyz
                | Endpoint::Api
                | Endpoint::Ui
                | Endpoint::Unauthorized
        )
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_read_back() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_label(e.label()), Some(e));
            assert_eq!(Endpoint::ALL[e.index()], e);
        }
        assert_eq!(Endpoint::from_label("nope"), None);
    }
}
