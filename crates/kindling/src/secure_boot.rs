//! `[secure_boot]`: UEFI Secure Boot through the distributions' signed shim and GRUB
//! (docs/secure-boot.md). `secure_boot/config.rs` holds the table, its start-up checks and how
//! it changes the DHCP and TFTP settings ([`SecureBootConfig::wire`]); `secure_boot/tftp.rs`
//! answers GRUB's TFTP requests from the boot service, `secure_boot/pe.rs` tells a signed
//! kernel from an unsigned one, `secure_boot/profiles.rs` finds the profiles a Secure Boot
//! route boots (for `kindling check`).

mod config;
mod pe;
mod profiles;
mod tftp;

pub use config::SecureBootConfig;
pub use profiles::{group_findings, profile_findings};
pub use tftp::source as tftp_source;
