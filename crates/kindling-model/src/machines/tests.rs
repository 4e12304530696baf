//! The lifecycle store's own tests: install, re-arm, reload, unknown records, discovery
//! bounds and the writer, an install racing a match.

use super::*;

/// A fresh directory of its own, removed when dropped (even when the test fails).
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("kindling-machines-{name}-"))
        .tempdir()
        .unwrap()
}

#[test]
fn install_rearm_and_reload() {
    let d = scratch("install");
    let mac = MacAddr::parse("52:54:00:00:00:01").unwrap();
    {
        let (m, p) = Machines::open(d.path(), 10, true).unwrap();
        assert!(p.is_empty(), "{p:?}");
        assert!(m.installed(mac).is_none());
        assert!(m.mark_installed(mac, Via::Callback, "g", "p").unwrap());
        assert!(!m.mark_installed(mac, Via::Ignition, "g", "p").unwrap());
        assert_eq!(m.installed(mac).unwrap().via, Via::Callback);
        // A second opener sees the lock.
        assert!(try_lock(d.path()).unwrap().is_none());
    }
    assert!(
        try_lock(d.path()).unwrap().is_some(),
        "lock released with the store"
    );
    let (m, _) = Machines::open(d.path(), 10, true).unwrap();
    let i = m.installed(mac).expect("install survives a restart");
    assert_eq!(
        (i.via, i.group.as_str(), i.profile.as_str()),
        (Via::Callback, "g", "p")
    );
    assert!(m.rearm(mac).unwrap());
    assert!(!m.rearm(mac).unwrap());
    assert!(
        !d.path().join("52-54-00-00-00-01.json").exists(),
        "an empty record has no file"
    );
    drop(m);
    let (m, _) = Machines::open(d.path(), 10, true).unwrap();
    assert!(m.installed(mac).is_none());
}

#[test]
fn a_record_that_does_not_load_makes_that_machine_unknown() {
    let d = scratch("unknown");
    std::fs::create_dir_all(d.path()).unwrap();
    let a = MacAddr::parse("52:54:00:00:00:0a").unwrap();
    let b = MacAddr::parse("52:54:00:00:00:0b").unwrap();
    // A newer version's word, and a copy under another machine's name.
    std::fs::write(
        d.path().join(file_name(a)),
        r#"{"mac":"52:54:00:00:00:0a","installed":{"at":1,"via":"api"}}"#,
    )
    .unwrap();
    std::fs::write(
        d.path().join(file_name(b)),
        r#"{"mac":"52:54:00:00:00:0c","installed":{"at":1,"via":"operator"}}"#,
    )
    .unwrap();
    std::fs::write(d.path().join("notes.json"), "{}").unwrap();
    let (m, problems) = Machines::open(d.path(), 10, true).unwrap();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(m.unknown(a).is_some() && m.unknown(b).is_some());
    assert!(
        m.unknown(MacAddr::parse("52:54:00:00:00:0d").unwrap())
            .is_none()
    );
}

#[test]
fn an_unavailable_store_refuses_writes_and_records_nothing() {
    let m = Machines::unavailable(Path::new("/nonexistent"), "not a directory".into());
    let mac = MacAddr([0x52, 0x54, 0, 0, 2, 1]);
    assert_eq!(m.broken(), Some("not a directory"));
    assert_eq!(m.unknown(mac).as_deref(), Some("not a directory"));
    assert!(m.mark_installed(mac, Via::Operator, "", "").is_err());
    assert!(m.installed(mac).is_none());
    assert_eq!(m.discovered(mac, None, ["", "", "", ""]), Noted::Known);
    assert_eq!(m.dropped(), 0, "not counted as a full table");
}

#[test]
fn discovery_is_bounded_written_once_and_cleared_by_a_match() {
    let d = scratch("disc");
    let (m, _) = Machines::open(d.path(), 2, true).unwrap();
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
    m.flush();
    assert!(d.path().join(file_name(mac(1))).exists() && d.path().join(file_name(mac(2))).exists());
    assert!(m.matched(mac(2)));
    assert!(!m.matched(mac(2)));
    m.flush();
    assert!(!d.path().join(file_name(mac(2))).exists());
    assert_eq!(m.counts().1, 1);
    drop(m);
    let (m, problems) = Machines::open(d.path(), 2, true).unwrap();
    assert_eq!(m.counts().1, 1);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn an_install_racing_a_match_keeps_the_count_and_the_records_true() {
    let d = scratch("race");
    let (m, _) = Machines::open(d.path(), 100_000, true).unwrap();
    let m = Arc::new(m);
    let macs: Vec<MacAddr> = (0..200u16)
        .map(|i| MacAddr([0x52, 0x54, 0, 0, (i >> 8) as u8, i as u8]))
        .collect();
    for &mac in &macs {
        m.discovered(mac, None, ["", "", "", ""]);
    }
    let a = {
        let (m, macs) = (m.clone(), macs.clone());
        std::thread::spawn(move || {
            for mac in macs {
                m.mark_installed(mac, Via::Operator, "", "").unwrap();
            }
        })
    };
    for &mac in &macs {
        m.matched(mac);
    }
    a.join().unwrap();
    let (installed, discovered) = m.counts();
    assert_eq!(installed, 200);
    assert_eq!(discovered, 0, "a match is never undone by an install");
    assert!(m.list().iter().all(|r| r.discovered.is_none()));
}

// The shared store (a fleet).
mod shared {

    use super::*;
    use crate::machines::Via;
    use crate::store::Mismatch;
    use std::collections::HashMap;

    /// A shared store in memory that records what was written.
    #[derive(Debug, Default)]
    struct Fake(Mutex<HashMap<String, Vec<u8>>>);

    /// A fake store's version of a value: its bytes' length and a checksum (enough for
    /// these tests' compare-and-swap).
    fn version(b: &[u8]) -> String {
        let sum: u64 = b
            .iter()
            .enumerate()
            .map(|(i, x)| (i as u64 + 1) * u64::from(*x))
            .sum();
        format!("{}-{sum}", b.len())
    }

    fn holds(expect: &Expect, now: Option<&Vec<u8>>) -> bool {
        match expect {
            Expect::Anything => true,
            Expect::Absent => now.is_none(),
            Expect::Present => now.is_some(),
            Expect::Tag(t) => now.is_some_and(|b| version(b) == *t),
        }
    }

    impl Remote for Fake {
        fn get(&self, key: &str) -> io::Result<Option<(Vec<u8>, String)>> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .get(key)
                .map(|b| (b.clone(), version(b))))
        }
        fn put(
            &self,
            key: &str,
            bytes: &[u8],
            expect: &Expect,
        ) -> io::Result<Result<(String, bool), Mismatch>> {
            let mut m = self.0.lock().unwrap();
            if !holds(expect, m.get(key)) {
                return Ok(Err(Mismatch(m.get(key).map(|b| version(b)))));
            }
            let new = m.insert(key.into(), bytes.to_vec()).is_none();
            Ok(Ok((version(bytes), new)))
        }
        fn delete(&self, key: &str, expect: &Expect) -> io::Result<Result<bool, Mismatch>> {
            let mut m = self.0.lock().unwrap();
            if !holds(expect, m.get(key)) {
                return Ok(Err(Mismatch(m.get(key).map(|b| version(b)))));
            }
            Ok(Ok(m.remove(key).is_some()))
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

    #[test]
    fn a_server_behind_never_undoes_an_install_it_has_not_seen() {
        let fake = Arc::new(Fake::default());
        let mac = MacAddr::parse("52:54:00:00:00:09").unwrap();
        // B has a copy from before the install (its watch is behind).
        let (b, _) = Machines::shared(fake.clone(), [], 10);
        let (a, _) = Machines::shared(fake.clone(), [], 10);
        assert!(a.mark_installed(mac, Via::Callback, "g", "p").unwrap());
        // B sees the machine as unknown and records a discovery: the install stays.
        b.discovered(mac, None, ["x86_64", "", "", ""]);
        b.flush();
        let stored = fake
            .0
            .lock()
            .unwrap()
            .get("machines/52-54-00-00-00-09.json")
            .cloned()
            .unwrap();
        let text = String::from_utf8_lossy(&stored).to_string();
        assert!(
            text.contains("callback") && text.contains("x86_64"),
            "{text}"
        );
        // B drops its discovery (a group now selects it): the install still stays.
        assert!(b.matched(mac));
        b.flush();
        let stored = fake
            .0
            .lock()
            .unwrap()
            .get("machines/52-54-00-00-00-09.json")
            .cloned()
            .unwrap();
        let text = String::from_utf8_lossy(&stored).to_string();
        assert!(
            text.contains("callback") && !text.contains("x86_64"),
            "{text}"
        );
    }
}
