//! Mapping request names to readable files.
//!
//! Name rules (see [`normalize`]):
//! - one leading `/` is stripped (`/pxelinux.0` == `pxelinux.0`);
//! - backslashes are accepted as separators (Windows-style PXE names such as
//!   `boot\x86\wdsnbp.com`), i.e. `\` is treated exactly like `/`;
//! - empty and `.` components are skipped; any `..` component is refused;
//! - names that are still absolute after the strip (`//etc/passwd`), contain NUL
//!   or are longer than [`MAX_NAME_LEN`] bytes are refused;
//! - no percent-decoding is done: `%2e%2e` is a literal file name.
//!
//! Lookup order: named overrides (`files`, trusted: may be symlinks anywhere),
//! then the root directory (confined by the kernel: names are opened relative to a
//! handle of the root, so symlinks leaving the root are refused, and the opened file is
//! checked), then the default iPXE binaries from `ipxe_dir` (trusted like overrides).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::packet::ErrorCode;
use crate::transfer::BlockReader;

/// Longest request name accepted.
pub const MAX_NAME_LEN: usize = 1024;

/// iPXE binaries served from `ipxe_dir` by default (when present there).
pub const IPXE_FILES: &[&str] = &[
    "undionly.kpxe",
    "undionly.kkpxe",
    "ipxe.efi",
    "snponly.efi",
    "ipxe.pxe",
    "ipxe-arm64.efi",
];

/// Where distributions install the iPXE binaries, searched in this order when `ipxe_dir`
/// is left at its default: Debian and Ubuntu (`ipxe`), then Fedora, RHEL, CentOS, Arch
/// and Alpine (`/usr/share/ipxe`).
pub const IPXE_DIRS: &[&str] = &["/usr/lib/ipxe", "/usr/share/ipxe"];

/// The names one iPXE binary has in the distributions' packages, relative to their
/// directory: Debian's name first, then Fedora/RHEL's `ipxe-bootimgs-x86` and Arch's.
fn ipxe_names(name: &str) -> &'static [&'static str] {
    match name {
        "undionly.kpxe" => &["undionly.kpxe"],
        "undionly.kkpxe" => &["undionly.kkpxe"],
        "ipxe.efi" => &["ipxe.efi", "ipxe-x86_64.efi", "x86_64/ipxe.efi"],
        "snponly.efi" => &[
            "snponly.efi",
            "ipxe-snponly-x86_64.efi",
            "x86_64/snponly.efi",
        ],
        "ipxe.pxe" => &["ipxe.pxe"],
        // Debian 13's `ipxe` package; Fedora's ipxe-bootimgs-aarch64.
        "ipxe-arm64.efi" => &["ipxe-arm64.efi", "arm64-efi/ipxe.efi"],
        _ => &[],
    }
}

/// The file that serves the iPXE binary `name` (one of [`IPXE_FILES`]): the first
/// regular file among `dirs` under any of the binary's distribution names.
pub fn find_ipxe_binary(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    let names = ipxe_names(name);
    dirs.iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
}

/// Why a request cannot be served. Maps to a TFTP error code.
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    /// TFTP error 1.
    #[error("file not found: {0}")]
    NotFound(String),
    /// TFTP error 2.
    #[error("access violation: {0}")]
    AccessViolation(String),
    /// TFTP error 0.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl TftpError {
    pub fn code(&self) -> ErrorCode {
        match self {
            TftpError::NotFound(_) => ErrorCode::FileNotFound,
            TftpError::AccessViolation(_) => ErrorCode::AccessViolation,
            TftpError::Io(_) => ErrorCode::NotDefined,
        }
    }

    /// Message sent to the client (does not reveal server paths).
    pub fn client_message(&self) -> &'static str {
        match self {
            TftpError::NotFound(_) => "File not found",
            TftpError::AccessViolation(_) => "Access violation",
            TftpError::Io(_) => "Cannot read file",
        }
    }
}

/// An opened file ready to be served.
pub struct Opened {
    pub reader: Box<dyn BlockReader>,
    /// Size for the tsize option (None: not reported).
    pub size: Option<u64>,
    /// Where the bytes come from, for logs.
    pub origin: String,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("size", &self.size)
            .field("origin", &self.origin)
            .finish()
    }
}

/// Resolves a request name into bytes. Implement it to serve generated files.
pub trait FileSource: Send + Sync {
    fn open(&self, name: &str, peer: SocketAddr) -> Result<Opened, TftpError>;
}

/// Normalize a request name into path components (see module docs).
pub fn normalize(name: &str) -> Result<Vec<String>, TftpError> {
    if name.len() > MAX_NAME_LEN {
        return Err(TftpError::AccessViolation(format!(
            "name longer than {MAX_NAME_LEN} bytes"
        )));
    }
    if name.contains('\0') {
        return Err(TftpError::AccessViolation("NUL in name".into()));
    }
    let unified = name.replace('\\', "/");
    let rel = unified.strip_prefix('/').unwrap_or(&unified);
    if rel.starts_with('/') {
        return Err(TftpError::AccessViolation("absolute path".into()));
    }
    let mut parts = Vec::new();
    for comp in rel.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err(TftpError::AccessViolation("'..' component".into())),
            c => parts.push(c.to_string()),
        }
    }
    if parts.is_empty() {
        return Err(TftpError::NotFound("empty name".into()));
    }
    Ok(parts)
}

/// Serves a root directory plus named overrides and the iPXE binaries.
#[derive(Debug, Clone, Default)]
pub struct FsSource {
    root: Option<PathBuf>,
    overrides: BTreeMap<String, PathBuf>,
    ipxe_dirs: Vec<PathBuf>,
}

impl FsSource {
    /// `root`: confined directory (None: serve only overrides/iPXE files).
    /// `overrides`: request name (normalized, e.g. `ipxe.efi` or `x/y.bin`) -> file path.
    /// `ipxe_dirs`: where the default iPXE binaries are looked for, in order, on each
    /// request (empty: no defaults); see [`find_ipxe_binary`].
    pub fn new(
        root: Option<PathBuf>,
        overrides: BTreeMap<String, PathBuf>,
        ipxe_dirs: Vec<PathBuf>,
    ) -> Self {
        let overrides = overrides
            .into_iter()
            .map(|(k, v)| {
                let key = normalize(&k).map(|p| p.join("/")).unwrap_or(k);
                (key, v)
            })
            .collect();
        Self {
            root,
            overrides,
            ipxe_dirs,
        }
    }

    fn open_trusted(path: &Path) -> Result<Opened, TftpError> {
        let file = File::open(path).map_err(|e| map_open_err(e, path))?;
        finish_open(file, path)
    }
}

fn map_open_err(e: io::Error, path: &Path) -> TftpError {
    match e.kind() {
        io::ErrorKind::NotFound => {
            TftpError::NotFound(format!("{} does not exist", path.display()))
        }
        io::ErrorKind::PermissionDenied => {
            TftpError::AccessViolation(format!("{}: permission denied", path.display()))
        }
        _ if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {
            TftpError::NotFound(format!("{}: name too long", path.display()))
        }
        _ if e.raw_os_error() == Some(libc::ELOOP) => {
            TftpError::AccessViolation(format!("{}: symlink loop", path.display()))
        }
        _ if e.raw_os_error() == Some(libc::ENOTDIR) => {
            TftpError::NotFound(format!("{}: not a directory", path.display()))
        }
        _ => TftpError::Io(e),
    }
}

fn finish_open(file: File, path: &Path) -> Result<Opened, TftpError> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(TftpError::AccessViolation(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(Opened {
        reader: Box::new(file),
        size: Some(meta.len()),
        origin: path.display().to_string(),
    })
}

impl FileSource for FsSource {
    fn open(&self, name: &str, _peer: SocketAddr) -> Result<Opened, TftpError> {
        let parts = normalize(name)?;
        let key = parts.join("/");
        if let Some(p) = self.overrides.get(&key) {
            return Self::open_trusted(p);
        }
        let mut root_err = None;
        if let Some(root) = &self.root {
            match open_confined(root, &parts) {
                Ok(o) => return Ok(o),
                Err(TftpError::NotFound(r)) => root_err = Some(TftpError::NotFound(r)),
                Err(e) => return Err(e),
            }
        }
        if let Some(p) = find_ipxe_binary(&self.ipxe_dirs, &key) {
            return Self::open_trusted(&p);
        }
        Err(root_err.unwrap_or_else(|| TftpError::NotFound(format!("no source for {key:?}"))))
    }
}

/// Open `root/parts...` relative to a handle of the root directory, so that the kernel
/// keeps the whole resolution beneath it (cap-std: `openat2` with `RESOLVE_BENEATH |
/// RESOLVE_NO_MAGICLINKS` on Linux, a component-by-component walk elsewhere). Symlinks
/// inside the root work; one that leads out (absolute, or `..` past the root) fails.
/// The checks (regular file, size) are then made on the opened file, never on the path
/// again, so swapping a name for a symlink between check and open cannot leak bytes
/// from outside the root.
fn open_confined(root: &Path, parts: &[String]) -> Result<Opened, TftpError> {
    use cap_std::fs::OpenOptionsExt;
    let dir = cap_std::fs::Dir::open_ambient_dir(root, cap_std::ambient_authority())
        .map_err(|e| TftpError::NotFound(format!("root {}: {e}", root.display())))?;
    let rel: PathBuf = parts.iter().collect();
    let shown = root.join(&rel);
    let mut opts = cap_std::fs::OpenOptions::new();
    // O_NONBLOCK: a FIFO placed in the root must not block the open (it is refused
    // below as not a regular file); it changes nothing for regular files.
    opts.read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    let file = dir.open_with(&rel, &opts).map_err(|e| {
        if e.kind() == io::ErrorKind::PermissionDenied {
            // Also cap-std's "a path led outside of the filesystem".
            TftpError::AccessViolation(format!(
                "{}: {e} (root {})",
                shown.display(),
                root.display()
            ))
        } else if e.raw_os_error() == Some(libc::ENXIO) {
            TftpError::AccessViolation(format!("{} is not a regular file", shown.display()))
        } else {
            map_open_err(e, &shown)
        }
    })?;
    finish_open(file.into_std(), &shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipxe_binaries_found_under_each_distribution_name() {
        let base = std::env::temp_dir().join(format!("kindling-ipxe-{}", std::process::id()));
        let (debian, fedora) = (base.join("lib"), base.join("share"));
        std::fs::create_dir_all(debian.join("x86_64")).unwrap();
        std::fs::create_dir_all(&fedora).unwrap();
        std::fs::write(fedora.join("ipxe-x86_64.efi"), b"fedora efi").unwrap();
        std::fs::write(fedora.join("undionly.kpxe"), b"fedora undi").unwrap();
        std::fs::write(debian.join("undionly.kpxe"), b"debian undi").unwrap();
        // A directory under a binary's name is not the binary.
        std::fs::create_dir_all(debian.join("snponly.efi")).unwrap();
        let dirs = vec![debian.clone(), fedora.clone()];
        assert_eq!(
            find_ipxe_binary(&dirs, "undionly.kpxe"),
            Some(debian.join("undionly.kpxe"))
        );
        assert_eq!(
            find_ipxe_binary(&dirs, "ipxe.efi"),
            Some(fedora.join("ipxe-x86_64.efi"))
        );
        assert_eq!(find_ipxe_binary(&dirs, "snponly.efi"), None);
        assert_eq!(find_ipxe_binary(&dirs, "ipxe-x86_64.efi"), None);
        assert_eq!(find_ipxe_binary(&dirs, "../lib/undionly.kpxe"), None);
        let src = FsSource::new(None, BTreeMap::new(), dirs);
        let peer: SocketAddr = "192.0.2.1:1000".parse().unwrap();
        assert_eq!(src.open("ipxe.efi", peer).unwrap().size, Some(10));
        assert!(matches!(
            src.open("ipxe-x86_64.efi", peer),
            Err(TftpError::NotFound(_))
        ));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn normalize_rules() {
        assert_eq!(normalize("/a/b").unwrap(), vec!["a", "b"]);
        assert_eq!(normalize("a\\b").unwrap(), vec!["a", "b"]);
        assert_eq!(normalize("./a//b").unwrap(), vec!["a", "b"]);
        assert!(matches!(
            normalize("../x"),
            Err(TftpError::AccessViolation(_))
        ));
        assert!(matches!(
            normalize("a\\..\\..\\x"),
            Err(TftpError::AccessViolation(_))
        ));
        assert!(matches!(
            normalize("//etc/passwd"),
            Err(TftpError::AccessViolation(_))
        ));
        assert!(matches!(
            normalize("a\0b"),
            Err(TftpError::AccessViolation(_))
        ));
        assert!(matches!(
            normalize(&"a".repeat(2000)),
            Err(TftpError::AccessViolation(_))
        ));
        assert!(matches!(normalize("/"), Err(TftpError::NotFound(_))));
        assert_eq!(normalize("%2e%2e/x").unwrap(), vec!["%2e%2e", "x"]);
    }
}
