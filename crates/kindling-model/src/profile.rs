//! Profiles: what a machine boots (kernel, initrds, args) and which
//! Ignition / generic / cloud files it gets.

use serde_json::Value;

use crate::json::{self, JsonError};
use crate::lifecycle::InstallOnce;

/// The `boot` section of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Boot {
    pub kernel: String,
    pub initrd: Vec<String>,
    pub args: Vec<String>,
}

/// A profile as matchbox reads it from `profiles/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub file_id: String,
    pub id: String,
    pub name: String,
    pub ignition_id: String,
    pub cloud_id: String,
    pub generic_id: String,
    /// `None` when `boot` is absent or `null`: `/ipxe` and `/grub` then 404.
    pub boot: Option<Boot>,
    /// Kindling's `install_once` (matchbox ignores it): after the install is done the
    /// machine is answered with a local boot until it is re-armed.
    pub install_once: Option<InstallOnce>,
}

/// Why a profile file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error(transparent)]
    Json(#[from] JsonError),
    #[error("profile has no id (matchbox requires one)")]
    MissingId,
}

impl Profile {
    /// Parses a profile as matchbox's `ProfileGet` does (unknown fields and
    /// the legacy `cmdline` ignored; a non-empty `id` required).
    pub fn parse(file_id: &str, bytes: &[u8]) -> Result<Profile, ProfileError> {
        let v = json::parse(bytes)?;
        let obj = json::object(&v, "profile")?;
        let boot = match json::field(obj, "boot") {
            None | Some(Value::Null) => None,
            Some(Value::Object(b)) => Some(Boot {
                kernel: json::string_field(b, "kernel", "boot")?,
                initrd: json::string_list_field(b, "initrd", "boot")?,
                args: json::string_list_field(b, "args", "boot")?,
            }),
            Some(other) => {
                return Err(JsonError::Type {
                    field: "boot".into(),
                    expected: "object",
                    found: json::kind(other),
                }
                .into());
            }
        };
        let p = Profile {
            file_id: file_id.to_string(),
            id: json::string_field(obj, "id", "")?,
            name: json::string_field(obj, "name", "")?,
            ignition_id: json::string_field(obj, "ignition_id", "")?,
            cloud_id: json::string_field(obj, "cloud_id", "")?,
            generic_id: json::string_field(obj, "generic_id", "")?,
            boot,
            install_once: InstallOnce::from_field(obj)?,
        };
        if p.id.is_empty() {
            return Err(ProfileError::MissingId);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_with_legacy_cmdline() {
        let p = Profile::parse(
            "p",
            br#"{"id":"p","Ignition_ID":"x.ign","boot":{"kernel":"/k","initrd":["/i"],"args":["a"]},"cmdline":{"a":"b"}}"#,
        )
        .unwrap();
        assert_eq!(p.ignition_id, "x.ign");
        assert_eq!(p.boot.unwrap().initrd, vec!["/i"]);
    }

    #[test]
    fn null_boot_and_missing_id() {
        assert_eq!(
            Profile::parse("p", br#"{"id":"p","boot":null}"#)
                .unwrap()
                .boot,
            None
        );
        assert_eq!(
            Profile::parse("p", br#"{"name":"n"}"#).unwrap_err(),
            ProfileError::MissingId
        );
    }
}
