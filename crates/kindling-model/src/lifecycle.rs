//! Install once, then boot locally: what a profile or group says about it
//! (`"install_once": {"done": "ignition", "local_boot": "exit"}`, a Kindling extension
//! matchbox ignores), and the answer a machine gets once it is installed.

use serde_json::Value;

use crate::json::{self, JsonError};

/// What marks an install as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Done {
    /// A successful `/ignition` answer (coreos-installer fetches it while installing).
    #[default]
    Ignition,
    /// The install calls `/install/done?mac=...` (the Ignition fetch does not count).
    Callback,
    /// Only the operator (`kindling machines mark-installed MAC`, the API).
    Operator,
}

/// How an installed machine is sent to its disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocalBoot {
    /// iPXE `exit` (GRUB `exit`): back to the firmware, which tries its next boot device.
    #[default]
    Exit,
    /// iPXE `sanboot --no-describe --drive 0x80`: the first BIOS disk, without the firmware.
    Sanboot,
}

/// A profile's or group's `install_once` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InstallOnce {
    pub done: Done,
    pub local_boot: LocalBoot,
}

impl Done {
    pub fn as_str(self) -> &'static str {
        match self {
            Done::Ignition => "ignition",
            Done::Callback => "callback",
            Done::Operator => "operator",
        }
    }
}

impl LocalBoot {
    pub fn as_str(self) -> &'static str {
        match self {
            LocalBoot::Exit => "exit",
            LocalBoot::Sanboot => "sanboot",
        }
    }
}

fn one_of<T: Copy>(
    obj: &serde_json::Map<String, Value>,
    name: &str,
    choices: &[(&'static str, T)],
    default: T,
) -> Result<T, JsonError> {
    let field = json::join("install_once", name);
    match json::field(obj, name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => choices
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|(_, v)| *v)
            .ok_or_else(|| JsonError::Value {
                field,
                expected: choices
                    .iter()
                    .map(|(n, _)| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                found: format!("{s:?}"),
            }),
        Some(other) => Err(JsonError::Type {
            field,
            expected: "string",
            found: json::kind(other),
        }),
    }
}

impl InstallOnce {
    /// The `install_once` field of a profile or group: absent, `null` or `false` is off,
    /// `true` is on with the defaults, an object names `done` and `local_boot`.
    pub fn from_field(obj: &serde_json::Map<String, Value>) -> Result<Option<Self>, JsonError> {
        match json::field(obj, "install_once") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
            Some(Value::Bool(true)) => Ok(Some(InstallOnce::default())),
            Some(Value::Object(o)) => Ok(Some(InstallOnce {
                done: one_of(
                    o,
                    "done",
                    &[
                        ("ignition", Done::Ignition),
                        ("callback", Done::Callback),
                        ("operator", Done::Operator),
                    ],
                    Done::Ignition,
                )?,
                local_boot: one_of(
                    o,
                    "local_boot",
                    &[("exit", LocalBoot::Exit), ("sanboot", LocalBoot::Sanboot)],
                    LocalBoot::Exit,
                )?,
            })),
            Some(other) => Err(JsonError::Type {
                field: "install_once".into(),
                expected: "object or boolean",
                found: json::kind(other),
            }),
        }
    }

    /// The iPXE script that sends an installed machine to its disk.
    pub fn ipxe_local_boot(self, mac: &str) -> String {
        let how = match self.local_boot {
            LocalBoot::Exit => "exit\n",
            LocalBoot::Sanboot => "sanboot --no-describe --drive 0x80 || exit\n",
        };
        format!("#!ipxe\necho Kindling: {mac} is installed, booting from local disk\n{how}")
    }

    /// The GRUB configuration that sends an installed machine to its disk.
    pub fn grub_local_boot(self, mac: &str) -> String {
        format!("echo \"Kindling: {mac} is installed, booting from local disk\"\nexit\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<InstallOnce>, JsonError> {
        let v: Value = serde_json::from_str(s).unwrap();
        InstallOnce::from_field(v.as_object().unwrap())
    }

    #[test]
    fn forms_and_errors() {
        assert_eq!(parse("{}").unwrap(), None);
        assert_eq!(parse(r#"{"install_once": false}"#).unwrap(), None);
        assert_eq!(
            parse(r#"{"install_once": true}"#).unwrap(),
            Some(InstallOnce::default())
        );
        assert_eq!(
            parse(r#"{"Install_Once": {"done": "Callback", "local_boot": "sanboot"}}"#).unwrap(),
            Some(InstallOnce {
                done: Done::Callback,
                local_boot: LocalBoot::Sanboot
            })
        );
        let e = parse(r#"{"install_once": {"done": "reboot"}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"field install_once.done: expected one of "ignition", "callback", "operator", found "reboot""#
        );
        assert!(parse(r#"{"install_once": 1}"#).is_err());
    }

    #[test]
    fn local_boot_scripts() {
        let exit = InstallOnce::default().ipxe_local_boot("52:54:00:00:00:01");
        assert!(exit.starts_with("#!ipxe\n") && exit.ends_with("\nexit\n"));
        let san = InstallOnce {
            local_boot: LocalBoot::Sanboot,
            ..Default::default()
        };
        assert!(
            san.ipxe_local_boot("m")
                .contains("sanboot --no-describe --drive 0x80")
        );
    }
}
