//! Unit tests of the lease table.
use std::collections::HashSet;

use super::*;
use LeaseState::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn mac(n: u32) -> Mac {
    let [a, b, c, d] = n.to_be_bytes();
    [2, 0, a, b, c, d]
}

fn spec(net: &str, prefix: u8, ranges: &[(&str, &str)]) -> PoolSpec {
    PoolSpec {
        network: ip(net),
        prefix,
        ranges: ranges.iter().map(|(a, b)| (ip(a), ip(b))).collect(),
        reservations: vec![],
        excluded: vec![],
    }
}

/// The internal invariants, and "no address active for two MACs".
fn check(t: &LeaseTable, now: u64) {
    assert_eq!(t.holders.len(), t.leases.len());
    let mut active = HashSet::new();
    for (&(m, s), l) in &t.leases {
        let a = u32::from(l.ip);
        assert_eq!((l.mac, l.subnet), (m, s));
        assert_eq!(t.holders.get(&a), Some(&(m, s)));
        assert!(matches!(l.state, Offered | Bound | Released));
        let p = &t.pools[s];
        assert!(p.is_dynamic(a) || p.reserved_by_ip.get(&a) == Some(&m));
        assert!(!t.holds.contains_key(&a));
        assert!(!l.is_active(now) || active.insert(l.ip), "{} twice", l.ip);
    }
    for p in &t.pools {
        assert_eq!(p.touched.len(), p.by_key.len());
        for (&a, &k) in &p.touched {
            assert!(p.by_key.contains(&(k, a)) && p.is_dynamic(a));
            if let Some(l) = t.holder(a) {
                assert_eq!(k, l.expires);
            } else if let Some(h) = t.holds.get(&a) {
                assert_eq!(k, h.expires);
            }
        }
    }
}

fn lab() -> LeaseTable {
    let mut s = spec("10.0.0.0", 24, &[("10.0.0.100", "10.0.0.255")]);
    s.reservations = vec![(mac(1), ip("10.0.0.50")), (mac(2), ip("10.0.0.150"))];
    s.excluded = vec![ip("10.0.0.100"), ip("192.168.0.1")];
    LeaseTable::new(&[s]).unwrap()
}

#[test]
fn reservation_wins_and_binds() {
    let mut t = lab();
    assert_eq!(
        t.offer(0, mac(1), Some(ip("10.0.0.120")), 0, 30),
        Ok(ip("10.0.0.50"))
    );
    let l = t
        .request(0, mac(1), ip("10.0.0.50"), 1, 3600, Some("web1"))
        .unwrap();
    assert_eq!(
        (l.state, l.expires, l.hostname.as_deref()),
        (Bound, 3601, Some("web1"))
    );
    assert_eq!(
        t.request(0, mac(1), ip("10.0.0.120"), 2, 60, None),
        Err(Nak::HasReservation)
    );
    assert_eq!(
        t.request(0, mac(9), ip("10.0.0.50"), 2, 60, None),
        Err(Nak::ReservedForOther)
    );
    assert_eq!(
        t.request(0, mac(9), ip("10.0.0.150"), 2, 60, None),
        Err(Nak::ReservedForOther)
    );
    // Others never get reserved (.150), excluded (.100) or network/broadcast addresses.
    for n in 10..163 {
        // 156 range addresses, less .100, .150 and .255
        let got = t.offer(0, mac(n), Some(ip("10.0.0.150")), 3, 30);
        assert!(got.is_ok_and(|a| a != ip("10.0.0.150") && a != ip("10.0.0.100")));
    }
    assert_eq!(
        t.offer(0, mac(500), Some(ip("10.0.0.255")), 3, 30),
        Err(NoAddress::Exhausted)
    );
    check(&t, 3);
}

#[test]
fn same_mac_gets_same_address_after_release_and_expiry() {
    let mut t = lab();
    let a = t.offer(0, mac(7), None, 0, 30).unwrap();
    assert_eq!(a, ip("10.0.0.101"));
    t.request(0, mac(7), a, 0, 100, None).unwrap();
    assert!(t.release(mac(7), a, 50));
    assert!(!t.release(mac(7), a, 51), "released twice");
    assert_eq!(
        t.holder_of(a).map(|l| (l.state, l.expires)),
        Some((Released, 50))
    );
    assert_eq!(
        t.offer(0, mac(8), None, 60, 30),
        Ok(ip("10.0.0.102")),
        "fresh first"
    );
    assert_eq!(t.offer(0, mac(7), None, 60, 30), Ok(a));
    t.request(0, mac(7), a, 60, 100, None).unwrap();
    assert_eq!(t.offer(0, mac(7), None, 10_000, 30), Ok(a), "after expiry");
    assert_eq!(
        t.request(0, mac(7), a, 10_000, 100, None).map(|l| l.ip),
        Ok(a)
    );
    check(&t, 10_000);
}

#[test]
fn requested_address_and_nak_reasons() {
    let mut t = lab();
    assert_eq!(
        t.offer(0, mac(10), Some(ip("10.0.0.200")), 0, 30),
        Ok(ip("10.0.0.200"))
    );
    let other = t.offer(0, mac(11), Some(ip("10.0.0.200")), 1, 30).unwrap();
    assert_ne!(other, ip("10.0.0.200"), "pending offer is taken");
    for bad in [
        "0.0.0.0",
        "255.255.255.255",
        "10.0.0.0",
        "10.0.0.20",
        "10.0.0.100",
    ] {
        assert_eq!(
            t.offer(0, mac(12), Some(ip(bad)), 1, 30)
                .map(|a| a == ip(bad)),
            Ok(false)
        );
        t.forget(mac(12), 1);
    }
    let req = |t: &mut LeaseTable, m, a| t.request(0, mac(m), ip(a), 2, 60, None).err();
    assert_eq!(req(&mut t, 11, "10.0.0.200"), Some(Nak::TakenByOther));
    assert_eq!(req(&mut t, 11, "192.168.0.1"), Some(Nak::NotInSubnet));
    assert_eq!(req(&mut t, 11, "10.0.0.20"), Some(Nak::NotInPool));
    assert_eq!(req(&mut t, 11, "10.0.0.100"), Some(Nak::NotInPool));
    assert_eq!(req(&mut t, 11, "10.0.0.255"), Some(Nak::NotInPool));
    assert_eq!(req(&mut t, 11, "10.0.0.150"), Some(Nak::ReservedForOther));
    assert_eq!(
        t.request(5, mac(11), ip("10.0.0.200"), 2, 60, None),
        Err(Nak::NotInSubnet)
    );
    assert!(t.decline(mac(10), ip("10.0.0.200"), 3, 600));
    assert_eq!(req(&mut t, 11, "10.0.0.200"), Some(Nak::Declined));
    assert_eq!(t.lease_of(0, mac(10)), None);
    // INIT-REBOOT of a free address not offered before: allowed; previous one freed.
    assert_eq!(req(&mut t, 11, "10.0.0.210"), None);
    assert_eq!(t.holder_of(other), None);
    let labels: Vec<_> = [Nak::NotInSubnet, Nak::TakenByOther, Nak::ReservedForOther]
        .map(Nak::label)
        .into();
    assert_eq!(
        labels,
        ["not_in_subnet", "taken_by_other", "reserved_for_other"]
    );
    assert_eq!(Nak::HasReservation.label(), "client_has_reservation");
    check(&t, 3);
}

#[test]
fn exhaustion_then_longest_expired_is_reused() {
    let mut t = LeaseTable::new(&[spec("10.0.0.0", 29, &[("10.0.0.1", "10.0.0.3")])]).unwrap();
    for (n, secs) in [(1, 300), (2, 100), (3, 200)] {
        let a = t.offer(0, mac(n), None, 0, 30).unwrap();
        t.request(0, mac(n), a, 0, secs, None).unwrap();
    }
    assert_eq!(t.free_count(0, 0), 0);
    assert_eq!(t.offer(0, mac(4), None, 0, 30), Err(NoAddress::Exhausted));
    assert_eq!(t.free_count(0, 250), 2);
    assert_eq!(t.offer(0, mac(4), None, 250, 30), Ok(ip("10.0.0.2")));
    assert_eq!(t.offer(0, mac(5), None, 250, 30), Ok(ip("10.0.0.3")));
    assert_eq!(t.offer(0, mac(6), None, 250, 30), Err(NoAddress::Exhausted));
    assert_eq!(
        t.lease_of(0, mac(2)),
        None,
        "mac 2 lost its expired address"
    );
    // .2 and .3 ended at 280, .1 at 300: the longest-expired goes first.
    assert_eq!(t.offer(0, mac(2), None, 400, 30), Ok(ip("10.0.0.2")));
    assert_eq!(
        t.offer(9, mac(2), None, 400, 30),
        Err(NoAddress::UnknownSubnet)
    );
    check(&t, 400);
}

#[test]
fn decline_and_conflict_holds() {
    let mut t = LeaseTable::new(&[spec("10.0.0.0", 29, &[("10.0.0.1", "10.0.0.2")])]).unwrap();
    let a = t.offer(0, mac(1), None, 0, 30).unwrap();
    assert!(!t.decline(mac(2), a, 1, 100), "only the holder declines");
    assert!(t.decline(mac(1), a, 1, 100));
    let b = t.offer(0, mac(1), None, 2, 30).unwrap();
    assert_ne!(a, b);
    assert!(t.conflict(b, 3, 100), "the probe answered");
    assert_eq!(t.offer(0, mac(1), None, 4, 30), Err(NoAddress::Exhausted));
    assert_eq!(t.offer(0, mac(1), None, 101, 30), Ok(a), "hold over");
    t.request(0, mac(1), a, 101, 600, None).unwrap();
    assert!(!t.conflict(a, 102, 100), "an active binding answers pings");
    assert!(!t.conflict(ip("10.9.9.9"), 102, 100));
    let ch = t.drain_changes();
    assert_eq!(ch.iter().filter(|l| l.state == Declined).count(), 2);
    assert!(
        ch.iter()
            .any(|l| l.state == Declined && l.mac == [0; 6] && l.ip == b)
    );
    check(&t, 102);
}

#[test]
fn an_address_held_elsewhere_replaces_even_a_fresh_binding() {
    let mut t = LeaseTable::new(&[spec("10.0.0.0", 29, &[("10.0.0.1", "10.0.0.2")])]).unwrap();
    let a = t.offer(0, mac(1), None, 0, 30).unwrap();
    t.request(0, mac(1), a, 1, 600, None).unwrap();
    // Another server's claim on `a` won: the binding just made is dropped, `a` held.
    assert!(t.held_elsewhere(a, 2, 500));
    assert!(t.holder_of(a).is_none(), "no local lease on it any more");
    assert_eq!(
        t.hold_of(a).map(|h| (h.state, h.mac, h.expires)),
        Some((Declined, [0; 6], 500))
    );
    check(&t, 2);
    // The client that lost is offered the other address; `a` comes back after 500.
    let b = t.offer(0, mac(1), None, 3, 30).unwrap();
    assert_ne!(a, b);
    assert_eq!(
        t.request(0, mac(2), a, 4, 600, None).map(|l| l.ip).ok(),
        None
    );
    assert!(
        !t.held_elsewhere(a, 600, 500),
        "a claim already over changes nothing"
    );
    assert!(!t.held_elsewhere(ip("10.9.9.9"), 2, 500), "not in a subnet");
    assert!(
        t.drain_changes()
            .iter()
            .any(|l| l.ip == a && l.state == Declined)
    );
    check(&t, 4);
}

#[test]
fn restore_replays_changes_and_drops_what_config_forbids() {
    let mut t = lab();
    let a = t.offer(0, mac(20), None, 0, 30).unwrap();
    t.request(0, mac(20), a, 0, 600, Some("h")).unwrap();
    let b = t.offer(0, mac(21), None, 0, 30).unwrap();
    assert!(t.decline(mac(21), b, 1, 600));
    t.offer(0, mac(22), None, 1, 30).unwrap();
    t.request(0, mac(22), ip("10.0.0.240"), 1, 600, None)
        .unwrap(); // moves: tombstone
    let mut changes = t.drain_changes();
    assert!(changes.iter().any(|l| l.state == Free && l.mac == mac(22)));
    let mut u = lab();
    let r = u.restore(changes.clone(), 2);
    assert_eq!(r.dropped, 0);
    let sorted = |t: &LeaseTable| {
        let mut v: Vec<_> = t.records(2).cloned().collect();
        v.sort_by_key(|l| (l.ip, l.mac));
        v
    };
    assert_eq!(sorted(&t), sorted(&u));
    assert!(u.drain_changes().is_empty());
    check(&u, 2);
    // Outside every subnet, reserved for another MAC, excluded: dropped.
    for (m, a) in [(30, "10.1.0.5"), (31, "10.0.0.50"), (32, "10.0.0.100")] {
        changes.push(Lease {
            mac: mac(m),
            ip: ip(a),
            subnet: 7,
            state: Bound,
            expires: 9,
            hostname: None,
        });
    }
    let r = lab().restore(changes, 2);
    assert_eq!(r.dropped, 3);
}

/// A tiny deterministic PRNG (xorshift64*).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % n
    }
}

#[test]
fn randomized_churn_never_gives_one_address_to_two_macs() {
    let mut s = spec(
        "10.0.0.0",
        24,
        &[("10.0.0.10", "10.0.0.49"), ("10.0.0.200", "10.0.0.255")],
    );
    s.reservations = vec![(mac(3), ip("10.0.0.5")), (mac(4), ip("10.0.0.20"))];
    s.excluded = vec![ip("10.0.0.11")];
    let mut t = LeaseTable::new(std::slice::from_ref(&s)).unwrap();
    let mut twin = LeaseTable::new(&[s]).unwrap();
    let (mut rng, mut now) = (Rng(0x9e37_79b9_7f4a_7c15), 1_000u64);
    for step in 0..20_000 {
        let m = mac(rng.below(1_000) as u32);
        let any = Ipv4Addr::from(0x0a00_0000 | rng.below(300) as u32);
        match rng.below(10) {
            0..=3 => match t.offer(0, m, rng.below(3).eq(&0).then_some(any), now, 10) {
                Ok(a) => {
                    assert!(
                        t.lease_of(0, m)
                            .is_some_and(|l| l.ip == a && l.is_active(now))
                    );
                    if rng.below(2) == 0 {
                        assert_eq!(t.request(0, m, a, now, 60, None).map(|l| l.ip), Ok(a));
                    }
                }
                Err(e) => assert_eq!((e, t.free_count(0, now)), (NoAddress::Exhausted, 0)),
            },
            4 | 5 => {
                if let Ok(l) = t.request(0, m, any, now, 60, Some("x")) {
                    assert_eq!((l.ip, l.state), (any, Bound));
                }
            }
            6 => {
                let held = t.lease_of(0, m).map_or(any, |l| l.ip);
                t.release(m, held, now);
            }
            7 => {
                let held = t.lease_of(0, m).map_or(any, |l| l.ip);
                t.decline(m, held, now, 30);
            }
            8 => {
                t.conflict(any, now, 20);
            }
            _ => now += rng.below(8),
        }
        // After each step: no address active for two MACs; every 16: all invariants.
        let mut active = HashSet::new();
        assert!(
            t.iter()
                .filter(|l| l.is_active(now))
                .all(|l| active.insert(l.ip))
        );
        if step % 16 == 0 {
            check(&t, now);
        }
        twin.restore(t.drain_changes(), now);
        if step % 1_000 == 0 {
            let mut a: Vec<_> = t.records(now).collect();
            let mut b: Vec<_> = twin.records(now).collect();
            a.sort_by_key(|l| (l.ip, l.state.label()));
            b.sort_by_key(|l| (l.ip, l.state.label()));
            assert_eq!(a, b, "the change stream rebuilds the table");
        }
    }
}

#[test]
fn slash_16_with_ten_thousand_clients() {
    let s = spec("10.1.0.0", 16, &[("10.1.0.10", "10.1.255.250")]);
    let mut t = LeaseTable::new(&[s]).unwrap();
    let total = t.free_count(0, 0);
    assert_eq!(total, 65_521);
    let mut seen = HashSet::new();
    for n in 0..10_000 {
        let a = t.offer(0, mac(n), None, 0, 30).unwrap();
        t.request(0, mac(n), a, 1, 3600, None).unwrap();
        assert!(seen.insert(a));
    }
    assert_eq!(t.free_count(0, 2), total - 10_000);
    assert_eq!(t.drain_changes().len(), 20_000);
}

#[test]
fn spec_validation() {
    let bad = |s: PoolSpec| LeaseTable::new(&[s]).unwrap_err().problem;
    let base = || spec("10.0.0.0", 24, &[("10.0.0.10", "10.0.0.20")]);
    let mut s = base();
    s.prefix = 31;
    assert_eq!(bad(s), SpecProblem::BadPrefix);
    let s = spec("10.0.0.1", 24, &[]);
    assert_eq!(bad(s), SpecProblem::HostBits(ip("10.0.0.0")));
    let s = spec("10.0.0.0", 24, &[("10.0.0.9", "10.0.0.2")]);
    assert!(matches!(bad(s), SpecProblem::RangeReversed(..)));
    let s = spec("10.0.0.0", 24, &[("10.0.0.9", "10.0.1.2")]);
    assert!(matches!(bad(s), SpecProblem::RangeOutsideNetwork(..)));
    let s = spec(
        "10.0.0.0",
        24,
        &[("10.0.0.30", "10.0.0.40"), ("10.0.0.9", "10.0.0.30")],
    );
    assert!(matches!(bad(s), SpecProblem::RangesOverlap(..)));
    let mut s = base();
    s.reservations = vec![(mac(1), ip("10.0.1.1"))];
    assert!(matches!(bad(s), SpecProblem::ReservationOutsideNetwork(..)));
    let mut s = base();
    s.reservations = vec![(mac(1), ip("10.0.0.255"))];
    assert!(matches!(bad(s), SpecProblem::ReservationUnusable(..)));
    let mut s = base();
    s.reservations = vec![(mac(1), ip("10.0.0.5")), (mac(2), ip("10.0.0.5"))];
    assert!(matches!(bad(s), SpecProblem::DuplicateReservationIp(..)));
    let mut s = base();
    s.reservations = vec![(mac(1), ip("10.0.0.5")), (mac(1), ip("10.0.0.6"))];
    assert!(matches!(bad(s), SpecProblem::DuplicateReservationMac(..)));
    let mut s = base();
    (s.reservations, s.excluded) = (vec![(mac(1), ip("10.0.0.5"))], vec![ip("10.0.0.5")]);
    assert!(matches!(bad(s), SpecProblem::ReservationExcluded(..)));
    assert_eq!(
        bad(spec("10.0.0.0", 30, &[("10.0.0.0", "10.0.0.0")])),
        SpecProblem::EmptyPool
    );
    let e = LeaseTable::new(&[
        base(),
        spec("10.0.0.128", 25, &[("10.0.0.200", "10.0.0.201")]),
    ]);
    let e = e.unwrap_err();
    assert_eq!(
        e.to_string(),
        "subnet 1 (10.0.0.128/25): it overlaps subnet 0 (10.0.0.0/24)"
    );
}

#[test]
fn helpers_are_panic_free() {
    assert_eq!(
        parse_mac("AA:bb:0c:dd:ee:ff"),
        Some([0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0xff])
    );
    for bad in [
        "",
        "aa:bb",
        "aa:bb:cc:dd:ee:ff:00",
        "+a:bb:cc:dd:ee:ff",
        "aaa:b:cc:dd:ee:ff",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
    assert_eq!(format_mac(&mac(0x0102_0304)), "02:00:01:02:03:04");
    let long = "é".repeat(40);
    assert_eq!(cap_hostname(&long).map(|h| h.len()), Some(62));
    assert_eq!(cap_hostname(""), None);
    assert_eq!(
        LeaseState::ALL.map(|s| LeaseState::from_label(s.label())),
        LeaseState::ALL.map(Some)
    );
}
