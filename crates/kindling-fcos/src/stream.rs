//! Fedora CoreOS stream metadata (`<base>/streams/<stream>.json`).
//!
//! Only the parts Kindling needs are typed; every other field is tolerated.
//! File names are taken from the artifacts' `location`, never constructed.

use std::collections::BTreeMap;

use reqwest::Url;
use serde::Deserialize;

use crate::FcosError;

/// The whole stream document.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamMetadata {
    #[serde(default)]
    pub stream: String,
    #[serde(default)]
    pub architectures: BTreeMap<String, Architecture>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Architecture {
    #[serde(default)]
    pub artifacts: BTreeMap<String, Platform>,
}

/// One platform (`metal`, `qemu`, ...).
#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    pub release: String,
    #[serde(default)]
    pub formats: BTreeMap<String, BTreeMap<String, Artifact>>,
}

/// One downloadable file.
#[derive(Debug, Clone, Deserialize)]
pub struct Artifact {
    pub location: String,
    #[serde(default)]
    pub signature: Option<String>,
    pub sha256: String,
    #[serde(default, rename = "uncompressed-sha256")]
    pub uncompressed_sha256: Option<String>,
}

/// Which of the three live-PXE parts an artifact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Kernel,
    Initramfs,
    Rootfs,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Kernel, Part::Initramfs, Part::Rootfs];

    pub fn as_str(self) -> &'static str {
        match self {
            Part::Kernel => "kernel",
            Part::Initramfs => "initramfs",
            Part::Rootfs => "rootfs",
        }
    }
}

/// A live-PXE artifact resolved against the metadata URL and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PxeArtifact {
    pub part: Part,
    /// Absolute URL of the file.
    pub url: Url,
    /// Absolute URL of its detached signature (`signature`, else `<location>.sig`).
    pub signature_url: Url,
    /// The last path segment of `location`: the name the file gets on disk.
    pub file_name: String,
    /// Lower-case hex sha256 from the metadata.
    pub sha256: String,
}

/// The three live-PXE artifacts of one release of one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PxeRelease {
    pub release: String,
    pub kernel: PxeArtifact,
    pub initramfs: PxeArtifact,
    pub rootfs: PxeArtifact,
}

impl PxeRelease {
    pub fn artifacts(&self) -> [&PxeArtifact; 3] {
        [&self.kernel, &self.initramfs, &self.rootfs]
    }
}

/// The URL of a stream's metadata under `base`.
pub fn stream_url(base: &str, stream: &str) -> Result<Url, FcosError> {
    check_name("stream", stream)?;
    let base = base.trim_end_matches('/');
    let s = format!("{base}/streams/{stream}.json");
    let url = Url::parse(&s).map_err(|_| FcosError::Invalid {
        what: "base URL",
        value: base.to_string(),
        why: "not an absolute URL",
    })?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        _ => Err(FcosError::Invalid {
            what: "base URL",
            value: base.to_string(),
            why: "only http and https are supported",
        }),
    }
}

/// A stream or architecture name: it becomes a directory and a profile id.
pub fn check_name(what: &'static str, name: &str) -> Result<(), FcosError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(FcosError::Invalid {
            what,
            value: name.to_string(),
            why: "use letters, digits, '-', '_' and '.' only",
        })
    }
}

/// A release string (`42.20250929.3.0`): it becomes a directory name.
pub fn check_release(release: &str) -> Result<(), FcosError> {
    let ok = !release.is_empty()
        && release.len() <= 128
        && !release.starts_with('.')
        && release
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(FcosError::Invalid {
            what: "release",
            value: release.to_string(),
            why: "not a plain release name",
        })
    }
}

impl StreamMetadata {
    /// Parses the document (unknown fields tolerated).
    pub fn parse(url: &str, bytes: &[u8]) -> Result<StreamMetadata, FcosError> {
        serde_json::from_slice(bytes).map_err(|error| FcosError::Metadata {
            url: url.to_string(),
            error,
        })
    }

    /// The `metal` live-PXE release for `arch`, every location resolved
    /// against `metadata_url` and checked: the file names are plain names, the
    /// sha256 values are 64 hex digits, and every location belongs to the
    /// release the metadata names (a rootfs of another release than the
    /// initramfs fails the boot's own hash check, so it is refused here).
    pub fn pxe(&self, arch: &str, metadata_url: &Url) -> Result<PxeRelease, FcosError> {
        let a = self
            .architectures
            .get(arch)
            .ok_or_else(|| FcosError::Missing(format!("architecture {arch}")))?;
        let metal = a
            .artifacts
            .get("metal")
            .ok_or_else(|| FcosError::Missing(format!("metal artifacts for {arch}")))?;
        check_release(&metal.release)?;
        let pxe = metal
            .formats
            .get("pxe")
            .ok_or_else(|| FcosError::Missing(format!("pxe format for {arch}")))?;
        let get = |part: Part| -> Result<PxeArtifact, FcosError> {
            let art = pxe
                .get(part.as_str())
                .ok_or_else(|| FcosError::Missing(format!("pxe {} for {arch}", part.as_str())))?;
            resolve(part, art, &metal.release, metadata_url)
        };
        let kernel = get(Part::Kernel)?;
        let initramfs = get(Part::Initramfs)?;
        let rootfs = get(Part::Rootfs)?;
        let names = [&kernel.file_name, &initramfs.file_name, &rootfs.file_name];
        if names[0] == names[1] || names[1] == names[2] || names[0] == names[2] {
            return Err(FcosError::Invalid {
                what: "pxe artifacts",
                value: format!("{names:?}"),
                why: "two artifacts share a file name",
            });
        }
        Ok(PxeRelease {
            release: metal.release.clone(),
            kernel,
            initramfs,
            rootfs,
        })
    }
}

fn resolve(
    part: Part,
    art: &Artifact,
    release: &str,
    base: &Url,
) -> Result<PxeArtifact, FcosError> {
    let invalid = |why: &'static str| FcosError::Invalid {
        what: "artifact location",
        value: art.location.clone(),
        why,
    };
    let url = base.join(&art.location).map_err(|_| invalid("not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("only http and https are supported"));
    }
    let file_name = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default()
        .to_string();
    check_file_name(&file_name)
        .map_err(|_| invalid("the last path segment is not a plain file name"))?;
    // The release component: a `builds/<release>/` directory where the URL
    // has one, and the release inside the file name in any case.
    let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
    let build_dir_ok = match segments.iter().position(|s| *s == "builds") {
        Some(i) => segments.get(i + 1).is_some_and(|s| *s == release),
        None => true,
    };
    if !build_dir_ok || !contains_release(&file_name, release) {
        return Err(FcosError::ReleaseMismatch {
            artifact: part.as_str(),
            expected: release.to_string(),
            location: art.location.clone(),
        });
    }
    let sha256 = art.sha256.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FcosError::Invalid {
            what: "sha256",
            value: art.sha256.clone(),
            why: "not 64 hex digits",
        });
    }
    let signature_url = match &art.signature {
        Some(s) if !s.is_empty() => base
            .join(s)
            .map_err(|_| invalid("signature is not a URL"))?,
        _ => {
            let mut u = url.clone();
            u.set_path(&format!("{}.sig", url.path()));
            u
        }
    };
    Ok(PxeArtifact {
        part,
        url,
        signature_url,
        file_name,
        sha256,
    })
}

/// True when `release` appears in `name` delimited on both sides by a
/// non-release character (so `42.1` does not match inside `42.10`).
fn contains_release(name: &str, release: &str) -> bool {
    let mut start = 0;
    while let Some(i) = name.get(start..).and_then(|s| s.find(release)) {
        let at = start + i;
        let end = at + release.len();
        let before_ok = at == 0
            || name
                .as_bytes()
                .get(at - 1)
                .is_some_and(|b| *b == b'-' || *b == b'_');
        let after_ok = match name.as_bytes().get(end) {
            None => true,
            Some(b) => {
                *b == b'-'
                    || *b == b'_'
                    || (*b == b'.' && !name.as_bytes().get(end + 1).is_some_and(u8::is_ascii_digit))
            }
        };
        if before_ok && after_ok {
            return true;
        }
        start = at + 1;
    }
    false
}

fn check_file_name(name: &str) -> Result<(), ()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.ends_with(".part")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'~'));
    if ok { Ok(()) } else { Err(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
      "stream": "stable",
      "metadata": {"last-modified": "2025-10-01T00:00:00Z", "generator": "x"},
      "architectures": {
        "x86_64": {
          "artifacts": {
            "metal": {
              "release": "42.20250929.3.0",
              "formats": {
                "pxe": {
                  "kernel": {"location": "https://b.example/prod/streams/stable/builds/42.20250929.3.0/x86_64/fedora-coreos-42.20250929.3.0-live-kernel.x86_64", "signature": "https://b.example/prod/streams/stable/builds/42.20250929.3.0/x86_64/fedora-coreos-42.20250929.3.0-live-kernel.x86_64.sig", "sha256": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
                  "initramfs": {"location": "https://b.example/prod/streams/stable/builds/42.20250929.3.0/x86_64/fedora-coreos-42.20250929.3.0-live-initramfs.x86_64.img", "sha256": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},
                  "rootfs": {"location": "https://b.example/prod/streams/stable/builds/42.20250929.3.0/x86_64/fedora-coreos-42.20250929.3.0-live-rootfs.x86_64.img", "sha256": "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", "extra": 1}
                },
                "iso": {"disk": {"location": "x.iso", "sha256": "dd"}}
              }
            }
          },
          "images": {"aws": {"regions": {}}}
        }
      }
    }"#;

    fn meta_url() -> Url {
        Url::parse("https://b.example/streams/stable.json").unwrap()
    }

    #[test]
    fn parses_and_resolves() {
        let m = StreamMetadata::parse("u", DOC.as_bytes()).unwrap();
        let p = m.pxe("x86_64", &meta_url()).unwrap();
        assert_eq!(p.release, "42.20250929.3.0");
        assert_eq!(
            p.kernel.file_name,
            "fedora-coreos-42.20250929.3.0-live-kernel.x86_64"
        );
        assert_eq!(p.kernel.sha256, "a".repeat(64));
        assert_eq!(
            p.initramfs.signature_url.as_str(),
            "https://b.example/prod/streams/stable/builds/42.20250929.3.0/x86_64/fedora-coreos-42.20250929.3.0-live-initramfs.x86_64.img.sig"
        );
        assert!(matches!(
            m.pxe("aarch64", &meta_url()),
            Err(FcosError::Missing(_))
        ));
    }

    #[test]
    fn rootfs_of_another_release_is_refused() {
        let doc = DOC.replace(
            "builds/42.20250929.3.0/x86_64/fedora-coreos-42.20250929.3.0-live-rootfs",
            "builds/42.20250915.3.0/x86_64/fedora-coreos-42.20250915.3.0-live-rootfs",
        );
        let m = StreamMetadata::parse("u", doc.as_bytes()).unwrap();
        match m.pxe("x86_64", &meta_url()) {
            Err(FcosError::ReleaseMismatch { artifact, .. }) => assert_eq!(artifact, "rootfs"),
            other => panic!("{other:?}"),
        }
        // Same directory, file name of another release.
        let doc = DOC.replace(
            "fedora-coreos-42.20250929.3.0-live-rootfs",
            "fedora-coreos-42.20250929.3.01-live-rootfs",
        );
        let m = StreamMetadata::parse("u", doc.as_bytes()).unwrap();
        assert!(matches!(
            m.pxe("x86_64", &meta_url()),
            Err(FcosError::ReleaseMismatch { .. })
        ));
    }

    #[test]
    fn bad_names_and_hashes_are_refused() {
        for (from, to) in [
            ("live-kernel.x86_64\"", "live-kernel.x86_64/\""),
            ("\"sha256\": \"bbbb", "\"sha256\": \"zz"),
            ("https://b.example/prod", "file:///prod"),
        ] {
            let doc = DOC.replacen(from, to, 1);
            let m = StreamMetadata::parse("u", doc.as_bytes()).unwrap();
            assert!(m.pxe("x86_64", &meta_url()).is_err(), "{from} -> {to}");
        }
        assert!(StreamMetadata::parse("u", b"{\"architectures\": []}").is_err());
        assert!(check_name("stream", "../x").is_err());
        assert!(check_name("stream", "stable").is_ok());
    }

    #[test]
    fn release_inside_names() {
        assert!(contains_release(
            "fedora-coreos-42.1-live-kernel.x86_64",
            "42.1"
        ));
        assert!(contains_release("fedora-coreos-42.1.x86_64", "42.1"));
        assert!(!contains_release("fedora-coreos-42.10-live-kernel", "42.1"));
        assert!(!contains_release("fedora-coreos-142.1-live", "42.1"));
        assert!(!contains_release("fedora-coreos-42.1.5-live", "42.1"));
    }
}
