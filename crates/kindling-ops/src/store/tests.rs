//! Tests of the compact forms: a stored event gives back the event it was made from
//! (with names, without room for names, with the client share full), compares like
//! [`Event::same_as`], and a machine's facts change only when given and different.

use super::names::{CLIENT_NAMES_MAX, Intern, NAME_REF, NAMES_MAX, Names};
use super::stored::{MachineRec, StoredEvent, ef, mf};
use crate::event::{Endpoint, Event, Kind, Stage};
use kindling_dhcp::Firmware;
use kindling_dhcp::wire::MessageType;
use kindling_model::MacAddr;

fn full() -> Event {
    let mut e = Event::new(
        1_795_000_000_123,
        Kind::HttpRequest,
        "GET /ipxe?mac=52-54-00-00-27-0f",
    );
    e.mac = kindling_model::MacAddr::parse("52:54:00:00:27:0f").ok();
    e.ip = Some("127.0.0.1".into());
    e.stage = Some(Stage::Script);
    e.ok = false;
    e.reason = Some("r".repeat(200).into());
    e.path = Some("/ipxe".into());
    e.endpoint = Some(Endpoint::Ipxe);
    e.status = Some(404);
    e.bytes = Some(600);
    e.duration_ms = Some(0.123_456_789);
    e.iface = Some("eth0".into());
    e.arch = Some(7);
    e.firmware = Some(Firmware::UefiHttp);
    e.message = Some(MessageType::Discover);
    e.vendor_class = Some("PXEClient:Arch:00007:UNDI:003016".into());
    e.user_class = Some("iPXE,x".into());
    e.group = Some("node-42".into());
    e.profile = Some("profile-2".into());
    e.repeats = 3;
    e.last_ts = 1_795_000_009_000;
    e.seq = 77;
    e
}

#[test]
fn stored_events_give_back_the_same_event() {
    let mac = MacAddr([0x52, 0x54, 0, 0, 0x27, 0x0f]);
    let e = full();
    for dhcp in [false, true] {
        let mut e = e.clone();
        if dhcp {
            e.kind = Kind::DhcpAnswered;
        }
        // Fresh names, names known already, no room for names.
        let mut names = Names::default();
        let once = StoredEvent::from_event(&e, &mut names);
        let twice = StoredEvent::from_event(&e, &mut names);
        assert_eq!(once, twice);
        assert_eq!(once.to_event(mac, &names), e);
        let mut full_names = Names::default();
        for i in 0..NAMES_MAX {
            full_names.intern(&format!("name {i}"), Intern::Server);
        }
        assert!(full_names.intern("one more", Intern::Server).is_none());
        let raw = StoredEvent::from_event(&e, &mut full_names);
        assert_eq!(raw.to_event(mac, &full_names), e);
        assert!(
            raw.text
                .get(ef::VENDOR_CLASS)
                .is_some_and(|b| b.first() != Some(&NAME_REF))
        );
        assert!(
            once.text
                .get(ef::VENDOR_CLASS)
                .is_some_and(|b| b.first() == Some(&NAME_REF))
        );
    }
    // Client texts get half of the table; Kindling's own texts keep the rest.
    let mut names = Names::default();
    for i in 0..NAMES_MAX {
        names.intern(&format!("PXEClient:spoof:{i}"), Intern::Client);
    }
    assert_eq!(names.all.len(), CLIENT_NAMES_MAX);
    assert!(names.intern("PXEClient:spoof:0", Intern::Client).is_some());
    assert!(names.intern("PXEClient:new", Intern::Client).is_none());
    assert!(
        names
            .intern("OFFER undionly.kpxe", Intern::Server)
            .is_some()
    );
    assert!(names.intern("GET /ipxe?mac=x", Intern::No).is_none());
    let mut names = Names::default();
    // Names past the first 128 take two bytes.
    for i in 0..300 {
        names.intern(&format!("name {i}"), Intern::Server);
    }
    // Every field absent but the mandatory ones; odd numbers.
    let mut bare = Event::new(0, Kind::DhcpSeen, "");
    bare.mac = Some(mac);
    assert_eq!(
        StoredEvent::from_event(&bare, &mut names).to_event(mac, &names),
        bare
    );
    for (bytes, d) in [(0, 0.0), (u64::MAX, -0.0), (1 << 40, f64::MAX)] {
        let mut x = bare.clone();
        x.bytes = Some(bytes);
        x.duration_ms = Some(d);
        let back = StoredEvent::from_event(&x, &mut names).to_event(mac, &names);
        assert_eq!(back.bytes, Some(bytes));
        assert_eq!(back.duration_ms.map(f64::to_bits), Some(d.to_bits()));
    }
    let json = |e: &Event| serde_json::to_string(e).unwrap_or_default();
    let back = StoredEvent::from_event(&e, &mut names).to_event(mac, &names);
    assert_eq!(json(&back), json(&e));
}

#[test]
fn stored_same_as_is_event_same_as() {
    let mut a = full();
    a.kind = Kind::DhcpSeen;
    let mut names = Names::default();
    let stored = StoredEvent::from_event(&a, &mut names);
    let mut variants = vec![a.clone()];
    let mut v = a.clone();
    v.kind = Kind::DhcpAnswered;
    variants.push(v);
    let mut v = a.clone();
    v.stage = None;
    variants.push(v);
    let mut v = a.clone();
    v.firmware = None;
    variants.push(v);
    let mut v = a.clone();
    v.message = Some(MessageType::Offer);
    variants.push(v);
    let mut v = a.clone();
    v.ok = true;
    variants.push(v);
    let mut v = a.clone();
    v.what = "GET /ipxe".into();
    variants.push(v);
    let mut v = a.clone();
    v.status = Some(200);
    variants.push(v);
    let mut v = a.clone();
    v.reason = None;
    variants.push(v);
    let mut v = a.clone();
    v.endpoint = Some(Endpoint::BootIpxe);
    variants.push(v);
    let mut v = a.clone();
    v.path = None;
    variants.push(v);
    // Not part of the comparison.
    let mut v = a.clone();
    v.ip = Some("10.0.0.1".into());
    v.bytes = None;
    v.ts += 5;
    variants.push(v);
    for v in &variants {
        assert_eq!(stored.same_as(v, &names), a.same_as(v), "{v:?}");
    }
    let same = variants.iter().filter(|v| stored.same_as(v, &names));
    assert_eq!(same.count(), 2);
}

#[test]
fn facts_change_only_when_given_and_different() {
    let mut n = Names::default();
    let mut m = MachineRec::new(1);
    m.set_facts(&[(mf::IP, Some("10.0.0.1")), (mf::ARCH, None)], &mut n);
    m.set_facts(&[(mf::ARCH, Some("0 (bios)")), (mf::IP, None)], &mut n);
    assert_eq!(m.fact(mf::IP, &n), Some("10.0.0.1"));
    assert_eq!(m.fact(mf::ARCH, &n), Some("0 (bios)"));
    let before = m.facts.clone();
    m.set_facts(&[(mf::ARCH, Some("0 (bios)"))], &mut n);
    assert_eq!(m.facts, before);
    m.set_facts(&[(mf::IP, Some("10.0.0.2"))], &mut n);
    assert_eq!(m.fact(mf::IP, &n), Some("10.0.0.2"));
    assert_eq!(m.fact(mf::ARCH, &n), Some("0 (bios)"));
    assert_eq!(m.fact(mf::PROFILE, &n), None);
    // Named facts are references, the others text.
    assert_eq!(
        m.facts.get(mf::ARCH).and_then(|b| b.first()),
        Some(&NAME_REF)
    );
    assert_eq!(m.facts.get(mf::IP), Some(&b"10.0.0.2"[..]));
}
