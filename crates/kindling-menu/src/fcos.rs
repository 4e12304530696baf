//! Fedora CoreOS live entries from the local assets that `kindling fcos pull`
//! keeps: one directory per stream and architecture under
//! `assets/fedora-coreos/` (`stable/`, `stable-aarch64/`), each with its
//! releases and a `state.json` (`stream`, `arch`, `current`). Directories
//! are matched by what their state says, not by their names. Nothing on
//! disk means no entry.

use std::path::Path;

use serde::Deserialize;

use crate::catalog::Arch;

/// Menu ids of these entries are `fedora-coreos-<stream>`.
pub use crate::catalog::FCOS_ID_PREFIX;

/// One bootable Fedora CoreOS live release on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcosLive {
    pub stream: String,
    /// The directory under `assets/fedora-coreos/`.
    pub dir: String,
    pub release: String,
    pub arch: Arch,
    /// File names inside the release directory.
    pub kernel: String,
    pub initramfs: String,
    pub rootfs: String,
}

impl FcosLive {
    pub fn id(&self) -> String {
        format!("{FCOS_ID_PREFIX}{}", self.stream)
    }

    /// URL path of the release directory under `/assets/`.
    pub fn asset_dir(&self) -> String {
        format!("/assets/fedora-coreos/{}/{}", self.dir, self.release)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct State {
    stream: Option<String>,
    current: Option<String>,
    arch: Option<String>,
}

fn safe_segment(s: &str) -> bool {
    crate::catalog::valid_file_name(s) && !s.contains('/')
}

/// The current release of `stream` for `arch` under `assets_dir`, if
/// complete on disk.
pub fn discover(assets_dir: &Path, stream: &str, arch: Arch) -> Option<FcosLive> {
    if !safe_segment(stream) {
        return None;
    }
    let mut dirs: Vec<String> = std::fs::read_dir(assets_dir.join("fedora-coreos"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| safe_segment(n) && !n.starts_with('.'))
        .collect();
    dirs.sort();
    dirs.into_iter()
        .find_map(|d| discover_in(assets_dir, &d, stream).filter(|f| f.arch == arch))
}

/// The current release in `assets/fedora-coreos/<dir>/`, if its state names
/// `stream` and the release is complete on disk.
fn discover_in(assets_dir: &Path, dir: &str, stream: &str) -> Option<FcosLive> {
    let sdir = assets_dir.join("fedora-coreos").join(dir);
    let state: State =
        serde_json::from_slice(&std::fs::read(sdir.join("state.json")).ok()?).ok()?;
    if state.stream.as_deref().unwrap_or(dir) != stream {
        return None;
    }
    let release = state.current?;
    if !safe_segment(&release) {
        return None;
    }
    let mut names: Vec<String> = std::fs::read_dir(sdir.join(&release))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| safe_segment(n) && !n.ends_with(".sig") && !n.ends_with(".part"))
        .collect();
    names.sort();
    let find = |what: &str| names.iter().find(|n| n.contains(what)).cloned();
    let kernel = find("-live-kernel")?;
    let initramfs = find("-live-initramfs")?;
    let rootfs = find("-live-rootfs")?;
    let arch = match state.arch.as_deref() {
        Some(a) => Arch::parse(a)?,
        None if kernel.contains("aarch64") => Arch::Arm64,
        None => Arch::X86_64,
    };
    Some(FcosLive {
        stream: stream.to_string(),
        dir: dir.to_string(),
        release,
        arch,
        kernel,
        initramfs,
        rootfs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_current_release_or_nothing() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(discover(t.path(), "stable", Arch::X86_64), None);
        let s = t.path().join("fedora-coreos/stable");
        let r = s.join("43.20260413.3.2");
        std::fs::create_dir_all(&r).unwrap();
        std::fs::write(
            s.join("state.json"),
            r#"{"stream":"stable","arch":"x86_64","current":"43.20260413.3.2","releases":["43.20260413.3.2"]}"#,
        )
        .unwrap();
        // Incomplete: hidden.
        std::fs::write(
            r.join("fedora-coreos-43.20260413.3.2-live-kernel.x86_64"),
            "k",
        )
        .unwrap();
        assert_eq!(discover(t.path(), "stable", Arch::X86_64), None);
        std::fs::write(
            r.join("fedora-coreos-43.20260413.3.2-live-initramfs.x86_64.img"),
            "i",
        )
        .unwrap();
        std::fs::write(
            r.join("fedora-coreos-43.20260413.3.2-live-rootfs.x86_64.img"),
            "r",
        )
        .unwrap();
        let f = discover(t.path(), "stable", Arch::X86_64).unwrap();
        assert_eq!(f.id(), "fedora-coreos-stable");
        assert_eq!(f.arch, Arch::X86_64);
        assert_eq!(
            f.rootfs,
            "fedora-coreos-43.20260413.3.2-live-rootfs.x86_64.img"
        );
        assert_eq!(discover(t.path(), "../stable", Arch::X86_64), None);
        assert_eq!(discover(t.path(), "stable", Arch::Arm64), None);

        // The aarch64 track beside it.
        let a = t.path().join("fedora-coreos/stable-aarch64");
        let r = a.join("43.20260413.3.2");
        std::fs::create_dir_all(&r).unwrap();
        std::fs::write(
            a.join("state.json"),
            r#"{"stream":"stable","arch":"aarch64","current":"43.20260413.3.2"}"#,
        )
        .unwrap();
        for part in ["kernel", "initramfs", "rootfs"] {
            std::fs::write(
                r.join(format!("fedora-coreos-43.20260413.3.2-live-{part}.aarch64")),
                "x",
            )
            .unwrap();
        }
        let f = discover(t.path(), "stable", Arch::Arm64).unwrap();
        assert_eq!(f.arch, Arch::Arm64);
        assert_eq!(
            f.asset_dir(),
            "/assets/fedora-coreos/stable-aarch64/43.20260413.3.2"
        );
        assert_eq!(
            discover(t.path(), "stable", Arch::X86_64).unwrap().dir,
            "stable"
        );
    }
}
