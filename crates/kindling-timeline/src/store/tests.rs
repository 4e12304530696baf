//! Tests of what the store keeps: typed events read back from their JSON unchanged, the
//! one test of sameness behind repeats, and a machine's facts read from its events.

use super::machine::{BootRec, Facts, MachineRec};
use crate::event::{Chosen, Detail, Dhcp, DhcpStep, Endpoint, Event, Name, Reason, Stage, Tftp};
use kindling_dhcp::wire::MessageType;
use kindling_dhcp::{Firmware, IgnoreReason};

fn dhcp(step: DhcpStep, fw: Firmware) -> Event {
    let mut d = Dhcp::new(step);
    d.message = Some(MessageType::Discover.into());
    d.firmware = Some(fw);
    d.port = if step == DhcpStep::Seen { 67 } else { 0 };
    d.arch = Some(7);
    d.iface = Some(Name::new("kbr0"));
    d.vendor_class = Some(Name::of("PXEClient:Arch:00007:UNDI:003016", Chosen::Client));
    let mut e = Event::new(1_795_000_000_000, Detail::Dhcp(d));
    e.mac = kindling_model::MacAddr::parse("52:54:00:00:27:0f").ok();
    e
}

fn http(path: &str, status: u16) -> Event {
    let mut e = Event::http_request(1_795_000_000_123, "GET", path, Endpoint::Ipxe, status);
    e.mac = kindling_model::MacAddr::parse("52:54:00:00:27:0f").ok();
    e.ip = "127.0.0.1".parse().ok();
    e.stage = Some(Stage::Script);
    if let Some(h) = e.http_mut() {
        h.bytes = 600;
        h.duration_ms = 0.123_456_789;
        h.group = Some(Name::new("node-42"));
        h.profile = Some(Name::new("profile-2"));
    }
    e
}

fn tftp(write: bool, probe: bool) -> Event {
    let mut e = Event::new(
        5,
        Detail::Tftp(Box::new(Tftp {
            file: "x".repeat(40).into(),
            write,
            probe,
            bytes: u64::MAX,
            duration_ms: (!write).then_some(-0.0),
        })),
    );
    e.ip = "fe80::1".parse().ok();
    e
}

fn every_kind() -> Vec<Event> {
    let mut answered = dhcp(DhcpStep::Answered, Firmware::UefiPxe);
    if let Some(d) = answered.dhcp_mut() {
        d.message = Some(MessageType::Offer.into());
        d.file = Some(Name::new("ipxe.efi"));
        d.user_class = Some(Name::of("iPXE,x", Chosen::Client));
    }
    answered.reason = Some(Reason::Rule(Name::new("uefi")));
    let mut to_4011 = answered.clone();
    if let Some(d) = to_4011.dhcp_mut() {
        d.file = None;
        d.message = Some(MessageType::Other(0).into());
    }
    let mut ignored = dhcp(DhcpStep::Ignored, Firmware::BiosPxe);
    ignored.ok = false;
    ignored.reason = Some(Reason::Ignored(IgnoreReason::NoArch));
    let mut packet = dhcp(DhcpStep::Seen, Firmware::Ipxe);
    if let Some(d) = packet.dhcp_mut() {
        d.message = None;
        d.port = 4011;
    }
    let mut failed = http("/ipxe?mac=52-54-00-00-27-0f&x=ü\"\\", 404);
    failed.reason = Some(Reason::text(&"r".repeat(200)));
    failed.repeats = 3;
    failed.last_ts = 1_795_000_009_000;
    let mut refused = tftp(true, false);
    refused.ok = false;
    refused.reason = Some(Reason::text("write requests are refused"));
    vec![
        dhcp(DhcpStep::Seen, Firmware::UefiHttp),
        answered,
        to_4011,
        ignored,
        packet,
        http("/ipxe", 200),
        failed,
        tftp(false, true),
        refused,
    ]
}

#[test]
fn every_event_reads_back_from_its_json_unchanged() {
    for e in every_kind() {
        let json = serde_json::to_string(&e).unwrap_or_default();
        let back: Event = serde_json::from_str(&json).unwrap_or_else(|err| panic!("{err}: {json}"));
        assert_eq!(back, e, "{json}");
        assert_eq!(serde_json::to_string(&back).unwrap_or_default(), json);
    }
    let lines: Vec<String> = every_kind().iter().map(|e| e.what().to_string()).collect();
    assert_eq!(
        lines,
        [
            "DISCOVER on port 67",
            "OFFER ipxe.efi",
            "OTHER (to port 4011)",
            "DISCOVER not answered",
            "PACKET on port 4011",
            "GET /ipxe",
            "GET /ipxe?mac=52-54-00-00-27-0f&x=ü\"\\",
            "RRQ xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx (size probe)",
            "WRQ xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ]
    );
    // The journal's JSON, field for field.
    assert_eq!(
        serde_json::to_string(&every_kind()[1]).unwrap_or_default(),
        "{\"ts\":1795000000000,\"kind\":\"dhcp_answered\",\"mac\":\"52:54:00:00:27:0f\",\
         \"stage\":\"dhcp\",\"ok\":true,\"what\":\"OFFER ipxe.efi\",\"reason\":\"rule uefi\",\
         \"path\":\"ipxe.efi\",\"iface\":\"kbr0\",\"arch\":\"7 (efi-x64)\",\
         \"firmware\":\"uefi_pxe\",\"message\":\"offer\",\
         \"vendor_class\":\"PXEClient:Arch:00007:UNDI:003016\",\"user_class\":\"iPXE,x\"}"
    );
}

#[test]
fn a_dhcp_event_is_held_inline_in_a_small_record() {
    // Two per machine in a proxy-DHCP storm: see kindling-ops' examples/memory_per_machine.rs.
    assert!(
        std::mem::size_of::<Event>() <= 144,
        "{}",
        std::mem::size_of::<Event>()
    );
}

#[test]
fn sameness_ignores_times_sizes_and_addresses_only() {
    let base = every_kind();
    for a in &base {
        let mut b = a.clone();
        b.ts += 5;
        b.seq += 1;
        b.ip = "10.0.0.1".parse().ok();
        b.repeats = 9;
        if let Some(h) = b.http_mut() {
            h.bytes = 1;
            h.duration_ms = 7.0;
        }
        if let Some(t) = b.tftp_mut() {
            t.bytes = 1;
        }
        assert!(a.same_as(&b), "{a:?}");
        // Any other difference is another event.
        let mut c = a.clone();
        c.ok = !c.ok;
        assert!(!a.same_as(&c));
        let mut c = a.clone();
        c.stage = None;
        assert!(!a.same_as(&c));
        let mut c = a.clone();
        c.reason = Some(Reason::text("other"));
        assert!(!a.same_as(&c));
    }
    // Each pair of different events of the list differs.
    for (i, a) in base.iter().enumerate() {
        for (j, b) in base.iter().enumerate() {
            assert_eq!(a.same_as(b), i == j, "{i} {j}");
        }
    }
    let a = http("/ipxe", 200);
    let mut b = a.clone();
    if let Some(h) = b.http_mut() {
        h.endpoint = Some(Endpoint::BootIpxe);
    }
    assert!(!a.same_as(&b));
}

#[test]
fn facts_are_what_the_newest_events_say() {
    let mut m = MachineRec::new(1);
    assert_eq!(m.facts(), Facts::default());
    let mut boot = BootRec::new(1);
    boot.events.insert(&dhcp(DhcpStep::Seen, Firmware::UefiPxe));
    let mut chained = dhcp(DhcpStep::Seen, Firmware::Ipxe);
    if let Some(d) = chained.dhcp_mut() {
        d.arch = Some(9);
        d.user_class = Some(Name::new("iPXE"));
    }
    boot.events.insert(&chained);
    boot.events.insert(&http("/ipxe", 200));
    m.boots.push_back(boot);
    let f = m.facts();
    // iPXE is what the machine runs now, not what it is.
    assert_eq!(f.firmware, Some(Firmware::UefiPxe));
    assert_eq!(f.arch, Some(9));
    assert_eq!(f.user_class.as_deref(), Some("iPXE"));
    assert_eq!(f.ip, "127.0.0.1".parse().ok());
    assert_eq!(f.profile.as_deref(), Some("profile-2"));
    assert_eq!(m.profile().map(|p| p.to_string()), Some("profile-2".into()));
    // Only iPXE ever seen: iPXE.
    let mut m = MachineRec::new(1);
    let mut boot = BootRec::new(1);
    boot.events.insert(&dhcp(DhcpStep::Seen, Firmware::Ipxe));
    m.boots.push_back(boot);
    assert_eq!(m.facts().firmware, Some(Firmware::Ipxe));
}

/// A pseudo-random walk (deterministic) of a boot's log against a queue of events kept
/// as they are: insertions in time order (some older than the newest), repeats, drops
/// from the front. Every step, the log reads back as the queue.
#[test]
fn a_boot_log_reads_back_the_events_put_in() {
    use super::log::EventLog;
    use std::collections::VecDeque;
    let mac = kindling_model::MacAddr::parse("52:54:00:00:27:0f").ok();
    let kinds = every_kind();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut log = EventLog::default();
    let mut model: VecDeque<Event> = VecDeque::new();
    let mut seq = 0;
    let (mut scratch, mut repeats) = (Vec::new(), 0u32);
    for step in 0..3000u64 {
        seq += 1;
        let mut e = kinds[next(kinds.len() as u64) as usize].clone();
        e.mac = mac;
        e.seq = seq;
        // Mostly forward in time, sometimes older than the newest, once far in the past.
        e.ts = match next(10) {
            0 => 1_795_000_000_000 + step * 100 - next(5000).min(step * 100),
            1 if step == 7 => 3,
            _ => 1_795_000_000_000 + step * 100,
        };
        e.ip = match next(3) {
            0 => None,
            1 => Some(std::net::IpAddr::from([
                10,
                0,
                (step >> 8) as u8,
                step as u8,
            ])),
            _ => "fd00::1:2".parse().ok(),
        };
        if next(50) == 0 {
            e.reason = Some(Reason::text(&format!("file {step} not found")));
        }
        if next(200) == 0
            && let Some(h) = e.http_mut()
        {
            h.path = format!("/assets/{}", "p".repeat(300 + step as usize)).into();
        }
        // What `same_as` does not compare: a repeat that differs only there is counted,
        // the record keeping its own.
        match &mut e.detail {
            Detail::Http(h) if next(2) == 0 => {
                h.bytes = next(1 << 40);
                h.duration_ms = next(1000) as f64 / 7.0;
                h.group = (next(2) == 0).then(|| Name::new("g1"));
                h.profile = (next(3) == 0).then(|| Name::new("p2"));
            }
            Detail::Tftp(t) if next(2) == 0 => {
                t.bytes = next(1 << 20);
                t.duration_ms = (next(2) == 0).then(|| next(500) as f64 / 3.0);
            }
            _ => {}
        }
        let repeated = (model.iter_mut().rev().take(4))
            .find(|p| p.same_as(&e) && p.seq < e.seq && p.ts <= e.ts);
        let counted = log.count_repeat(&e, 4, &mut scratch);
        assert_eq!(counted, repeated.is_some(), "step {step}");
        repeats += u32::from(counted);
        if let Some(p) = repeated {
            p.repeats += 1;
            p.last_ts = e.ts;
        } else {
            log.insert(&e);
            let at = (model.iter())
                .rposition(|p| (p.ts, p.seq) <= (e.ts, e.seq))
                .map_or(0, |p| p + 1);
            model.insert(at, e);
        }
        while model.len() > 40 {
            model.pop_front();
            log.pop_front();
        }
        if step % 5 == 0 {
            log.shrink();
        }
        assert_eq!(log.len(), model.len());
        let back = log.to_events(mac.unwrap_or_else(|| [0; 6].into()));
        assert!(
            back == model,
            "step {step}: the log differs from the events put in"
        );
        // The boot's list of names holds only what its events use (and a few more).
        assert!(log.name_count() <= 2 * model.len() + 8 + 8, "step {step}");
    }
    // The walk met many repeats (it tests their counting, not only insertions).
    assert!(repeats > 300, "{repeats} repeats");
}

/// Each kind of event, alone in a boot, reads back as it went in; its record is a few
/// dozen bytes.
#[test]
fn each_event_is_a_small_record() {
    use super::log::EventLog;
    for e in every_kind() {
        let mut log = EventLog::default();
        log.insert(&e);
        log.shrink();
        let back = log.to_events(e.mac.unwrap_or_else(|| [0; 6].into()));
        let mut want = e.clone();
        want.mac = Some(want.mac.unwrap_or_else(|| [0; 6].into()));
        assert_eq!(back.len(), 1);
        assert_eq!(back[0], want);
        let path = e.path().map_or(0, str::len);
        assert!(log.byte_len() <= 48 + path, "{} B: {e:?}", log.byte_len());
    }
}
