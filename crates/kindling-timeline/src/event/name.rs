//! [`Name`]: a short text that recurs across events (an interface, a group, a profile, a
//! boot file, a rule, a vendor class), one shared copy per distinct value.

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

/// A shared text: one pointer wide (`Option<Name>` too), so that an event of a
/// storm holds a pointer to its interface or vendor class, not a copy. One heap block
/// for a text of up to 24 bytes (a group, a profile, an interface: the text is inline in
/// the shared block), two past that.
#[derive(Clone)]
pub struct Name(Arc<Text>);

type Text = compact_str::CompactString;

/// Who chose a text: the server (configuration, interfaces, boot files) or a client
/// (vendor and user classes, HTTP methods). Each has its own share of the table, so
/// spoofed packets with random vendor classes cannot take the room the server's own
/// names need.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Chosen {
    Server,
    Client,
}

/// Distinct names kept for sharing, per [`Chosen`] (server names are as many as the
/// configuration has groups and profiles). When a share is full, names no event holds any
/// more are let go; past that (or for longer texts) a name is an unshared copy, freed
/// with its last event.
const SERVER_MAX: usize = 16_384;
const CLIENT_MAX: usize = 4096;
const SHARED_LEN_MAX: usize = 128;

struct Share {
    set: HashSet<Name>,
    max: usize,
    /// Names not shared since the last look for unused ones: the next look waits for a
    /// quarter of the share's size of them, so a full share of names still in use costs
    /// a scan per that many new texts, not one each.
    misses: usize,
}

impl Share {
    fn new(max: usize) -> Share {
        Share {
            set: HashSet::new(),
            max,
            misses: 0,
        }
    }

    fn get(&mut self, s: &str) -> Name {
        if let Some(n) = self.set.get(s) {
            return n.clone();
        }
        let n = Name(Arc::new(Text::from(s)));
        if self.set.len() >= self.max {
            self.misses += 1;
            if self.misses >= self.max / 4 {
                self.misses = 0;
                self.set.retain(|n| Arc::strong_count(&n.0) > 1);
            }
        }
        if self.set.len() < self.max {
            self.set.insert(n.clone());
        }
        n
    }
}

struct Table {
    server: Share,
    client: Share,
}

/// Slots of each thread's recent names ([`Name::of`]).
const RECENT_SLOTS: usize = 64;

thread_local! {
    static RECENT: std::cell::RefCell<[Option<Name>; RECENT_SLOTS]> =
        const { std::cell::RefCell::new([const { None }; RECENT_SLOTS]) };
}

/// The slot of `s` among a thread's recent names: FNV-1a of its bytes. Not keyed: a
/// client that makes two texts share a slot only makes this thread ask the table.
fn recent_slot(s: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for &b in s.as_bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h ^ (h >> 16)) as usize % RECENT_SLOTS
}

impl Name {
    /// The shared name for a server-chosen `s` ([`Name::of`]).
    pub fn new(s: &str) -> Name {
        Name::of(s, Chosen::Server)
    }

    /// The shared copy of `s` (or a copy of its own when `s` is long or `who`'s share of
    /// the table is full).
    ///
    /// Each thread keeps the names it took last in a few slots, so that the texts every
    /// request or packet names (its method, group, profile, vendor class) are found
    /// without the table's lock and its keyed hash. A slot holds a name the table gave,
    /// so a text still has one shared copy; the slots keep at most
    /// [`RECENT_SLOTS`] names per thread alive.
    pub fn of(s: &str, who: Chosen) -> Name {
        if s.len() > SHARED_LEN_MAX {
            return Name(Arc::new(Text::from(s)));
        }
        let slot = recent_slot(s);
        // (`try_with`: a name taken while the thread's locals are torn down skips them.)
        let hit = RECENT
            .try_with(|r| {
                let r = r.try_borrow().ok()?;
                r[slot].as_ref().filter(|n| n.as_str() == s).cloned()
            })
            .ok()
            .flatten();
        if let Some(n) = hit {
            return n;
        }
        let n = Name::from_table(s, who);
        let _ = RECENT.try_with(|r| {
            if let Ok(mut r) = r.try_borrow_mut() {
                r[slot] = Some(n.clone());
            }
        });
        n
    }

    fn from_table(s: &str, who: Chosen) -> Name {
        static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
        let mut t = TABLE
            .get_or_init(|| {
                Mutex::new(Table {
                    server: Share::new(SERVER_MAX),
                    client: Share::new(CLIENT_MAX),
                })
            })
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match who {
            Chosen::Server => t.server.get(s),
            Chosen::Client => t.client.get(s),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Name {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.as_str().hash(h)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name::new(s)
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name::new(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_one_shared_copy_per_value() {
        let a = Name::new("kbr0");
        let b = Name::new(&String::from("kbr0"));
        let c = std::thread::spawn(|| Name::new("kbr0")).join().unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0) && Arc::ptr_eq(&a.0, &c.0));
        assert_eq!(&*Name::new("eth1"), "eth1");
        assert_ne!(a, Name::new("eth1"));
        assert_eq!(std::mem::size_of::<Option<Name>>(), 8);
        // A long text is a copy of its own, equal by value.
        let long = "x".repeat(SHARED_LEN_MAX + 1);
        let (l1, l2) = (Name::new(&long), Name::new(&long));
        assert!(!Arc::ptr_eq(&l1.0, &l2.0));
        assert_eq!(l1, l2);
    }

    /// A thread's recent names are the table's: a name given from a slot is the one the
    /// table holds, and texts that share a slot are each given their own.
    #[test]
    fn recent_names_are_the_tables() {
        let texts: Vec<String> = (0..4 * RECENT_SLOTS)
            .map(|i| format!("recent-{i}"))
            .collect();
        let first: Vec<Name> = texts.iter().map(|t| Name::of(t, Chosen::Server)).collect();
        for (t, n) in texts.iter().zip(&first) {
            assert_eq!(n.as_str(), t);
            let again = Name::of(t, Chosen::Server);
            assert!(Arc::ptr_eq(&again.0, &n.0), "{t}");
            let elsewhere = {
                let t = t.clone();
                std::thread::spawn(move || Name::of(&t, Chosen::Server))
                    .join()
                    .unwrap()
            };
            assert!(Arc::ptr_eq(&elsewhere.0, &n.0), "{t}");
        }
    }

    #[test]
    fn clients_cannot_take_the_servers_share() {
        let kept: Vec<Name> = (0..CLIENT_MAX + 10)
            .map(|i| Name::of(&format!("spoofed-vendor-class-{i}"), Chosen::Client))
            .collect();
        let a = Name::new("a-server-name-after-the-flood");
        let b = Name::new("a-server-name-after-the-flood");
        assert!(Arc::ptr_eq(&a.0, &b.0));
        // The client share is full of names in use: a new one is a copy of its own
        // (shared only through the recent names of the thread that made it)...
        let c = Name::of("late-vendor-class", Chosen::Client);
        let d = std::thread::spawn(|| Name::of("late-vendor-class", Chosen::Client))
            .join()
            .unwrap();
        assert!(!Arc::ptr_eq(&c.0, &d.0));
        // ...until those names are let go with their events.
        drop(kept);
        let shared: Vec<Name> = (0..CLIENT_MAX / 2)
            .map(|_| Name::of("shared-again", Chosen::Client))
            .collect();
        let n = shared.len();
        assert!(Arc::ptr_eq(&shared[n - 1].0, &shared[n - 2].0));
    }
}
