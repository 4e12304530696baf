//! Where a new snapshot of the data goes, from the directory's reload loop or the etcd
//! mirror alike: the boot listeners (swapped in), ops (the profiles' asset paths, the
//! problems, the reload count) and the DHCP server (what the groups tell it).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use kindling_dhcp::LeasesHandle;
use kindling_dhcp::config::Reservation;
use kindling_model::{MacAddr, Snapshot};

/// Hands each new snapshot to those who serve from it.
pub struct Publisher {
    pub shared: Arc<kindling_http::Shared>,
    pub ops: Arc<kindling_ops::Ops>,
    /// The DHCP server, when it runs.
    pub dhcp: Option<LeasesHandle>,
}

impl Publisher {
    /// Swaps `snap` in; when groups or profiles changed (`changed_files`), ops and the
    /// DHCP server learn from it first (a snapshot of templates alone is only swapped).
    /// Answers the snapshot now in force, to be logged: a log line saying so is only
    /// written once everyone serves from it.
    pub fn publish(&self, snap: Snapshot) -> Arc<Snapshot> {
        if snap.changed_files > 0 {
            self.ops.note_snapshot(&snap);
            if let Some(dhcp) = &self.dhcp {
                hand_over(&snap, dhcp);
            }
        }
        let snap = Arc::new(snap);
        self.shared.snapshot.store(snap.clone());
        snap
    }
}

/// Tells the DHCP server what `snap`'s groups say: full mode's reservations and the
/// machines' Secure Boot settings (each replacing the previous set).
pub fn hand_over(snap: &Snapshot, dhcp: &LeasesHandle) {
    dhcp.set_group_reservations(group_reservations(snap));
    dhcp.set_group_secure_boot(group_secure_boot(snap));
}

/// The machines whose group says `secure_boot`, by MAC (groups whose selector names a
/// `mac`; DHCP knows no other label). When a machine's groups disagree, `true` wins: a
/// machine with Secure Boot on cannot run iPXE at all.
fn group_secure_boot(snap: &Snapshot) -> HashMap<[u8; 6], bool> {
    let mut out = HashMap::new();
    for g in snap.index.groups() {
        let (Some(on), Some(mac)) = (
            g.secure_boot,
            g.selector.get("mac").and_then(|m| MacAddr::parse(m).ok()),
        ) else {
            continue;
        };
        *out.entry(mac.0).or_insert(on) |= on;
    }
    out
}

/// Full DHCP reservations from the groups: a group whose selector names one `mac` and
/// whose metadata has an IPv4 `ip` (and optionally a `hostname`, kept when it is a valid
/// host label) fixes that machine's address, as matchbox users already write it for their
/// templates.
fn group_reservations(snap: &Snapshot) -> Vec<Reservation> {
    let mut out = Vec::new();
    for g in snap.index.groups() {
        let Some(mac) = g.selector.get("mac").and_then(|m| MacAddr::parse(m).ok()) else {
            continue;
        };
        let meta = g.metadata();
        let text = |k: &str| meta.get(k).and_then(|v| v.as_str());
        let Some(ip) = text("ip").and_then(|s| s.parse::<Ipv4Addr>().ok()) else {
            continue;
        };
        let hostname = text("hostname")
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 63
                    && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .map(str::to_string);
        out.push(Reservation {
            mac: mac.0,
            ip,
            hostname,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_model::DataDir;
    use kindling_model::store::Loader;

    fn snapshot(groups: &[&str]) -> Snapshot {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("groups")).unwrap();
        for (i, g) in groups.iter().enumerate() {
            std::fs::write(dir.path().join(format!("groups/g{i}.json")), g).unwrap();
        }
        Loader::new(DataDir::new(dir.path())).load()
    }

    #[test]
    fn groups_with_a_mac_give_reservations_and_secure_boot() {
        let s = snapshot(&[
            r#"{"id":"a","profile":"p","selector":{"mac":"52:54:00:00:00:01"},"metadata":{"ip":"10.0.0.7","hostname":"web-1"},"secure_boot":true}"#,
            // Same machine, another group saying false: true wins.
            r#"{"id":"b","profile":"p","selector":{"mac":"52:54:00:00:00:01","os":"x"},"secure_boot":false}"#,
            // A bad host name is left out, the address kept.
            r#"{"id":"c","profile":"p","selector":{"mac":"52:54:00:00:00:02"},"metadata":{"ip":"10.0.0.8","hostname":"bad name"},"secure_boot":false}"#,
            // No MAC in the selector, or no IPv4 address: nothing for DHCP.
            r#"{"id":"d","profile":"p","selector":{"os":"x"},"metadata":{"ip":"10.0.0.9"},"secure_boot":true}"#,
            r#"{"id":"e","profile":"p","selector":{"mac":"52:54:00:00:00:03"},"metadata":{"ip":"fe80::1"}}"#,
        ]);
        let mut res = group_reservations(&s);
        res.sort_by_key(|r| r.ip);
        let m = |n: u8| [0x52, 0x54, 0, 0, 0, n];
        assert_eq!(
            res,
            vec![
                Reservation {
                    mac: m(1),
                    ip: Ipv4Addr::new(10, 0, 0, 7),
                    hostname: Some("web-1".into()),
                },
                Reservation {
                    mac: m(2),
                    ip: Ipv4Addr::new(10, 0, 0, 8),
                    hostname: None,
                },
            ]
        );
        assert_eq!(
            group_secure_boot(&s),
            HashMap::from([(m(1), true), (m(2), false)])
        );
    }
}
