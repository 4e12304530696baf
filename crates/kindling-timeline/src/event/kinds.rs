//! The small enums of an event: its [`Stage`] in a boot, the [`Source`] service and the
//! [`Kind`] of event (the journal's `kind`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How far a boot got, in boot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Proxy DHCP (firmware or iPXE).
    Dhcp,
    /// The iPXE binary over TFTP (or `/tftp/` over HTTP for UEFI HTTP Boot).
    Tftp,
    /// `/boot.ipxe`, `/ipxe`, `/grub`.
    Script,
    Kernel,
    Initrd,
    Rootfs,
    /// `/ignition` served.
    Ignition,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Dhcp,
        Stage::Tftp,
        Stage::Script,
        Stage::Kernel,
        Stage::Initrd,
        Stage::Rootfs,
        Stage::Ignition,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Stage::Dhcp => "dhcp",
            Stage::Tftp => "tftp",
            Stage::Script => "script",
            Stage::Kernel => "kernel",
            Stage::Initrd => "initrd",
            Stage::Rootfs => "rootfs",
            Stage::Ignition => "ignition",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Which service saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Dhcp,
    Tftp,
    Http,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::Dhcp => "dhcp",
            Source::Tftp => "tftp",
            Source::Http => "http",
        }
    }
}

/// What kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A PXE/iPXE DHCP packet arrived (before the decision).
    DhcpSeen,
    /// A proxy DHCP reply was sent.
    DhcpAnswered,
    /// A DHCP packet was not answered (`reason` says why).
    DhcpIgnored,
    /// A TFTP transfer ended.
    TftpTransfer,
    /// An HTTP request was answered.
    HttpRequest,
}
