//! `kindling migrate dnsmasq`: a dnsmasq configuration to `kindling.toml`.
//!
//! Sans-I/O: [`translate()`] takes the configuration text and returns the TOML text and the
//! warnings. How: the configuration is parsed ([`parse`]); dnsmasq's answer to each kind of
//! network-boot client (BIOS, UEFI, iPXE, HTTP Boot, arm64; the default MAC and every MAC the
//! configuration names) is computed ([`sim`]); Kindling's `[dhcp]` keys and rules are chosen
//! so that Kindling's own decision core (`kindling_dhcp::decide`) gives the same answers;
//! every remaining difference is listed in the output with its reason, and every line that
//! Kindling cannot express gets a `not translated` comment.

pub mod parse;
pub mod sim;
mod translate;

pub use translate::{Options, translate};
