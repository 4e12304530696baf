//! Per-machine lifecycle state: which machines are installed (and answered with a local
//! boot) and which booted without a matching group (discovered). One JSON file per
//! machine in `<state dir>/machines/` (`52-54-00-12-34-56.json`), written atomically and
//! durably, read back at start; the request path reads the in-memory map only.
//!
//! A server holds an exclusive `flock` on `machines/.lock` while it runs, so that
//! `kindling machines reinstall` without `--server` can tell that its write would not be
//! seen (and would race the server's own writes) and refuse.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;
use crate::store::write_atomic;

/// How an install was marked done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Ignition,
    Callback,
    Operator,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Ignition => "ignition",
            Via::Callback => "callback",
            Via::Operator => "operator",
        }
    }
}

/// A finished install: the machine's next boots go to its disk until it is re-armed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// Unix seconds.
    pub at: u64,
    pub via: Via,
    /// The group and profile it was installed with (empty when the operator marked a
    /// machine no group selects).
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub profile: String,
}

/// A machine that asked for its boot script and matched no group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Discovered {
    pub first_seen: u64,
    pub last_seen: u64,
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// What the client said (`arch`, `uuid`, `serial`, `hostname` labels), each cut to
    /// [`MAX_FACT_BYTES`].
    #[serde(default)]
    pub arch: String,
    #[serde(default)]
    pub uuid: String,
    #[serde(default)]
    pub serial: String,
    #[serde(default)]
    pub hostname: String,
    /// When facts were last handed out to be written (memory only): a client whose facts
    /// keep changing is written at most once a minute.
    #[serde(skip)]
    pub written: u64,
}

/// The longest client-supplied fact kept for a discovered machine.
pub const MAX_FACT_BYTES: usize = 128;

/// One machine's lifecycle state (its file's content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineRecord {
    /// `52:54:00:12:34:56`.
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<Installed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered: Option<Discovered>,
}

impl MachineRecord {
    fn is_empty(&self) -> bool {
        self.installed.is_none() && self.discovered.is_none()
    }
}

/// What [`Machines::discovered`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noted {
    /// First sighting (or new facts): the record should be written ([`Machines::persist`]).
    Changed,
    /// Known, nothing new to write (its `last_seen` moved in memory).
    Known,
    /// The table of discovered machines is full: not recorded (counted).
    Full,
}

/// The lifecycle store.
pub struct Machines {
    dir: PathBuf,
    map: RwLock<HashMap<MacAddr, MachineRecord>>,
    /// Serialises file writes: each writes the record as it is when it runs.
    writing: Mutex<()>,
    max_discovered: usize,
    /// Records with `discovered` (changed under the map's write lock): the bound is checked
    /// without counting the map on every new MAC.
    discovered: std::sync::atomic::AtomicUsize,
    dropped: AtomicU64,
    /// The server's lock on the directory (held while this store lives).
    _lock: Option<std::fs::File>,
    /// Why the directory could not be read at start ([`Machines::unavailable`]).
    broken: Option<String>,
}

/// Lock file name inside the machines directory.
pub const LOCK_FILE: &str = ".lock";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn file_name(mac: MacAddr) -> String {
    format!("{}.json", mac.to_string().replace(':', "-"))
}

fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_FACT_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
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

/// Problems met while loading (files that did not parse are left in place, unused).
pub type LoadProblems = Vec<String>;

impl Machines {
    /// Opens (creating) `dir`, takes the server's lock when `lock` (a WARN-worthy
    /// problem when another process holds it), sweeps interrupted writes and loads every
    /// record.
    pub fn open(
        dir: &Path,
        max_discovered: usize,
        lock: bool,
    ) -> io::Result<(Machines, LoadProblems)> {
        std::fs::create_dir_all(dir)?;
        let mut problems = Vec::new();
        let held = if lock {
            let l = try_lock(dir)?;
            if l.is_none() {
                problems.push(format!(
                    "another process holds {}: two servers on one state directory race each other's machine state",
                    dir.join(LOCK_FILE).display()
                ));
            }
            l
        } else {
            None
        };
        crate::store::sweep_interrupted(dir);
        let mut map = HashMap::new();
        for e in std::fs::read_dir(dir)?.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            if stem.starts_with('.') {
                continue;
            }
            let loaded = std::fs::read(e.path())
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    serde_json::from_slice::<MachineRecord>(&b).map_err(|e| e.to_string())
                })
                .and_then(|r| {
                    let mac = MacAddr::parse(&r.mac).map_err(|e| e.to_string())?;
                    if file_name(mac) != name {
                        return Err(format!("names {} but is called {name}", r.mac));
                    }
                    Ok((mac, r))
                });
            match loaded {
                Ok((mac, r)) if !r.is_empty() => {
                    map.insert(mac, r);
                }
                Ok(_) => {}
                Err(why) => problems.push(format!("{}: {why} (ignored)", e.path().display())),
            }
        }
        let discovered = map.values().filter(|r| r.discovered.is_some()).count();
        Ok((
            Machines {
                dir: dir.to_path_buf(),
                discovered: discovered.into(),
                map: RwLock::new(map),
                writing: Mutex::new(()),
                max_discovered,
                dropped: AtomicU64::new(0),
                _lock: held,
                broken: None,
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
            map: RwLock::new(HashMap::new()),
            writing: Mutex::new(()),
            max_discovered: 0,
            discovered: 0.into(),
            dropped: AtomicU64::new(0),
            _lock: None,
            broken: Some(why),
        }
    }

    /// Why the state could not be read at start, if it could not.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    fn check_usable(&self) -> io::Result<()> {
        match &self.broken {
            Some(why) => Err(io::Error::other(why.clone())),
            None => Ok(()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
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

    pub fn discovered_count(&self) -> usize {
        self.discovered.load(Ordering::Relaxed)
    }

    /// How many machines are installed, and how many discovered.
    pub fn counts(&self) -> (usize, usize) {
        let map = self.read();
        let installed = map.values().filter(|r| r.installed.is_some()).count();
        let discovered = map.values().filter(|r| r.discovered.is_some()).count();
        (installed, discovered)
    }

    /// Writes `mac`'s record as it is now (removes its file when it is empty). Blocking.
    pub fn persist(&self, mac: MacAddr) -> io::Result<()> {
        self.check_usable()?;
        let _w = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let rec = self.get(mac);
        self.store(mac, rec.as_ref())
    }

    fn store(&self, mac: MacAddr, rec: Option<&MachineRecord>) -> io::Result<()> {
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
        self.check_usable()?;
        let _w = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let mut rec = self.get(mac).unwrap_or_else(|| MachineRecord {
            mac: mac.to_string(),
            installed: None,
            discovered: None,
        });
        let new = change(rec.installed.clone());
        if new == rec.installed {
            return Ok(false);
        }
        rec.installed = new.clone();
        self.store(mac, Some(&rec))?;
        let mut map = self.write();
        let entry = map.entry(mac).or_insert(rec);
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
        self.set_installed(mac, |old| {
            old.or_else(|| {
                Some(Installed {
                    at: now(),
                    via,
                    group: group.to_string(),
                    profile: profile.to_string(),
                })
            })
        })
    }

    /// Re-arms `mac`: its next boot installs again. `Ok(false)` when it was not installed.
    pub fn rearm(&self, mac: MacAddr) -> io::Result<bool> {
        self.set_installed(mac, |_| None)
    }

    /// Notes that `mac` asked for its boot script and matched no group (memory only; write
    /// it with [`Machines::persist`] when this says [`Noted::Changed`]).
    pub fn discovered(&self, mac: MacAddr, ip: Option<IpAddr>, facts: [&str; 4]) -> Noted {
        let [arch, uuid, serial, hostname] = facts.map(cut);
        let t = now();
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
            if t < d.written.saturating_add(60) {
                return Noted::Known;
            }
            d.written = t;
            return Noted::Changed;
        }
        if self.discovered.load(Ordering::Relaxed) >= self.max_discovered {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Noted::Full;
        }
        let rec = map.entry(mac).or_insert_with(|| MachineRecord {
            mac: mac.to_string(),
            installed: None,
            discovered: None,
        });
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
        Noted::Changed
    }

    /// A discovered machine that a group now selects is no longer discovered; `true` when
    /// its record changed (write it with [`Machines::persist`]).
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
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("kindling-machines-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn install_rearm_and_reload() {
        let d = scratch("install");
        let mac = MacAddr::parse("52:54:00:00:00:01").unwrap();
        {
            let (m, p) = Machines::open(&d, 10, true).unwrap();
            assert!(p.is_empty(), "{p:?}");
            assert!(m.installed(mac).is_none());
            assert!(m.mark_installed(mac, Via::Callback, "g", "p").unwrap());
            assert!(!m.mark_installed(mac, Via::Ignition, "g", "p").unwrap());
            assert_eq!(m.installed(mac).unwrap().via, Via::Callback);
            // A second opener sees the lock.
            assert!(try_lock(&d).unwrap().is_none());
        }
        assert!(
            try_lock(&d).unwrap().is_some(),
            "lock released with the store"
        );
        let (m, _) = Machines::open(&d, 10, true).unwrap();
        let i = m.installed(mac).expect("install survives a restart");
        assert_eq!(
            (i.via, i.group.as_str(), i.profile.as_str()),
            (Via::Callback, "g", "p")
        );
        assert!(m.rearm(mac).unwrap());
        assert!(!m.rearm(mac).unwrap());
        assert!(
            !d.join("52-54-00-00-00-01.json").exists(),
            "an empty record has no file"
        );
        drop(m);
        let (m, _) = Machines::open(&d, 10, true).unwrap();
        assert!(m.installed(mac).is_none());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_unavailable_store_refuses_writes_and_records_nothing() {
        let m = Machines::unavailable(Path::new("/nonexistent"), "not a directory".into());
        let mac = MacAddr([0x52, 0x54, 0, 0, 2, 1]);
        assert_eq!(m.broken(), Some("not a directory"));
        assert!(m.mark_installed(mac, Via::Operator, "", "").is_err());
        assert!(m.installed(mac).is_none());
        assert_eq!(m.discovered(mac, None, ["", "", "", ""]), Noted::Full);
    }

    #[test]
    fn discovery_is_bounded_and_cleared_by_a_match() {
        let d = scratch("disc");
        let (m, _) = Machines::open(&d, 2, false).unwrap();
        let mac = |n: u8| MacAddr([0x52, 0x54, 0, 0, 1, n]);
        let long = "x".repeat(1000);
        assert_eq!(
            m.discovered(mac(1), None, ["x86_64", "u", "s", &long]),
            Noted::Changed
        );
        assert_eq!(
            m.get(mac(1)).unwrap().discovered.unwrap().hostname.len(),
            MAX_FACT_BYTES
        );
        assert_eq!(
            m.discovered(mac(1), None, ["x86_64", "u", "s", &long]),
            Noted::Known
        );
        // New facts within a minute: kept in memory, not written again.
        assert_eq!(
            m.discovered(mac(1), None, ["arm64", "u", "s", ""]),
            Noted::Known
        );
        assert_eq!(m.get(mac(1)).unwrap().discovered.unwrap().arch, "arm64");
        assert_eq!(m.discovered(mac(2), None, ["", "", "", ""]), Noted::Changed);
        assert_eq!(m.discovered(mac(3), None, ["", "", "", ""]), Noted::Full);
        assert_eq!(m.dropped(), 1);
        m.persist(mac(1)).unwrap();
        m.persist(mac(2)).unwrap();
        assert!(m.matched(mac(2)));
        m.persist(mac(2)).unwrap();
        assert!(!m.matched(mac(2)));
        drop(m);
        std::fs::write(d.join("zz.json"), b"{not json").unwrap();
        let (m, problems) = Machines::open(&d, 2, false).unwrap();
        assert_eq!(m.discovered_count(), 1);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("zz.json"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
