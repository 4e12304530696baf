//! Kindling's proxy DHCP server.
//!
//! * [`decide`] is the sans-I/O core: one datagram plus its [`Context`] (interface, our
//!   address there, port 67 or 4011, source) in, a [`Decision`] out: a reply (bytes and
//!   destination, `yiaddr` always 0) or an [`IgnoreReason`] with a stable snake_case label.
//! * [`DhcpConfig`] is the `[dhcp]` table of `kindling.toml`; [`DhcpConfig::validate`] turns it
//!   into a [`CheckedConfig`].
//! * [`DhcpServer`] is the tokio shell: one UDP socket per allowed interface for port 67 and one
//!   for 4011 (SO_BINDTODEVICE), counters, an observer hook for the boot timeline.
//!
//! See `docs/dhcp.md` for the decision table and the dnsmasq translation.

pub mod arch;
pub mod config;
mod dest;
pub mod full;
pub mod mmsg;
pub mod netif;
pub mod opt43;
pub mod policy;
pub mod ratelimit;
mod rawsend;
pub mod server;
pub mod v6;
pub mod wire;

#[cfg(test)]
mod tests;

pub use config::{
    CheckedConfig, ConfigError, DhcpConfig, RateLimitConfig, RuleConfig, Target, TargetKind,
};
pub use kindling_guard::Esc;
pub use policy::{
    ClientInfo, Context, Decision, Firmware, IgnoreReason, ListenPort, Outcome, Reply,
    SECURE_BOOT_FILE, UnsafeAddr, check_destination, decide,
};
pub use ratelimit::{LogGate, RateLimiter, Verdict};
pub use server::{
    Answered6Event, AnsweredEvent, Claim, DhcpError, DhcpObserver, DhcpServer, DhcpStats,
    IgnoredEvent, LeasesHandle, Seen6Event, SeenEvent, SharedLeases, StatsHandle,
};
