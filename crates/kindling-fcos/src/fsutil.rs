//! Atomic writes and the per-stream lock.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::FcosError;

/// Writes `bytes` to `path` through a temporary file in the same directory,
/// fsynced, then renamed over `path`: readers see the old or the new file,
/// never a half-written one. The temporary name ends in `.tmp` so that the
/// server's profile watcher (which loads `*.json`) ignores it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FcosError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| FcosError::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| FcosError::io(path, e))
}

/// Best effort: makes a rename durable.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// An exclusive advisory lock on `<stream dir>/.lock`, held while a pull or a
/// rollback changes that stream (the CLI and `kindling serve` may both run).
pub(crate) struct StreamLock {
    _file: File,
}

impl StreamLock {
    pub(crate) fn acquire(stream_dir: &Path, stream: &str) -> Result<StreamLock, FcosError> {
        fs::create_dir_all(stream_dir).map_err(|e| FcosError::io(stream_dir, e))?;
        let path: PathBuf = stream_dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| FcosError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(StreamLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(FcosError::Locked(stream.to_string())),
            Err(std::fs::TryLockError::Error(e)) => Err(FcosError::io(&path, e)),
        }
    }
}
