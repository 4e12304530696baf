//! Full DHCP mode's leases in a fleet's shared store, so that the servers of a fleet that
//! serve one segment never hand one address to two machines: one key per address,
//! `<prefix>dhcp-leases/<ip>`, holding one line `<mac> <expires> <server>` (`expires` in
//! unix seconds), written with compare-and-swap before each ACK ([`SharedLeases`]).
//! A key whose lease has ended is taken over by whoever claims it next; a RELEASE ends its
//! claim at once. Keys are never deleted (at most one per address of the pools).

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;

use kindling_dhcp::full::leases::format_mac;
use kindling_dhcp::{Claim, SharedLeases};
use kindling_model::store::{Expect, Remote};

/// The directory of the keys, below the store's prefix.
pub const DIR: &str = "dhcp-leases";

/// Tries of one claim when other servers keep writing the same key.
const TRIES: usize = 4;

/// [`SharedLeases`] over the fleet's store.
pub struct FleetLeases {
    remote: Arc<dyn Remote>,
    /// Who wrote a claim (for people reading the store): no spaces, one line.
    server: String,
}

impl FleetLeases {
    pub fn new(remote: Arc<dyn Remote>, server: &str) -> FleetLeases {
        let server = server
            .chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        FleetLeases { remote, server }
    }

    fn line(&self, mac: [u8; 6], expires: u64) -> String {
        format!("{} {expires} {}\n", format_mac(&mac), self.server)
    }
}

fn key(ip: Ipv4Addr) -> String {
    format!("{DIR}/{ip}")
}

/// The holder and end of a claim (`None`: not a claim this version wrote).
fn parse(bytes: &[u8]) -> Option<([u8; 6], u64)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut words = text.split_whitespace();
    let mac = kindling_model::MacAddr::parse(words.next()?).ok()?;
    let expires = words.next()?.parse().ok()?;
    Some((mac.0, expires))
}

impl SharedLeases for FleetLeases {
    fn claim(&self, ip: Ipv4Addr, mac: [u8; 6], expires: u64, now: u64) -> io::Result<Claim> {
        let key = key(ip);
        let line = self.line(mac, expires);
        for _ in 0..TRIES {
            let expect = match self.remote.get(&key)? {
                None => Expect::Absent,
                Some((bytes, tag)) => match parse(&bytes) {
                    Some((holder, until)) if holder != mac && until > now => {
                        return Ok(Claim::Held {
                            mac: holder,
                            expires: until,
                        });
                    }
                    // Ours, over, or unreadable (overwritten: a claim is only ever ours).
                    _ => Expect::Tag(tag),
                },
            };
            if self.remote.put(&key, line.as_bytes(), &expect)?.is_ok() {
                return Ok(Claim::Granted);
            }
        }
        Err(io::Error::other(format!(
            "the claim on {ip} changed under {TRIES} tries"
        )))
    }

    fn release(&self, ip: Ipv4Addr, mac: [u8; 6], now: u64) -> io::Result<()> {
        let key = key(ip);
        let Some((bytes, tag)) = self.remote.get(&key)? else {
            return Ok(());
        };
        match parse(&bytes) {
            Some((holder, until)) if holder == mac && until > now => {
                // Lost to a newer write: then it is not this client's claim any more.
                let _ = self
                    .remote
                    .put(&key, self.line(mac, now).as_bytes(), &Expect::Tag(tag))?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_model::store::Mismatch;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Key -> (value, revision).
    type Kv = BTreeMap<String, (Vec<u8>, u64)>;

    /// A store in memory with etcd's compare-and-swap (tags are revisions).
    #[derive(Debug, Default)]
    struct Mem {
        /// The last revision and the keys.
        kv: Mutex<(u64, Kv)>,
    }

    impl Remote for Mem {
        fn get(&self, key: &str) -> io::Result<Option<(Vec<u8>, String)>> {
            let g = self.kv.lock().unwrap();
            Ok(g.1.get(key).map(|(b, r)| (b.clone(), r.to_string())))
        }
        fn put(
            &self,
            key: &str,
            bytes: &[u8],
            expect: &Expect,
        ) -> io::Result<Result<(String, bool), Mismatch>> {
            let mut g = self.kv.lock().unwrap();
            let now = g.1.get(key).map(|(_, r)| r.to_string());
            let holds = match expect {
                Expect::Anything => true,
                Expect::Tag(t) => now.as_deref() == Some(t.as_str()),
                Expect::Present => now.is_some(),
                Expect::Absent => now.is_none(),
            };
            if !holds {
                return Ok(Err(Mismatch(now)));
            }
            g.0 += 1;
            let rev = g.0;
            let new = g.1.insert(key.into(), (bytes.to_vec(), rev)).is_none();
            Ok(Ok((rev.to_string(), new)))
        }
        fn delete(&self, _: &str, _: &Expect) -> io::Result<Result<bool, Mismatch>> {
            unreachable!("leases are never deleted")
        }
        fn list(&self, _: &str) -> io::Result<Vec<String>> {
            Ok(vec![])
        }
    }

    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    #[test]
    fn one_holder_per_address_until_its_lease_ends() {
        let mem = Arc::new(Mem::default());
        let s1 = FleetLeases::new(mem.clone(), "one host@0.0.0.0:8080");
        let s2 = FleetLeases::new(mem.clone(), "two");
        assert_eq!(s1.claim(IP, A, 1000, 10).unwrap(), Claim::Granted);
        let (bytes, _) = mem.get("dhcp-leases/10.0.0.5").unwrap().unwrap();
        assert_eq!(bytes, b"02:00:00:00:00:0a 1000 one_host@0.0.0.0:8080\n");
        // Another server's client: held, with the holder and its end.
        assert_eq!(
            s2.claim(IP, B, 2000, 20).unwrap(),
            Claim::Held {
                mac: A,
                expires: 1000
            }
        );
        // The same client through another server (rebinding): granted, renewed.
        assert_eq!(s2.claim(IP, A, 3000, 30).unwrap(), Claim::Granted);
        // After the lease ends anyone may take it over.
        assert_eq!(s1.claim(IP, B, 5000, 3000).unwrap(), Claim::Granted);
        assert_eq!(
            parse(&mem.get("dhcp-leases/10.0.0.5").unwrap().unwrap().0),
            Some((B, 5000))
        );
    }

    #[test]
    fn a_release_ends_the_claim_of_its_client_only() {
        let mem = Arc::new(Mem::default());
        let s = FleetLeases::new(mem.clone(), "s");
        s.claim(IP, A, 1000, 10).unwrap();
        s.release(IP, B, 20).unwrap();
        assert!(matches!(
            s.claim(IP, B, 1000, 21).unwrap(),
            Claim::Held { .. }
        ));
        s.release(IP, A, 30).unwrap();
        assert_eq!(s.claim(IP, B, 1000, 31).unwrap(), Claim::Granted);
        // An unreadable value is taken over, never trusted.
        mem.put("dhcp-leases/10.0.0.6", b"garbage", &Expect::Anything)
            .unwrap()
            .unwrap();
        let other = Ipv4Addr::new(10, 0, 0, 6);
        assert_eq!(s.claim(other, A, 1000, 40).unwrap(), Claim::Granted);
    }

    #[test]
    fn concurrent_claims_on_one_address_have_one_winner() {
        let mem = Arc::new(Mem::default());
        let servers: Vec<_> = (0..8)
            .map(|i| Arc::new(FleetLeases::new(mem.clone(), &format!("s{i}"))))
            .collect();
        let winners: Vec<bool> = std::thread::scope(|sc| {
            let hs: Vec<_> = servers
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    sc.spawn(move || {
                        let mac = [2, 0, 0, 0, 1, i as u8];
                        s.claim(IP, mac, 1000, 10).unwrap() == Claim::Granted
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(winners.iter().filter(|w| **w).count(), 1, "{winners:?}");
    }
}
