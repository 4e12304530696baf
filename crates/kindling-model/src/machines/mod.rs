//! Per-machine lifecycle state: which machines are installed (and answered with a local
//! boot) and which booted without a matching group (discovered). One JSON file per
//! machine in `<state dir>/machines/` (`52-54-00-12-34-56.json`), written atomically and
//! durably, read back at start; the request path reads the in-memory map only.
//!
//! Writes of installs (and re-arms) are durable before they are visible and before the
//! caller answers. Discovery records are written by one writer thread from a bounded set
//! of changed MACs (several changes of one MAC are one write of its latest state).
//!
//! A server holds an exclusive `flock` on `machines/.lock` while it runs, so that
//! `kindling machines reinstall` without `--server` can tell that its write would not be
//! seen (and would race the server's own writes) and refuse.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use crate::lifecycle::InstallOnce;
use crate::mac::MacAddr;
use crate::store::{Expect, Remote, write_atomic};

pub use record::{Discovered, Installed, MAX_FACT_BYTES, MachineRecord, Via, file_name, read_one};
use record::{cut, mac_of_file, parse_record, read_record};

/// Installs in progress remembered at most (see [`Machines::install_served`]).
pub const MAX_PENDING: usize = 16_384;
/// MACs waiting for the discovery writer at most; more changes are not written (counted).
pub const MAX_DIRTY: usize = 4_096;

/// What [`Machines::discovered`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noted {
    /// First sighting (or new facts): queued for the writer.
    Changed,
    /// Known, nothing new to write (its `last_seen` moved in memory), or the store
    /// records nothing (unavailable).
    Known,
    /// The table of discovered machines is full: not recorded (counted).
    Full,
}

/// What the operator does to a machine's install state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Its next boot installs again.
    Reinstall,
    /// Its next boots go to its disk.
    Installed,
}

impl Change {
    /// The word of the API path and the CLI.
    pub fn segment(self) -> &'static str {
        match self {
            Change::Reinstall => "reinstall",
            Change::Installed => "installed",
        }
    }

    /// Applies it (blocking, durable); whether anything changed.
    pub fn apply(self, machines: &Machines, mac: MacAddr) -> io::Result<bool> {
        match self {
            Change::Reinstall => machines.rearm(mac),
            Change::Installed => machines.mark_installed(mac, Via::Operator, "", ""),
        }
    }
}

/// An install the server is serving: the `/ipxe` of an `install_once` group answered the
/// install profile to this MAC. Completion requests are checked against it, not against
/// whatever labels they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub once: InstallOnce,
    pub group: String,
    pub profile: String,
}

/// The lifecycle store.
pub struct Machines {
    dir: PathBuf,
    map: RwLock<HashMap<MacAddr, MachineRecord>>,
    /// MACs whose file exists but could not be read: their install state is unknown.
    unreadable: RwLock<HashMap<MacAddr, String>>,
    /// The shared store (etcd) that holds the records instead of the directory.
    remote: Option<Arc<dyn crate::store::Remote>>,
    /// Installs being served, by MAC (memory only, bounded).
    pending: Mutex<HashMap<MacAddr, Pending>>,
    /// Serialises file writes: each writes the record as it is when it runs.
    writing: Mutex<()>,
    /// MACs whose discovery record changed, for the writer thread.
    dirty: Mutex<HashSet<MacAddr>>,
    dirty_ready: Condvar,
    max_discovered: usize,
    /// Records with `discovered` (changed under the map's write lock).
    discovered: AtomicUsize,
    dropped: AtomicU64,
    /// Discovery writes skipped because the writer's queue was full.
    unwritten: AtomicU64,
    /// The server's lock on the directory (held while this store lives).
    _lock: Option<std::fs::File>,
    /// Why nothing can be known (the directory could not be read).
    broken: Option<String>,
    /// Why nothing can be written (read-only, or another process holds the lock).
    read_only: Option<String>,
}

/// Lock file name inside the machines directory.
pub const LOCK_FILE: &str = ".lock";

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Tries an exclusive, non-blocking `flock` on `<dir>/.lock`: `Ok(None)` when another
/// process holds it.
pub fn try_lock(dir: &Path) -> io::Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    // SAFETY: flock on a descriptor we own; released when the file closes.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(Some(f))
    } else {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(e)
        }
    }
}

/// [`try_lock`] for up to `wait` (a CLI writing the directory holds it for milliseconds).
fn lock_within(dir: &Path, wait: Duration) -> io::Result<Option<std::fs::File>> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        if let Some(l) = try_lock(dir)? {
            return Ok(Some(l));
        }
        if std::time::Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Problems met while loading.
pub type LoadProblems = Vec<String>;

impl Machines {
    /// Opens (creating) `dir` and loads every record. With `lock` (a server), takes the
    /// directory's lock (waiting up to 5 s for a CLI's write) and sweeps interrupted
    /// writes; without the lock, or on a read-only directory, the records are served and
    /// every write fails. A record file that does not load makes its machine's state
    /// unknown (reported; the file is left as it is).
    pub fn open(
        dir: &Path,
        max_discovered: usize,
        lock: bool,
    ) -> io::Result<(Machines, LoadProblems)> {
        if let Err(e) = std::fs::create_dir_all(dir)
            && !dir.is_dir()
        {
            return Err(e);
        }
        let mut problems = Vec::new();
        let mut read_only = None;
        let held = if lock {
            match lock_within(dir, Duration::from_secs(5)) {
                Ok(Some(l)) => Some(l),
                Ok(None) => {
                    read_only = Some(format!(
                        "another process holds {}",
                        dir.join(LOCK_FILE).display()
                    ));
                    None
                }
                Err(e) => {
                    read_only = Some(format!("{}: {e}", dir.join(LOCK_FILE).display()));
                    None
                }
            }
        } else {
            None
        };
        if let Some(why) = &read_only {
            problems.push(format!(
                "machine state is read-only ({why}): installs cannot be recorded"
            ));
        }
        if held.is_some() {
            crate::store::sweep_interrupted(dir);
        }
        let mut map = HashMap::new();
        let mut unreadable = HashMap::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let Some(mac) = mac_of_file(&name) else {
                problems.push(format!(
                    "{}: not a machine's file name (ignored)",
                    e.path().display()
                ));
                continue;
            };
            match read_record(&e.path(), mac) {
                Ok(r) if !r.is_empty() => {
                    map.insert(mac, r);
                }
                Ok(_) => {}
                Err(why) => {
                    problems.push(format!(
                        "{}: {why}: the install state of {mac} is unknown until the file is fixed or removed",
                        e.path().display()
                    ));
                    unreadable.insert(mac, why);
                }
            }
        }
        let discovered = map.values().filter(|r| r.discovered.is_some()).count();
        Ok((
            Machines {
                dir: dir.to_path_buf(),
                map: RwLock::new(map),
                unreadable: RwLock::new(unreadable),
                remote: None,
                pending: Mutex::default(),
                writing: Mutex::new(()),
                dirty: Mutex::default(),
                dirty_ready: Condvar::new(),
                max_discovered,
                discovered: discovered.into(),
                dropped: AtomicU64::new(0),
                unwritten: AtomicU64::new(0),
                _lock: held,
                broken: None,
                read_only,
            },
            problems,
        ))
    }

    /// A store whose directory could not be read: nothing is known, every write fails
    /// with `why`. Requests that depend on the state must then say so rather than guess
    /// (an installed machine must not be installed again because its record was not read).
    pub fn unavailable(dir: &Path, why: String) -> Machines {
        Machines {
            dir: dir.to_path_buf(),
            map: RwLock::default(),
            unreadable: RwLock::default(),
            remote: None,
            pending: Mutex::default(),
            writing: Mutex::new(()),
            dirty: Mutex::default(),
            dirty_ready: Condvar::new(),
            max_discovered: 0,
            discovered: 0.into(),
            dropped: AtomicU64::new(0),
            unwritten: AtomicU64::new(0),
            _lock: None,
            broken: Some(why.clone()),
            read_only: Some(why),
        }
    }

    /// Why the state could not be read at start, if it could not.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Why writes fail, if they do.
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    /// Why `mac`'s install state is not known, if it is not (the store could not be
    /// read, or its file did not load).
    pub fn unknown(&self, mac: MacAddr) -> Option<String> {
        if let Some(b) = &self.broken {
            return Some(b.clone());
        }
        let unreadable = self.unreadable.read().unwrap_or_else(|p| p.into_inner());
        unreadable.get(&mac).cloned()
    }

    fn writable(&self) -> io::Result<()> {
        match &self.read_only {
            Some(why) => Err(io::Error::other(why.clone())),
            None => Ok(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<MacAddr, MachineRecord>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<MacAddr, MachineRecord>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The install record of a machine, when it is installed (a read lock, no I/O).
    pub fn installed(&self, mac: MacAddr) -> Option<Installed> {
        self.read().get(&mac).and_then(|r| r.installed.clone())
    }

    pub fn get(&self, mac: MacAddr) -> Option<MachineRecord> {
        self.read().get(&mac).cloned()
    }

    /// [`Machines::get`] by a MAC in text (`None` when it does not parse).
    pub fn get_text(&self, mac: &str) -> Option<MachineRecord> {
        self.get(MacAddr::parse(mac).ok()?)
    }

    /// Every record, by MAC.
    pub fn list(&self) -> Vec<MachineRecord> {
        let mut v: Vec<MachineRecord> = self.read().values().cloned().collect();
        v.sort_by(|a, b| a.mac.cmp(&b.mac));
        v
    }

    /// Discovered machines not recorded because the table was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Discovery changes not written because the writer's queue was full.
    pub fn unwritten(&self) -> u64 {
        self.unwritten.load(Ordering::Relaxed)
    }

    /// How many machines are installed, and how many discovered.
    pub fn counts(&self) -> (usize, usize) {
        let installed = self
            .read()
            .values()
            .filter(|r| r.installed.is_some())
            .count();
        (installed, self.discovered.load(Ordering::Relaxed))
    }

    /// Registers the lifecycle's series in `r` (`/metrics`, at each scrape).
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::{counter::ConstCounter, gauge::ConstGauge};
        let (installed, discovered) = self.counts();
        r.register(
            "kindling_machines_installed",
            "Machines marked installed (answered with a local boot until re-armed)",
            ConstGauge::new(installed as i64),
        );
        r.register(
            "kindling_machines_discovered",
            "Machines that asked for a boot script and matched no group",
            ConstGauge::new(discovered as i64),
        );
        r.register(
            "kindling_machines_discovered_dropped",
            "Discovered machines not recorded because the table was full ([machines] max_discovered)",
            ConstCounter::new(self.dropped()),
        );
    }

    /// Writes `mac`'s record as it is now (removes its file when it is empty). Blocking.
    pub fn persist(&self, mac: MacAddr) -> io::Result<()> {
        self.writable()?;
        let _w = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let rec = self.get(mac);
        self.store(mac, rec.as_ref(), Part::Discovered)
    }

    /// Writes `mac`'s record; `part` is the half this write is about (in a shared store,
    /// the other half is taken from the store, not from this server's copy).
    fn store(&self, mac: MacAddr, rec: Option<&MachineRecord>, part: Part) -> io::Result<()> {
        if let Some(remote) = &self.remote {
            return store_shared(remote.as_ref(), mac, rec, part);
        }
        match rec {
            Some(r) if !r.is_empty() => {
                let mut bytes = serde_json::to_vec_pretty(r).map_err(io::Error::other)?;
                bytes.push(b'\n');
                write_atomic(&self.dir, &file_name(mac), &bytes)
            }
            _ => match std::fs::remove_file(self.dir.join(file_name(mac))) {
                Ok(()) => std::fs::File::open(&self.dir)?.sync_all(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            },
        }
    }

    /// Sets `mac`'s install state to what `change` makes of it, writes the record durably,
    /// and only then makes it the one requests see. `Ok(false)` when nothing changed
    /// (nothing written). Only `installed` is replaced in the map, so a discovery noted
    /// meanwhile is kept (and its own write, which waits for this one, sees both).
    fn set_installed(
        &self,
        mac: MacAddr,
        change: impl FnOnce(Option<Installed>) -> Option<Installed>,
    ) -> io::Result<bool> {
        self.writable()?;
        let _w = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let mut rec = self.get(mac).unwrap_or_else(|| MachineRecord::empty(mac));
        let new = change(rec.installed.clone());
        if new == rec.installed {
            return Ok(false);
        }
        rec.installed = new.clone();
        self.store(mac, Some(&rec), Part::Installed)?;
        let mut map = self.write();
        let entry = map.entry(mac).or_insert_with(|| MachineRecord::empty(mac));
        entry.installed = new;
        if entry.is_empty() {
            map.remove(&mac);
        }
        Ok(true)
    }

    /// Marks `mac` installed (durably, before returning). `Ok(false)` when it already was.
    pub fn mark_installed(
        &self,
        mac: MacAddr,
        via: Via,
        group: &str,
        profile: &str,
    ) -> io::Result<bool> {
        let changed = self.set_installed(mac, |old| {
            old.or_else(|| {
                Some(Installed {
                    at: now_ms(),
                    via,
                    group: group.to_string(),
                    profile: profile.to_string(),
                })
            })
        })?;
        self.pending_lock().remove(&mac);
        Ok(changed)
    }

    /// Re-arms `mac`: its next boot installs again. `Ok(false)` when it was not installed.
    pub fn rearm(&self, mac: MacAddr) -> io::Result<bool> {
        self.set_installed(mac, |_| None)
    }

    fn pending_lock(&self) -> std::sync::MutexGuard<'_, HashMap<MacAddr, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `/ipxe` (or `/grub`) answered `mac` the install profile of an `install_once`
    /// group: its completion (the Ignition fetch, `/install/done`) is judged by this, not
    /// by the labels the completion request carries. At most [`MAX_PENDING`] are kept.
    pub fn install_served(&self, mac: MacAddr, p: Pending) {
        let mut pending = self.pending_lock();
        if pending.get(&mac) == Some(&p) {
            return;
        }
        if pending.len() >= MAX_PENDING && !pending.contains_key(&mac) {
            return;
        }
        pending.insert(mac, p);
    }

    /// The install being served to `mac`, if any.
    pub fn pending(&self, mac: MacAddr) -> Option<Pending> {
        self.pending_lock().get(&mac).cloned()
    }

    /// Notes that `mac` asked for its boot script and matched no group (memory; the
    /// writer thread writes it when this says [`Noted::Changed`]).
    pub fn discovered(&self, mac: MacAddr, ip: Option<IpAddr>, facts: [&str; 4]) -> Noted {
        if self.read_only.is_some() {
            return Noted::Known;
        }
        let [arch, uuid, serial, hostname] = facts.map(cut);
        let t = now_ms();
        let mut map = self.write();
        if let Some(d) = map.get_mut(&mac).and_then(|r| r.discovered.as_mut()) {
            d.last_seen = t;
            let same = d.ip == ip
                && d.arch == arch
                && d.uuid == uuid
                && d.serial == serial
                && d.hostname == hostname;
            if same {
                return Noted::Known;
            }
            (d.ip, d.arch, d.uuid, d.serial, d.hostname) = (ip, arch, uuid, serial, hostname);
            if t < d.written.saturating_add(60_000) {
                return Noted::Known;
            }
            d.written = t;
            drop(map);
            self.queue(mac);
            return Noted::Changed;
        }
        if self.discovered.load(Ordering::Relaxed) >= self.max_discovered {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Noted::Full;
        }
        let rec = map.entry(mac).or_insert_with(|| MachineRecord::empty(mac));
        rec.discovered = Some(Discovered {
            first_seen: t,
            last_seen: t,
            ip,
            arch,
            uuid,
            serial,
            hostname,
            written: t,
        });
        self.discovered.fetch_add(1, Ordering::Relaxed);
        drop(map);
        self.queue(mac);
        Noted::Changed
    }

    /// A discovered machine that a group now selects is no longer discovered (its record
    /// is queued for the writer); `true` when it was.
    pub fn matched(&self, mac: MacAddr) -> bool {
        if self.read().get(&mac).is_none_or(|r| r.discovered.is_none()) {
            return false;
        }
        let mut map = self.write();
        let Some(r) = map.get_mut(&mac) else {
            return false;
        };
        if r.discovered.take().is_none() {
            return false;
        }
        self.discovered.fetch_sub(1, Ordering::Relaxed);
        if r.is_empty() {
            map.remove(&mac);
        }
        drop(map);
        self.queue(mac);
        true
    }

    /// Hands `mac` to the writer thread (once, however often it changes before it is
    /// written).
    fn queue(&self, mac: MacAddr) {
        let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        if dirty.len() >= MAX_DIRTY && !dirty.contains(&mac) {
            self.unwritten.fetch_add(1, Ordering::Relaxed);
            return;
        }
        dirty.insert(mac);
        self.dirty_ready.notify_one();
    }

    /// Writes the queued discovery records until `stop` says so (and the queue is empty).
    /// Run on a thread of its own ([`Machines::start_writer`]).
    fn write_queued(&self, stop: &dyn Fn() -> bool) {
        loop {
            let batch: Vec<MacAddr> = {
                let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
                while dirty.is_empty() {
                    if stop() {
                        return;
                    }
                    dirty = self
                        .dirty_ready
                        .wait_timeout(dirty, Duration::from_millis(200))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                dirty.drain().collect()
            };
            for mac in batch {
                if let Err(e) = self.persist(mac) {
                    tracing::warn!(target: "kindling::machines", %mac, error = %e, "could not write the machine's discovery record");
                }
            }
        }
    }

    /// Starts the discovery writer: one thread for the life of the store.
    pub fn start_writer(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("kindling-machines".into())
            .spawn(move || {
                loop {
                    let Some(m) = weak.upgrade() else { return };
                    // Returns every 200 ms of quiet so that a dropped store ends the thread.
                    let quiet = std::sync::atomic::AtomicBool::new(false);
                    m.write_queued(&|| quiet.swap(true, Ordering::Relaxed));
                }
            });
        if let Err(e) = spawned {
            tracing::error!(target: "kindling::machines", error = %e, "could not start the discovery writer: discovery records are kept in memory only");
        }
    }

    /// Writes every queued record now (tests, shutdown).
    pub fn flush(&self) {
        self.write_queued(&|| true);
    }
}

mod record;
#[cfg(test)]
mod tests;

// The lifecycle store of a fleet: records in a shared store (etcd) under
// `machines/<file name>`, with the directory's file names and content, so that an install
// marked done, a re-arm or a discovery made through one server is what every server
// answers. Writes go to the store before the answer, as with files; every server applies
// the store's changes to its in-memory map (its own echo included) from the store's watch.

/// The key of `mac`'s record in the shared store.
fn key(mac: MacAddr) -> String {
    format!("machines/{}", file_name(mac))
}

/// The half of a record a write is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Installed,
    Discovered,
}

/// Writes `part` of `rec` into the shared store, keeping the other part as the store has
/// it: read, merge, compare-and-swap on the record's version, again when another server
/// wrote in between. A server whose copy is behind (its watch silent) can then never undo
/// an install another server recorded by writing its old view of the machine.
fn store_shared(
    remote: &dyn Remote,
    mac: MacAddr,
    rec: Option<&MachineRecord>,
    part: Part,
) -> io::Result<()> {
    let key = key(mac);
    for _ in 0..8 {
        let (mut merged, expect) = match remote.get(&key)? {
            Some((bytes, tag)) => (
                // A stored record that does not load is replaced by this write's part.
                parse_record(&bytes, mac).unwrap_or_else(|_| MachineRecord::empty(mac)),
                Expect::Tag(tag),
            ),
            None => (MachineRecord::empty(mac), Expect::Absent),
        };
        match part {
            Part::Installed => merged.installed = rec.and_then(|r| r.installed.clone()),
            Part::Discovered => merged.discovered = rec.and_then(|r| r.discovered.clone()),
        }
        let done = if merged.is_empty() {
            match expect {
                Expect::Absent => return Ok(()),
                _ => remote.delete(&key, &expect)?.is_ok(),
            }
        } else {
            let mut bytes = serde_json::to_vec_pretty(&merged).map_err(io::Error::other)?;
            bytes.push(b'\n');
            remote.put(&key, &bytes, &expect)?.is_ok()
        };
        if done {
            return Ok(());
        }
    }
    Err(io::Error::other(format!(
        "the record of {mac} kept changing under this write (8 tries)"
    )))
}

impl Machines {
    /// The lifecycle store of a fleet, its records in `remote` (`records`: what it holds
    /// now, by file name). Records that do not load make their machine's state unknown,
    /// as files do.
    pub fn shared(
        remote: Arc<dyn Remote>,
        records: impl IntoIterator<Item = (String, Arc<[u8]>)>,
        max_discovered: usize,
    ) -> (Machines, LoadProblems) {
        let m = Machines {
            dir: std::path::PathBuf::new(),
            map: RwLock::default(),
            unreadable: RwLock::default(),
            remote: Some(remote),
            pending: Mutex::default(),
            writing: Mutex::new(()),
            dirty: Mutex::default(),
            dirty_ready: Condvar::new(),
            max_discovered,
            discovered: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            unwritten: AtomicU64::new(0),
            _lock: None,
            broken: None,
            read_only: None,
        };
        let problems = records
            .into_iter()
            .filter_map(|(name, bytes)| m.apply_shared(&name, Some(&bytes)))
            .collect();
        (m, problems)
    }

    /// A record changed in the shared store (`None`: deleted), by this server or another:
    /// the in-memory map follows. Returns a problem when the record does not load (its
    /// machine's state is then unknown).
    pub fn apply_shared(&self, name: &str, bytes: Option<&[u8]>) -> Option<String> {
        let Some(mac) = mac_of_file(name) else {
            return Some(format!(
                "machines/{name}: not a machine's record name (ignored)"
            ));
        };
        let parsed = bytes.map(|b| parse_record(b, mac));
        let mut unreadable = self.unreadable.write().unwrap_or_else(|p| p.into_inner());
        let mut map = self.write();
        let was_discovered = map.get(&mac).is_some_and(|r| r.discovered.is_some());
        let mut problem = None;
        match parsed {
            Some(Ok(mut r)) => {
                unreadable.remove(&mac);
                // Memory-only fields survive the echo (the once-a-minute write limit).
                if let (Some(new), Some(old)) = (
                    r.discovered.as_mut(),
                    map.get(&mac).and_then(|o| o.discovered.as_ref()),
                ) {
                    new.written = new.written.max(old.written);
                }
                if r.is_empty() {
                    map.remove(&mac);
                } else {
                    map.insert(mac, r);
                }
            }
            Some(Err(why)) => {
                let p = format!(
                    "machines/{name}: {why}: the install state of {mac} is unknown until the record is fixed or removed"
                );
                unreadable.insert(mac, why);
                map.remove(&mac);
                problem = Some(p);
            }
            None => {
                unreadable.remove(&mac);
                map.remove(&mac);
            }
        }
        let now_discovered = map.get(&mac).is_some_and(|r| r.discovered.is_some());
        match (was_discovered, now_discovered) {
            (false, true) => {
                self.discovered.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                self.discovered.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        problem
    }
}
