//! Which boot stage an HTTP request or TFTP file belongs to.

use std::collections::HashMap;

use crate::event::{Endpoint, Stage};

/// The asset paths a profile's boot section names, as URL paths (`/assets/...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilePaths {
    pub kernel: Option<String>,
    pub initrd: Vec<String>,
    pub rootfs: Vec<String>,
}

impl ProfilePaths {
    /// From a profile's `boot` (kernel, initrd entries incl. `--name x /path`, args with
    /// `coreos.live.rootfs_url=`).
    pub fn from_boot(kernel: &str, initrd: &[String], args: &[String]) -> ProfilePaths {
        let initrd = initrd
            .iter()
            .filter_map(|e| {
                e.split_whitespace()
                    .rfind(|t| !t.starts_with("--"))
                    .map(url_path)
            })
            .collect();
        let rootfs = args
            .iter()
            .flat_map(|a| a.split_whitespace())
            .filter_map(|a| a.strip_prefix("coreos.live.rootfs_url="))
            .map(url_path)
            .collect();
        ProfilePaths {
            kernel: (!kernel.trim().is_empty()).then(|| url_path(kernel.trim())),
            initrd,
            rootfs,
        }
    }

    fn stage_of(&self, path: &str) -> Option<Stage> {
        if self.kernel.as_deref() == Some(path) {
            Some(Stage::Kernel)
        } else if self.initrd.iter().any(|p| p == path) {
            Some(Stage::Initrd)
        } else if self.rootfs.iter().any(|p| p == path) {
            Some(Stage::Rootfs)
        } else {
            None
        }
    }
}

/// The path part of a URL or path, percent-decoded, without query or fragment:
/// `http://h:8080/assets/a%20b?x=1` -> `/assets/a b`.
pub fn url_path(s: &str) -> String {
    let s = s.trim();
    let rest = match s.find("://") {
        Some(i) => {
            let after = s.get(i + 3..).unwrap_or("");
            match after.find('/') {
                Some(j) => after.get(j..).unwrap_or("/"),
                None => "/",
            }
        }
        None => s,
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let p = rest.get(..end).unwrap_or(rest);
    percent_encoding::percent_decode_str(p)
        .decode_utf8_lossy()
        .into_owned()
}

/// Stage of an asset by its file name alone (the cheap fallback).
pub fn stage_by_name(path: &str) -> Option<Stage> {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    if name.contains("rootfs") || name.ends_with(".squashfs") {
        Some(Stage::Rootfs)
    } else if name.contains("initrd") || name.contains("initramfs") {
        Some(Stage::Initrd)
    } else if name.contains("vmlinuz") || name.contains("kernel") || name == "linux" {
        Some(Stage::Kernel)
    } else {
        None
    }
}

/// Profile id -> asset paths, rebuilt on every reload.
pub type ProfileMap = HashMap<String, ProfilePaths>;

/// Stage of an HTTP request given its endpoint, path and the profile the machine got.
/// `None` for requests that are not a boot step.
pub fn http_stage(endpoint: Endpoint, path: &str, profile: Option<&ProfilePaths>) -> Option<Stage> {
    match endpoint {
        Endpoint::BootIpxe | Endpoint::Ipxe | Endpoint::Grub | Endpoint::Menu => {
            Some(Stage::Script)
        }
        Endpoint::Ignition => Some(Stage::Ignition),
        Endpoint::Tftp => Some(Stage::Tftp),
        // The menus' pull-through cache: kernels and initrds by name.
        Endpoint::Cache => stage_by_name(&url_path(path)),
        Endpoint::Assets => {
            let p = url_path(path);
            profile
                .and_then(|pp| pp.stage_of(&p))
                .or_else(|| stage_by_name(&p))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_and_cache_are_boot_steps() {
        assert!(Endpoint::Menu.is_boot() && Endpoint::Cache.is_boot());
        assert_eq!(
            http_stage(Endpoint::Menu, "/menu.ipxe", None),
            Some(Stage::Script)
        );
        assert_eq!(
            http_stage(Endpoint::Cache, "/cache/debian/x86_64/linux", None),
            stage_by_name("/cache/debian/x86_64/linux")
        );
        assert_eq!(
            http_stage(Endpoint::Cache, "/cache/fedora/x86_64/vmlinuz", None),
            Some(Stage::Kernel)
        );
        assert_eq!(
            http_stage(Endpoint::Cache, "/cache/fedora/x86_64/initrd.img", None),
            Some(Stage::Initrd)
        );
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn profile_paths() {
        let p = ProfilePaths::from_boot(
            "/assets/fcos/k",
            &s(&["--name main http://10.0.0.1:8080/assets/fcos/i.img"]),
            &s(&[
                "initrd=main",
                "coreos.live.rootfs_url=http://10.0.0.1:8080/assets/fcos/r.img",
                "ignition.config.url=http://10.0.0.1:8080/ignition?mac=${mac:hexhyp}",
            ]),
        );
        assert_eq!(p.kernel.as_deref(), Some("/assets/fcos/k"));
        assert_eq!(p.initrd, s(&["/assets/fcos/i.img"]));
        assert_eq!(p.rootfs, s(&["/assets/fcos/r.img"]));
        assert_eq!(
            http_stage(Endpoint::Assets, "/assets/fcos/k", Some(&p)),
            Some(Stage::Kernel)
        );
        assert_eq!(
            http_stage(Endpoint::Assets, "/assets/fcos/i.img", Some(&p)),
            Some(Stage::Initrd)
        );
        assert_eq!(
            http_stage(Endpoint::Assets, "/assets/fcos/r.img", Some(&p)),
            Some(Stage::Rootfs)
        );
        // Profile paths win over names: an initrd called "kernel-initrd" named as initrd.
        let q = ProfilePaths::from_boot("/assets/a/vmlinuz-initrd", &[], &[]);
        assert_eq!(
            http_stage(Endpoint::Assets, "/assets/a/vmlinuz-initrd", Some(&q)),
            Some(Stage::Kernel)
        );
    }

    #[test]
    fn name_fallback() {
        for (p, st) in [
            (
                "/assets/fedora-coreos-41-live-kernel-x86_64",
                Some(Stage::Kernel),
            ),
            (
                "/assets/fedora-coreos-41-live-initramfs.x86_64.img",
                Some(Stage::Initrd),
            ),
            (
                "/assets/fedora-coreos-41-live-rootfs.x86_64.img",
                Some(Stage::Rootfs),
            ),
            ("/assets/debian/vmlinuz", Some(Stage::Kernel)),
            ("/assets/debian/initrd.gz", Some(Stage::Initrd)),
            ("/assets/readme.txt", None),
            ("/assets/a%20kernel", Some(Stage::Kernel)),
        ] {
            assert_eq!(http_stage(Endpoint::Assets, p, None), st, "{p}");
        }
        assert_eq!(
            http_stage(Endpoint::BootIpxe, "/boot.ipxe", None),
            Some(Stage::Script)
        );
        assert_eq!(
            http_stage(Endpoint::Ignition, "/ignition", None),
            Some(Stage::Ignition)
        );
        assert_eq!(http_stage(Endpoint::Metadata, "/metadata", None), None);
    }

    #[test]
    fn url_paths() {
        assert_eq!(url_path("http://h:1/a/b?x#y"), "/a/b");
        assert_eq!(url_path("https://h"), "/");
        assert_eq!(url_path("/a%2Fb"), "/a/b");
    }
}
