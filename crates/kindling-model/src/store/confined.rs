//! Files opened inside an area of the data directory, confined to it by the kernel
//! (cap-std, `openat2` `RESOLVE_BENEATH`): symlinks that leave the area are refused.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::area::{Area, LAYOUT, MAX_TEMPLATE_BYTES, ReadError, clean_within};

/// A file or directory opened inside an area, with the metadata of the
/// opened handle (fstat): what is served is what was checked.
#[derive(Debug)]
pub struct Opened {
    pub file: fs::File,
    /// Metadata of `file` itself (type, size, mtime), never of a path.
    pub meta: fs::Metadata,
    /// `<area dir>/<cleaned name>`: for messages and file-type guesses only.
    /// Never open it again: the name may point elsewhere by then.
    pub path: PathBuf,
}

impl Opened {
    /// The opened directory as a handle (for listings and further confined opens).
    pub fn into_dir(self) -> cap_std::fs::Dir {
        cap_std::fs::Dir::from_std_file(self.file)
    }

    /// Reads the whole file, refusing anything but a regular file and more
    /// than `limit` bytes (checked on the handle's size first, and again while
    /// reading, in case the file grows).
    pub fn read_limited(self, limit: u64) -> Result<Vec<u8>, ReadError> {
        use std::io::Read;
        let path = self.path.display().to_string();
        if !self.meta.is_file() {
            return Err(ReadError::NotAFile(path));
        }
        let too_large = |size| ReadError::TooLarge {
            path: path.clone(),
            size,
            limit,
        };
        if self.meta.len() > limit {
            return Err(too_large(self.meta.len()));
        }
        let mut buf = Vec::with_capacity(self.meta.len() as usize);
        (&self.file)
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| io_error(&self.path, e))?;
        if buf.len() as u64 > limit {
            return Err(too_large(buf.len() as u64));
        }
        Ok(buf)
    }
}

/// A data directory in matchbox's layout.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn area(&self, area: Area) -> PathBuf {
        self.root.join(area.dir())
    }

    /// Creates the directory and any missing standard sub-directory; returns
    /// what it created.
    pub fn ensure_layout(&self) -> io::Result<Vec<PathBuf>> {
        let mut created = Vec::new();
        if !self.root.is_dir() {
            fs::create_dir_all(&self.root)?;
            created.push(self.root.clone());
        }
        for d in LAYOUT {
            let p = self.root.join(d);
            if !p.is_dir() {
                fs::create_dir_all(&p)?;
                created.push(p);
            }
        }
        Ok(created)
    }

    /// Opens `name` inside `area` (see [`open_confined`]).
    pub fn open(&self, area: Area, name: &str) -> Result<Opened, ReadError> {
        open_confined(&self.area(area), area.dir(), name)
    }

    /// Checks that `name` opens as a regular file inside `area` and returns
    /// its path, for reports only (see [`resolve_confined`]).
    pub fn resolve(&self, area: Area, name: &str) -> Result<PathBuf, ReadError> {
        resolve_confined(&self.area(area), area.dir(), name)
    }

    /// Reads a file of an area (Ignition, generic, cloud templates), confined
    /// to the area and at most [`MAX_TEMPLATE_BYTES`].
    pub fn read(&self, area: Area, name: &str) -> Result<Vec<u8>, ReadError> {
        self.open(area, name)?.read_limited(MAX_TEMPLATE_BYTES)
    }
}

fn io_error(path: &Path, e: io::Error) -> ReadError {
    match e.kind() {
        io::ErrorKind::NotFound => ReadError::NotFound(path.display().to_string()),
        io::ErrorKind::IsADirectory => ReadError::NotAFile(path.display().to_string()),
        _ => ReadError::Io {
            path: path.display().to_string(),
            source: e,
        },
    }
}

/// cap-std reports a name that resolves outside its directory as
/// `PermissionDenied` without an OS error code (`EXDEV` from `openat2`, or its
/// own walk); a real `EACCES` carries its code.
fn is_escape(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied && e.raw_os_error().is_none()
}

fn open_options() -> cap_std::fs::OpenOptions {
    use cap_std::fs::OpenOptionsExt;
    let mut o = cap_std::fs::OpenOptions::new();
    o.read(true);
    // A FIFO or a device must not block the caller: it is refused after the
    // open as "not a regular file".
    o.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    o
}

/// Opens `name` inside the area whose directory is `base` (shown as `area`
/// in messages), the one confined open every reader uses (`/assets/`,
/// `/ignition`, `/generic`, `/cloud`, the [`Loader`](super::Loader), `kindling check`).
///
/// `name` is cleaned like matchbox's `path.Clean` (`..` that climbs out of
/// the area is refused, a NUL byte is refused), then opened relative to a
/// handle of `base` with the kernel enforcing that resolution stays beneath
/// it (`openat2` with `RESOLVE_BENEATH`, through cap-std): a symlink that
/// leaves the area is refused even if it appears between any check and the
/// open. Symlinks inside the area work; an absolute symlink (or one that
/// climbs out and back in) is followed when its target lies inside the area,
/// and that target is opened confined again. The caller checks the opened
/// handle's metadata (`Opened::meta`), never the path.
pub fn open_confined(base: &Path, area: &'static str, name: &str) -> Result<Opened, ReadError> {
    let rel = confined_name(area, name)?;
    let dir = cap_std::fs::Dir::open_ambient_dir(base, cap_std::ambient_authority())
        .map_err(|e| io_error(base, e))?;
    open_rel(&dir, base, area, name, &rel)
}

/// [`open_confined`] below an already open handle of the area directory.
pub fn open_in(
    dir: &cap_std::fs::Dir,
    base: &Path,
    area: &'static str,
    name: &str,
) -> Result<Opened, ReadError> {
    let rel = confined_name(area, name)?;
    open_rel(dir, base, area, name, &rel)
}

/// The cleaned, relative form of `name` (`.` for the area itself).
fn confined_name(area: &'static str, name: &str) -> Result<PathBuf, ReadError> {
    if name.contains('\0') {
        return Err(ReadError::Nul(name.to_string()));
    }
    let parts =
        clean_within(name, area).ok_or_else(|| ReadError::Escapes(name.to_string(), area))?;
    Ok(if parts.is_empty() {
        PathBuf::from(".")
    } else {
        parts.iter().collect()
    })
}

fn open_rel(
    dir: &cap_std::fs::Dir,
    base: &Path,
    area: &'static str,
    name: &str,
    rel: &Path,
) -> Result<Opened, ReadError> {
    let path = if rel == Path::new(".") {
        base.to_path_buf()
    } else {
        base.join(rel)
    };
    let file = match dir.open_with(rel, &open_options()) {
        Ok(f) => f.into_std(),
        Err(e) if is_escape(&e) => {
            // An absolute symlink into the area, or one climbing out and back:
            // where does it lead now? If inside, open that (without symlinks,
            // unless they changed since: then the confined open refuses them).
            let inside = base.canonicalize().ok().and_then(|b| {
                let target = path.canonicalize().ok()?;
                target.strip_prefix(&b).ok().map(Path::to_path_buf)
            });
            let Some(target) = inside else {
                return Err(ReadError::Escapes(name.to_string(), area));
            };
            let target = if target.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                target
            };
            match dir.open_with(&target, &open_options()) {
                Ok(f) => f.into_std(),
                Err(e) if is_escape(&e) => return Err(ReadError::Escapes(name.to_string(), area)),
                Err(e) => return Err(io_error(&path, e)),
            }
        }
        Err(e) => return Err(io_error(&path, e)),
    };
    let meta = file.metadata().map_err(|e| io_error(&path, e))?;
    Ok(Opened { file, meta, path })
}

/// Checks that `name` opens as a regular file inside the area (with
/// [`open_confined`]) and returns its lexical path, for reports only. To read
/// a file, use [`open_confined`] and the opened handle: a name can change
/// between a check and an open.
pub fn resolve_confined(base: &Path, area: &'static str, name: &str) -> Result<PathBuf, ReadError> {
    let o = open_confined(base, area, name)?;
    if !o.meta.is_file() {
        return Err(ReadError::NotAFile(o.path.display().to_string()));
    }
    Ok(o.path)
}
