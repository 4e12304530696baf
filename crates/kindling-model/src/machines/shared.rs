//! The lifecycle store of a fleet: records in a shared store (etcd) under
//! `machines/<file name>`, with the directory's file names and content, so that an install
//! marked done, a re-arm or a discovery made through one server is what every server
//! answers. Writes go to the store before the answer, as with files; every server applies
//! the store's changes to its in-memory map (its own echo included) from the store's watch.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use super::{LoadProblems, MachineRecord, Machines, file_name, mac_of_file, parse_record};
use crate::mac::MacAddr;
use crate::store::{Expect, Remote};

/// The key of `mac`'s record in the shared store.
fn key(mac: MacAddr) -> String {
    format!("machines/{}", file_name(mac))
}

pub(super) fn store(
    remote: &dyn Remote,
    mac: MacAddr,
    rec: Option<&MachineRecord>,
) -> io::Result<()> {
    match rec {
        Some(r) if !r.is_empty() => {
            let mut bytes = serde_json::to_vec_pretty(r).map_err(io::Error::other)?;
            bytes.push(b'\n');
            // Without a precondition the store never refuses.
            let _ = remote.put(&key(mac), &bytes, &Expect::Anything)?;
        }
        _ => {
            let _ = remote.delete(&key(mac), &Expect::Anything)?;
        }
    }
    Ok(())
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
            Some(Ok(r)) => {
                unreadable.remove(&mac);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machines::Via;
    use crate::store::Mismatch;
    use std::collections::HashMap;

    /// A shared store in memory that records what was written.
    #[derive(Debug, Default)]
    struct Fake(Mutex<HashMap<String, Vec<u8>>>);

    impl Remote for Fake {
        fn get(&self, key: &str) -> io::Result<Option<(Vec<u8>, String)>> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .get(key)
                .map(|b| (b.clone(), "1".into())))
        }
        fn put(
            &self,
            key: &str,
            bytes: &[u8],
            _: &Expect,
        ) -> io::Result<Result<(String, bool), Mismatch>> {
            let new = self
                .0
                .lock()
                .unwrap()
                .insert(key.into(), bytes.to_vec())
                .is_none();
            Ok(Ok(("1".into(), new)))
        }
        fn delete(&self, key: &str, _: &Expect) -> io::Result<Result<bool, Mismatch>> {
            Ok(Ok(self.0.lock().unwrap().remove(key).is_some()))
        }
        fn list(&self, _: &str) -> io::Result<Vec<String>> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn records_go_to_the_shared_store_and_changes_come_back() {
        let fake = Arc::new(Fake::default());
        let mac = MacAddr::parse("52:54:00:00:00:07").unwrap();
        let other = MacAddr::parse("52:54:00:00:00:08").unwrap();
        let (m, problems) = Machines::shared(fake.clone(), [], 10);
        assert!(problems.is_empty());
        assert!(m.mark_installed(mac, Via::Operator, "g", "p").unwrap());
        let key = "machines/52-54-00-00-00-07.json";
        let written = fake.0.lock().unwrap().get(key).cloned().unwrap();
        assert!(String::from_utf8_lossy(&written).contains("operator"));

        // Another server of the fleet reads it back, and sees its re-arm.
        let (b, _) = Machines::shared(
            fake.clone(),
            [(file_name(mac), Arc::from(written.as_slice()))],
            10,
        );
        assert!(b.installed(mac).is_some());
        assert!(b.rearm(mac).unwrap());
        assert!(!fake.0.lock().unwrap().contains_key(key));
        assert!(m.apply_shared(&file_name(mac), None).is_none());
        assert!(m.installed(mac).is_none());

        // A record that does not load: unknown, not "not installed".
        let p = m.apply_shared(&file_name(other), Some(b"{"));
        assert!(p.is_some());
        assert!(m.unknown(other).is_some());
        assert!(m.apply_shared(&file_name(other), None).is_none());
        assert!(m.unknown(other).is_none());

        // Discovery counts follow the records.
        m.discovered(other, None, ["x86_64", "", "", ""]);
        m.flush();
        assert_eq!(m.counts().1, 1);
        assert_eq!(
            b.apply_shared(
                &file_name(other),
                fake.0
                    .lock()
                    .unwrap()
                    .get("machines/52-54-00-00-00-08.json")
                    .map(|v| v.as_slice())
            ),
            None
        );
        assert_eq!(b.counts().1, 1);
        assert!(m.apply_shared("not-a-mac.json", Some(b"{}")).is_some());
    }
}
