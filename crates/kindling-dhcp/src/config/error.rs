//! What validation reports: [`ConfigError`], and the boot-file check every part uses.

use crate::wire::MAX_FILE;

/// A validation failure, naming the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{key}: bad MAC pattern {value:?}: expected six octets like 02:1a:4a:*:*:*")]
    BadMacPattern { key: String, value: String },
    #[error(
        "{key}: unknown architecture {value:?} (use a number 0-65535 or a name such as bios, efi-x64, efi-bc, efi-arm64, http-x64, http-arm64)"
    )]
    UnknownArch { key: String, value: String },
    #[error(
        "{key}: {value:?} is {len} bytes once expanded, too long for the 128-byte DHCP file field (at most {max})"
    )]
    FileTooLong {
        key: String,
        value: String,
        len: usize,
        max: usize,
    },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error(
        "dhcp.enabled is true but no interface is allowed: set dhcp.interfaces = [\"eth0\"] (or a subnet such as \"10.10.254.0/24\"), or dhcp.all_interfaces = true"
    )]
    NoInterfaces,
    #[error(
        "dhcp.interfaces lists {name:?} but dhcp.exclude_interfaces excludes it (pattern {pattern:?}); remove one of them"
    )]
    AllowedAndExcluded { name: String, pattern: String },
}

/// A boot file name or URL: not empty, no whitespace or control characters, and
/// `max_len` (its longest expansion) fits the `file` field.
pub(super) fn check_file(key: &str, v: &str, max_len: usize) -> Result<(), ConfigError> {
    if v.is_empty() {
        return Err(ConfigError::Invalid {
            key: key.into(),
            reason: "must not be empty".into(),
        });
    }
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ConfigError::Invalid {
            key: key.into(),
            reason: format!("{v:?} contains whitespace or control characters"),
        });
    }
    if max_len > MAX_FILE {
        return Err(ConfigError::FileTooLong {
            key: key.into(),
            value: v.into(),
            len: max_len,
            max: MAX_FILE,
        });
    }
    Ok(())
}
