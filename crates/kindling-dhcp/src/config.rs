//! The `[dhcp]` table of `kindling.toml`: a raw serde struct (`DhcpConfig`) and its validated
//! form (`CheckedConfig`). Every key has a default; `DhcpConfig::default()` is a disabled server.
//!
//! * `raw`: the serde struct, its defaults and the limits of its values;
//! * `pattern`: MAC, name and interface patterns;
//! * `menu`: the PXE boot menu (`[dhcp.pxe_menu]`);
//! * `full`: full DHCP mode (`mode`, subnets, reservations);
//! * `checked`: validation into [`CheckedConfig`].

mod checked;
mod error;
mod full;
mod menu;
mod pattern;
mod raw;
pub mod v6;

pub use self::checked::{CheckedConfig, ConfigError, Rule, Target, UrlTemplate};
pub use self::full::{
    DhcpMode, FullConfig, Reservation, ReservationConfig, RouteConfig, Subnet, SubnetConfig,
};
pub use self::menu::{MenuItem, MenuTarget, PxeMenu, PxeMenuConfig, PxeMenuItemConfig};
pub use self::pattern::{InterfaceSelector, MacPattern, NamePattern};
pub use self::raw::{
    ArchSpec, DEFAULT_HTTP_BOOT_URL, DEFAULT_SCRIPT_URL, DhcpConfig, MAX_RATE_LIMIT_CLIENTS,
    MAX_RATE_LIMIT_VALUE, MAX_REPLY_DELAY_MS, MAX_RESCAN_SECS, OneOrMany, PLACEHOLDER_BINARY,
    PLACEHOLDER_IP, PLACEHOLDER_PORT, RateLimitConfig, RuleConfig, TargetKind,
};

#[cfg(test)]
mod tests;
