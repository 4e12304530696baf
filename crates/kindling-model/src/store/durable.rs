//! Durable, atomic file writes (a new hidden temporary file, synced, renamed over the name,
//! the directory synced) and the sweep of temporaries a crash left behind.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Temporary names are unique within the process; the pid separates processes.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

/// Removes from `dir` the temporary files of [`write_atomic`]s that a crash interrupted
/// (`.<name>.<pid>.<n>.tmp` whose process is gone, or older than an hour); returns how
/// many. Recent files of a live process (another writer of the same directory) stay.
pub fn sweep_interrupted(dir: &Path) -> usize {
    let Ok(area) = open_area(dir) else {
        return 0;
    };
    let Ok(entries) = area.entries() else {
        return 0;
    };
    let mut swept = 0;
    for e in entries.filter_map(Result::ok) {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        // A writer that is gone, or a write older than an hour (no write takes that
        // long; in a container the crashed writer's pid may be alive again).
        let stale = || {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.into_std().elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(3600))
        };
        if let Some(pid) = interrupted_write(&name)
            && (!process_alive(pid) || stale())
            && area.remove_file(&name).is_ok()
        {
            swept += 1;
        }
    }
    swept
}

/// The writer's pid when `name` is one of [`write_atomic`]'s temporary names.
pub(super) fn interrupted_write(name: &str) -> Option<i32> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = inner.rsplitn(3, '.');
    let n = parts.next()?;
    let pid = parts.next()?;
    let base = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(n) && digits(pid) && !base.is_empty())
        .then(|| pid.parse().ok())
        .flatten()
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid == std::process::id() as i32
        || unsafe { libc::kill(pid, 0) } == 0
        || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

pub(super) fn open_area(path: &Path) -> io::Result<cap_std::fs::Dir> {
    cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority())
}

/// fsync of the directory itself (its handle may be `O_PATH`, which cannot be synced: a
/// read-only descriptor of `.` can).
pub(super) fn sync_dir(dir: &cap_std::fs::Dir) -> io::Result<()> {
    dir.open_with(".", cap_std::fs::OpenOptions::new().read(true))?
        .sync_all()
}

/// Writes `name` in the directory `dir` atomically and durably: a new temporary file,
/// synced, renamed over `name`, then the directory synced. The temporary file is removed
/// when any step fails.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    use cap_std::fs::{OpenOptionsExt, PermissionsExt};
    let area = open_area(dir)?;
    let mode = match area.symlink_metadata(name) {
        Ok(m) if m.is_file() => m.permissions().mode() & 0o7777,
        _ => 0o644,
    };
    // The clock's nanoseconds make the name unique across processes whose pids collide
    // (two containers writing one volume, each its own pid 1).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = format!(
        ".{name}.{}.{nanos}{}.tmp",
        std::process::id(),
        NEXT_TMP.fetch_add(1, Ordering::Relaxed)
    );
    let mut opts = cap_std::fs::OpenOptions::new();
    opts.write(true).create_new(true).mode(mode);
    let result = (|| {
        let mut f = area.open_with(&tmp, &opts)?;
        f.write_all(bytes)?;
        // create_new honours the umask; the replaced file's bits are restored exactly.
        f.set_permissions(cap_std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        drop(f);
        area.rename(&tmp, &area, name)?;
        sync_dir(&area)
    })();
    if result.is_err() {
        let _ = area.remove_file(&tmp);
    }
    result
}
