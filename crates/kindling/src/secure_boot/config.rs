//! The `[secure_boot]` table, its start-up checks and what it changes in `[dhcp]` and
//! `[tftp]`.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::pe::{Signature, signature_of};

/// Debian's (and Ubuntu's) Microsoft-signed shim (package `shim-signed`).
pub const DEFAULT_SHIM: &str = "/usr/lib/shim/shimx64.efi.signed";
/// Debian's signed network GRUB (package `grub-efi-amd64-signed`): the image with TFTP
/// built in (`grubx64.efi.signed` is the disk image: no TFTP).
pub const DEFAULT_GRUB: &str = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed";

/// The `[secure_boot]` table: which signed files the Secure Boot chain serves, and whether
/// every x86-64 UEFI PXE client takes it. Per machine, `secure_boot = true` on a
/// `[[dhcp.rules]]` entry routes the clients it matches (by MAC pattern, architecture,
/// class, interface).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SecureBootConfig {
    /// The signed shim served as `secureboot/shimx64.efi` (signed by Microsoft's UEFI CA;
    /// never the unsigned `shimx64.efi` of `shim-unsigned`).
    pub shim: PathBuf,
    /// The signed GRUB served as `secureboot/grubx64.efi` (shim loads it; it must be the
    /// network image, with TFTP built in, signed by a key shim trusts).
    pub grub: PathBuf,
    /// Route every x86-64 UEFI PXE client (arch 7 and 9) to Secure Boot; a rule with
    /// `secure_boot = false` exempts the clients it matches. iPXE, BIOS, arm64 and UEFI HTTP
    /// Boot clients are never routed there.
    pub default: bool,
}

impl Default for SecureBootConfig {
    fn default() -> Self {
        Self {
            shim: PathBuf::from(DEFAULT_SHIM),
            grub: PathBuf::from(DEFAULT_GRUB),
            default: false,
        }
    }
}

impl SecureBootConfig {
    /// Does any client get routed to Secure Boot (the default, or a rule)?
    pub fn routed(&self, dhcp: &kindling_dhcp::DhcpConfig) -> bool {
        self.default || dhcp.rules.iter().any(|r| r.secure_boot == Some(true))
    }

    /// Does Kindling serve the chain (shim, GRUB, GRUB's names over TFTP)? When the
    /// configuration routes clients there, or when the files are installed, so that a
    /// group's `secure_boot = true` works without a configuration change.
    pub fn serves(&self, dhcp: &kindling_dhcp::DhcpConfig) -> bool {
        self.routed(dhcp) || self.files_readable().is_ok()
    }

    /// Can shim and GRUB both be read? Else why not.
    pub fn files_readable(&self) -> Result<(), String> {
        for (key, path) in [("shim", &self.shim), ("grub", &self.grub)] {
            readable_file(path)
                .map_err(|why| format!("[secure_boot] {key} {} {why}", path.display()))?;
        }
        Ok(())
    }

    /// The files the chain serves by name: TFTP `secureboot/shimx64.efi` and
    /// `secureboot/grubx64.efi` (and the same under HTTP `/tftp/`).
    pub fn files(&self) -> [(&'static str, &Path); 2] {
        [
            (kindling_tftp::secureboot::SHIM, self.shim.as_path()),
            (kindling_tftp::secureboot::GRUB, self.grub.as_path()),
        ]
    }

    /// Applies the table to the DHCP and TFTP settings: the DHCP default, and shim and GRUB
    /// among TFTP's named files when the chain is served ([`serves`](Self::serves)).
    pub fn wire(&self, dhcp: &mut kindling_dhcp::DhcpConfig, tftp: &mut kindling_tftp::TftpConfig) {
        dhcp.secure_boot_default = self.default;
        if self.serves(dhcp) {
            for (name, path) in self.files() {
                tftp.files.insert(name.to_string(), path.to_path_buf());
            }
        }
    }

    /// Start-up checks (`kindling serve` refuses to start on an error; `kindling check`
    /// reports both): (errors, warnings).
    pub fn check(
        &self,
        dhcp: &kindling_dhcp::DhcpConfig,
        tftp: &kindling_tftp::TftpConfig,
    ) -> (Vec<String>, Vec<String>) {
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        if !self.routed(dhcp) {
            return (errors, warnings);
        }
        for (key, path, package) in [
            ("shim", &self.shim, "shim-signed"),
            ("grub", &self.grub, "grub-efi-amd64-signed"),
        ] {
            if let Err(why) = readable_file(path) {
                errors.push(format!(
                    "[secure_boot] {key} {}: {why}; Secure Boot clients would get nothing to boot \
                     (Debian: apt-get install {package}; or set [secure_boot] {key})",
                    path.display()
                ));
            } else if signature_of(path) == Ok(Signature::Unsigned) {
                warnings.push(format!(
                    "[secure_boot] {key} {} carries no Authenticode signature: Secure Boot firmware refuses it",
                    path.display()
                ));
            }
        }
        if !tftp.enabled {
            warnings.push(
                "[secure_boot]: Secure Boot clients fetch shim, GRUB, GRUB's configuration and the \
                 kernel over TFTP, but Kindling's TFTP server is off ([tftp] enabled = true or --tftp)"
                    .into(),
            );
        }
        if dhcp.enabled && dhcp.mode == kindling_dhcp::config::DhcpMode::Proxy {
            warnings.push(
                "[secure_boot] with proxy DHCP: the signed GRUB takes its TFTP server from the site \
                 DHCP server's answer (next-server), not from Kindling's; set next-server to \
                 Kindling there, or run [dhcp] mode = \"full\" (docs/secure-boot.md)"
                    .into(),
            );
        }
        (errors, warnings)
    }
}

/// Is `path` a regular file this process can open for reading?
fn readable_file(path: &Path) -> Result<(), String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot be read ({e})"))?;
    match f.metadata() {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err("is not a regular file".into()),
        Err(e) => Err(format!("cannot be read ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dhcp(text: &str) -> kindling_dhcp::DhcpConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_and_routing() {
        let c: SecureBootConfig = toml::from_str("").unwrap();
        assert_eq!(c, SecureBootConfig::default());
        assert_eq!(c.shim, Path::new("/usr/lib/shim/shimx64.efi.signed"));
        assert!(!c.routed(&dhcp("")));
        assert!(c.routed(&dhcp(
            "[[rules]]\nmac = \"52:54:00:*:*:*\"\nsecure_boot = true\n"
        )));
        assert!(!c.routed(&dhcp("[[rules]]\nsecure_boot = false\n")));
        assert!(toml::from_str::<SecureBootConfig>("bogus = 1").is_err());
        let mut d = dhcp("");
        let mut t = kindling_tftp::TftpConfig::default();
        // Not installed and not routed: nothing served.
        let missing = SecureBootConfig {
            shim: "/nonexistent/shim".into(),
            ..c.clone()
        };
        missing.wire(&mut d, &mut t);
        assert!(!d.secure_boot_default);
        assert!(
            t.files.is_empty(),
            "nothing served: no shim, nothing routed"
        );
        // Installed: served whether routed or not (a group may route a machine later).
        let dir = std::env::temp_dir().join(format!("kindling-sb-wire-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (shim, grub) = (dir.join("shim"), dir.join("grub"));
        std::fs::write(&shim, b"MZ").unwrap();
        std::fs::write(&grub, b"MZ").unwrap();
        let installed = SecureBootConfig {
            shim: shim.clone(),
            grub,
            default: false,
        };
        let mut t2 = kindling_tftp::TftpConfig::default();
        installed.wire(&mut d, &mut t2);
        assert!(!d.secure_boot_default);
        assert_eq!(
            t2.files.get("secureboot/shimx64.efi").map(PathBuf::as_path),
            Some(shim.as_path())
        );
        let _ = std::fs::remove_dir_all(&dir);
        let on = SecureBootConfig {
            default: true,
            ..missing
        };
        on.wire(&mut d, &mut t);
        assert!(d.secure_boot_default);
        assert_eq!(
            t.files.get("secureboot/grubx64.efi").map(PathBuf::as_path),
            Some(Path::new(DEFAULT_GRUB)),
            "routed: served (and missing files are a start-up error)"
        );
    }

    #[test]
    fn missing_files_are_errors_only_when_routed() {
        let c = SecureBootConfig {
            shim: "/nonexistent/shimx64.efi.signed".into(),
            grub: "/".into(),
            default: false,
        };
        let t = kindling_tftp::TftpConfig::default();
        assert_eq!(c.check(&dhcp(""), &t), (vec![], vec![]));
        let routed = dhcp("enabled = true\nall_interfaces = true\n[[rules]]\nsecure_boot = true\n");
        let (errors, warnings) = c.check(&routed, &t);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("[secure_boot] shim /nonexistent/shimx64.efi.signed"));
        assert!(errors[0].contains("shim-signed"));
        assert!(errors[1].contains("is not a regular file"), "{}", errors[1]);
        assert!(warnings.iter().any(|w| w.contains("TFTP server is off")));
        assert!(warnings.iter().any(|w| w.contains("next-server")));
    }
}
