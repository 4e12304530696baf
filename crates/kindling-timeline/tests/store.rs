//! The in-memory store: stage classification, IP -> MAC tying, boot splitting, bounds.

use kindling_timeline::classify::{ProfileMap, ProfilePaths};
use kindling_timeline::store::{Limits, Store};
use kindling_timeline::{Detail, Dhcp, DhcpStep, Event, Kind, Reason, Stage, Tftp};

const MAC: &str = "52:54:00:12:34:56";
const IP: &str = "10.99.0.50";

fn dhcp(ts: u64, mac: &str, firmware: &str, kind: Kind) -> Event {
    let step = match kind {
        Kind::DhcpAnswered => DhcpStep::Answered,
        Kind::DhcpIgnored => DhcpStep::Ignored,
        _ => DhcpStep::Seen,
    };
    let mut d = Dhcp::new(step);
    d.firmware = kindling_dhcp::Firmware::from_label(firmware);
    d.message = Some(kindling_dhcp::wire::MessageType::Discover.into());
    d.port = 67;
    let mut e = Event::new(ts, Detail::Dhcp(d));
    e.mac = kindling_model::MacAddr::parse(mac).ok();
    e
}

fn ip() -> std::net::IpAddr {
    IP.parse().unwrap()
}

fn http(ts: u64, mac: Option<&str>, endpoint: &str, path: &str, status: u16) -> Event {
    let endpoint_ = kindling_timeline::Endpoint::from_label(endpoint).unwrap();
    let mut e = Event::http_request(ts, "GET", path, endpoint_, status);
    e.mac = mac.and_then(|m| kindling_model::MacAddr::parse(m).ok());
    e.ip = Some(ip());
    e.stage = match endpoint {
        "ipxe" | "boot.ipxe" => Some(Stage::Script),
        "ignition" => Some(Stage::Ignition),
        _ => None,
    };
    e
}

fn tftp(ts: u64, ok: bool) -> Event {
    let mut e = Event::new(
        ts,
        Detail::Tftp(Box::new(Tftp {
            file: "ipxe.efi".into(),
            write: false,
            probe: false,
            bytes: 0,
            duration_ms: Some(1.0),
        })),
    );
    e.ip = Some(ip());
    e.ok = ok;
    if !ok {
        e.reason = Some(Reason::text("timed out"));
    }
    e
}

fn profiles() -> ProfileMap {
    let mut m = ProfileMap::new();
    m.insert(
        "odd".into(),
        ProfilePaths::from_boot(
            "/assets/x/boot-a",
            &["--name main /assets/x/boot-b".into()],
            &["coreos.live.rootfs_url=http://h/assets/x/boot-c".into()],
        ),
    );
    m
}

fn stages_of(s: &Store, mac: &str) -> Vec<Option<Stage>> {
    let m = s.detail(mac).unwrap();
    m.timeline
        .last()
        .unwrap()
        .events
        .iter()
        .map(|e| e.stage)
        .collect()
}

#[test]
fn asset_stage_from_profile_and_names() {
    let mut s = Store::new(Limits::default());
    s.set_profiles(profiles());
    let mut ipxe = http(1000, Some(MAC), "ipxe", "/ipxe", 200);
    if let Some(h) = ipxe.http_mut() {
        h.profile = Some("odd".into());
    }
    s.ingest(ipxe);
    // Names say nothing here: only the profile knows boot-a is the kernel.
    for (t, p) in [
        (1100, "/assets/x/boot-a"),
        (1200, "/assets/x/boot-b"),
        (1300, "/assets/x/boot-c"),
    ] {
        s.ingest(http(t, None, "assets", p, 200));
    }
    // A machine without that profile falls back to names.
    s.ingest(http(
        1400,
        Some("52:54:00:00:00:09"),
        "assets",
        "/assets/f/fedora-coreos-live-kernel-x86_64",
        200,
    ));
    assert_eq!(
        stages_of(&s, MAC),
        vec![
            Some(Stage::Script),
            Some(Stage::Kernel),
            Some(Stage::Initrd),
            Some(Stage::Rootfs)
        ]
    );
    assert_eq!(
        stages_of(&s, "52:54:00:00:00:09"),
        vec![Some(Stage::Kernel)]
    );
    assert_eq!(
        s.detail(MAC).unwrap().summary.last_stage,
        Some(Stage::Rootfs)
    );
}

#[test]
fn ip_tying_and_pending_events() {
    let mut s = Store::new(Limits::default());
    // Firmware DHCP from 0.0.0.0: MAC but no IP.
    assert_eq!(
        s.ingest(dhcp(1000, MAC, "uefi_pxe", Kind::DhcpSeen)).len(),
        1
    );
    // TFTP and /boot.ipxe come from an IP nobody has tied yet: they wait.
    assert!(s.ingest(tftp(2000, true)).is_empty());
    assert!(
        s.ingest(http(3000, None, "boot.ipxe", "/boot.ipxe", 200))
            .is_empty()
    );
    assert_eq!(s.pending_events(), 2);
    // /ipxe?mac=... from the same IP ties it: the waiting events follow, in time order.
    let out = s.ingest(http(4000, Some(MAC), "ipxe", "/ipxe", 200));
    assert_eq!(out.len(), 3);
    assert!(
        out.iter()
            .all(|e| e.mac.map(|m| m.to_string()).as_deref() == Some(MAC))
    );
    assert_eq!(s.pending_events(), 0);
    assert_eq!(
        s.mac_for_ip(ip()).map(|m| m.to_string()).as_deref(),
        Some(MAC)
    );
    let ts: Vec<u64> = s.detail(MAC).unwrap().timeline[0]
        .events
        .iter()
        .map(|e| e.ts)
        .collect();
    assert_eq!(ts, vec![1000, 2000, 3000, 4000]);
    // Later requests without a MAC are tied directly.
    let out = s.ingest(http(5000, None, "assets", "/assets/vmlinuz", 200));
    assert_eq!(out[0].mac.map(|m| m.to_string()).as_deref(), Some(MAC));
    assert_eq!(s.detail(MAC).unwrap().summary.ip.as_deref(), Some(IP));
    assert_eq!(
        s.detail(MAC).unwrap().summary.last_stage,
        Some(Stage::Kernel)
    );
}

#[test]
fn pending_events_expire_and_are_counted() {
    let limits = Limits {
        pending_ttl_ms: 1000,
        ..Limits::default()
    };
    let mut s = Store::new(limits);
    s.ingest(tftp(1000, true));
    assert_eq!(s.pending_events(), 1);
    s.ingest(dhcp(5000, MAC, "uefi_pxe", Kind::DhcpSeen));
    assert_eq!(s.pending_events(), 0);
    assert_eq!(s.unattributed, 1);
}

#[test]
fn boots_split_at_firmware_discover_and_after_a_gap() {
    let limits = Limits {
        boot_gap_ms: 60_000,
        ..Limits::default()
    };
    let mut s = Store::new(limits);
    s.ingest(dhcp(1000, MAC, "uefi_pxe", Kind::DhcpSeen));
    // A second firmware DISCOVER before anything else happened: same boot (retry).
    s.ingest(dhcp(2000, MAC, "uefi_pxe", Kind::DhcpSeen));
    s.ingest(dhcp(2100, MAC, "uefi_pxe", Kind::DhcpAnswered));
    // The chainloaded iPXE's own DISCOVER does not start a boot.
    s.ingest(dhcp(2500, MAC, "ipxe", Kind::DhcpSeen));
    s.ingest(http(3000, Some(MAC), "ipxe", "/ipxe", 200));
    assert_eq!(s.detail(MAC).unwrap().timeline.len(), 1);
    // The firmware starts over: new boot.
    s.ingest(dhcp(10_000, MAC, "uefi_pxe", Kind::DhcpSeen));
    assert_eq!(s.detail(MAC).unwrap().timeline.len(), 2);
    assert_eq!(s.detail(MAC).unwrap().timeline[1].last_stage, None);
    // Long silence, then any event: new boot.
    s.ingest(http(200_000, Some(MAC), "ipxe", "/ipxe", 200));
    let m = s.detail(MAC).unwrap();
    assert_eq!(m.timeline.len(), 3);
    // The repeated DISCOVER is counted on the first one, not stored twice.
    assert_eq!(m.timeline[0].events.len(), 4);
    assert_eq!(m.timeline[0].events[0].repeats, 1);
    assert_eq!(m.timeline[0].events[0].last_ts, 2000);
    assert_eq!(m.timeline[0].last_stage, Some(Stage::Script));
}

#[test]
fn ipxe_rom_reboots_split_but_chainloading_does_not() {
    let mut s = Store::new(Limits::default());
    // Firmware PXE -> TFTP -> iPXE DISCOVER (chainloaded): one boot.
    s.ingest(dhcp(1000, MAC, "bios_pxe", Kind::DhcpSeen));
    s.ingest(dhcp(1001, MAC, "bios_pxe", Kind::DhcpAnswered));
    let mut t = tftp(1100, true);
    t.mac = kindling_model::MacAddr::parse(MAC).ok();
    s.ingest(t);
    s.ingest(dhcp(1200, MAC, "ipxe", Kind::DhcpSeen));
    s.ingest(http(1300, Some(MAC), "ipxe", "/ipxe", 404));
    assert_eq!(s.detail(MAC).unwrap().timeline.len(), 1);
    // A VM whose ROM is iPXE reboots: its DISCOVER after a script starts a new boot.
    s.ingest(dhcp(5000, MAC, "ipxe", Kind::DhcpSeen));
    s.ingest(http(5100, Some(MAC), "ipxe", "/ipxe", 200));
    let m = s.detail(MAC).unwrap();
    assert_eq!(m.timeline.len(), 2);
    assert_eq!(
        m.timeline[0].error.as_ref().unwrap().stage,
        Some(Stage::Script)
    );
    assert_eq!(m.timeline[1].error, None);
    assert_eq!(m.timeline[1].last_stage, Some(Stage::Script));
}

#[test]
fn failures_stop_a_boot_until_a_later_success() {
    let mut s = Store::new(Limits::default());
    s.ingest(dhcp(1000, MAC, "uefi_pxe", Kind::DhcpAnswered));
    s.ingest(tftp(1500, false));
    s.ingest(http(1600, Some(MAC), "ipxe", "/ipxe", 200));
    s.ingest(http(1700, Some(MAC), "assets", "/assets/vmlinuz", 200));
    let mut ign = http(1800, Some(MAC), "ignition", "/ignition", 404);
    ign.reason = Some("profile \"fcos\" has no ignition_id".into());
    s.ingest(ign);
    let sum = s.detail(MAC).unwrap().summary;
    assert_eq!(sum.last_stage, Some(Stage::Kernel));
    let err = sum.last_error.unwrap();
    assert_eq!(err.stage, Some(Stage::Ignition));
    assert!(err.message.contains("no ignition_id"), "{}", err.message);
    // Fixed and retried: the error goes.
    s.ingest(http(1900, Some(MAC), "ignition", "/ignition", 200));
    let sum = s.detail(MAC).unwrap().summary;
    assert_eq!(sum.last_stage, Some(Stage::Ignition));
    assert_eq!(sum.last_error, None);
}

#[test]
fn bounds_evict_the_oldest() {
    let limits = Limits {
        max_machines: 3,
        max_boots: 2,
        max_events: 4,
        ..Limits::default()
    };
    let mut s = Store::new(limits);
    for i in 0..5u64 {
        s.ingest(dhcp(
            1000 + i,
            &format!("52:54:00:00:00:0{i}"),
            "bios_pxe",
            Kind::DhcpSeen,
        ));
    }
    assert_eq!(s.machine_count(), 3);
    assert!(s.detail("52:54:00:00:00:00").is_none());
    assert!(s.detail("52:54:00:00:00:01").is_none());
    assert!(s.detail("52:54:00:00:00:04").is_some());
    // Events per boot.
    let mac = "52:54:00:00:00:04";
    for i in 0..6 {
        s.ingest(http(
            2000 + i,
            Some(mac),
            "ipxe",
            &format!("/ipxe?n={i}"),
            200,
        ));
    }
    let b = &s.detail(mac).unwrap().timeline[0];
    assert_eq!(b.events.len(), 4);
    assert_eq!(b.dropped_events, 3);
    assert_eq!(b.events.front().unwrap().ts, 2002);
    // Boots per machine.
    for i in 0..3 {
        let t = 10_000 + i * 1000;
        s.ingest(dhcp(t, mac, "bios_pxe", Kind::DhcpSeen));
        s.ingest(http(t + 10, Some(mac), "ipxe", "/ipxe", 200));
    }
    let m = s.detail(mac).unwrap();
    assert_eq!(m.timeline.len(), 2);
    assert_eq!(m.timeline[0].started, 11_000);
    assert_eq!(m.timeline[1].started, 12_000);
}

#[test]
fn repeats_are_counted_not_stored() {
    let mut s = Store::new(Limits::default());
    s.ingest(dhcp(1000, MAC, "ipxe", Kind::DhcpSeen));
    let mut journaled = 0;
    for i in 0..100u64 {
        journaled += s
            .ingest(http(2000 + i, Some(MAC), "ipxe", "/ipxe", 404))
            .len();
    }
    // Only the first of a retry loop is stored and returned for the journal.
    assert_eq!(journaled, 1);
    let b = &s.detail(MAC).unwrap().timeline[0];
    assert_eq!(b.events.len(), 2);
    assert_eq!(b.events[1].repeats, 99);
    assert_eq!(b.events[1].last_ts, 2099);
    // Something different is stored again.
    assert_eq!(
        s.ingest(http(3000, Some(MAC), "ipxe", "/ipxe", 200)).len(),
        1
    );
    assert_eq!(s.detail(MAC).unwrap().timeline[0].events.len(), 3);
}

#[test]
fn a_storm_of_new_machines_stays_bounded() {
    let mut s = Store::new(Limits {
        max_machines: 1000,
        ..Limits::default()
    });
    for i in 0..20_000u64 {
        let mac = format!(
            "52:54:00:{:02x}:{:02x}:{:02x}",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        );
        s.ingest(http(1000 + i, Some(&mac), "ipxe", "/ipxe", 200));
    }
    assert!(s.machine_count() <= 1000);
    assert!(s.machine_count() >= 875);
    // The most recent machine is kept.
    assert!(s.detail("52:54:00:00:4e:1f").is_some());
}

/// One boot of `mac` at `ts`: firmware DISCOVER seen, OFFER answered, `/ipxe`.
fn boot(s: &mut Store, mac: &str, ts: u64) {
    s.ingest(dhcp(ts, mac, "bios_pxe", Kind::DhcpSeen));
    s.ingest(dhcp(ts + 1, mac, "bios_pxe", Kind::DhcpAnswered));
    s.ingest(http(ts + 2, Some(mac), "ipxe", "/ipxe", 200));
}

#[test]
fn earlier_boots_keep_their_summary_beyond_the_budget() {
    let limits = Limits {
        max_boots: 3,
        max_earlier_events: 7,
        ..Limits::default()
    };
    let mut s = Store::new(limits);
    let (a, b) = ("52:54:00:00:00:0a", "52:54:00:00:00:0b");
    // a: three boots, the first two earlier (3 events each: 6 within the budget).
    for t in [1000, 2000, 3000] {
        boot(&mut s, a, t);
    }
    assert_eq!(s.earlier_events(), 6);
    let tl = s.detail(a).unwrap().timeline;
    assert!(
        tl.iter()
            .all(|b| b.events.len() == 3 && b.dropped_events == 0)
    );
    // b's second boot makes its first earlier: 9 > 7, so the boot that ended longest
    // ago (a's first) loses its events, and keeps its start and stage.
    boot(&mut s, b, 4000);
    boot(&mut s, b, 5000);
    assert_eq!(s.earlier_events(), 6);
    let tl = s.detail(a).unwrap().timeline;
    assert_eq!(tl[0].started, 1000);
    assert!(tl[0].events.is_empty());
    assert_eq!(tl[0].dropped_events, 3);
    assert_eq!(tl[0].last_stage, Some(Stage::Script));
    assert_eq!(tl[1].events.len(), 3);
    assert_eq!(s.detail(b).unwrap().timeline[0].events.len(), 3);
    // The newest boots are never trimmed, whatever the budget.
    assert!(s.detail(b).unwrap().timeline[1].events.len() == 3);
    // a's next boot: its first boot goes (max_boots), its second is now the front and
    // loses its events (3 + 3 + 3 = 9 > 7).
    boot(&mut s, a, 6000);
    let tl = s.detail(a).unwrap().timeline;
    assert_eq!(tl.len(), 3);
    assert_eq!(tl[0].started, 2000);
    assert!(tl[0].events.is_empty());
    assert_eq!(tl[1].events.len(), 3);
    assert_eq!(tl[2].events.len(), 3);
    assert_eq!(s.earlier_events(), 6);
    // A long run of reboots stays within the budget, and the bookkeeping with it.
    for i in 0..200u64 {
        let mac = format!("52:54:00:00:01:{:02x}", i % 50);
        boot(&mut s, &mac, 10_000 + i * 10);
    }
    assert!(s.earlier_events() <= 7, "{}", s.earlier_events());
    let held: usize = (0..50u64)
        .filter_map(|i| s.detail(&format!("52:54:00:00:01:{i:02x}")))
        .map(|d| {
            let n = d.timeline.len() - 1;
            d.timeline[..n]
                .iter()
                .map(|b| b.events.len())
                .sum::<usize>()
        })
        .sum::<usize>()
        + [a, b]
            .iter()
            .map(|m| {
                let d = s.detail(m).unwrap();
                let n = d.timeline.len() - 1;
                d.timeline[..n]
                    .iter()
                    .map(|b| b.events.len())
                    .sum::<usize>()
            })
            .sum::<usize>();
    assert_eq!(held, s.earlier_events());
}

#[test]
fn evicted_machines_give_back_their_earlier_events() {
    let limits = Limits {
        max_machines: 2,
        max_earlier_events: 100,
        ..Limits::default()
    };
    let mut s = Store::new(limits);
    boot(&mut s, "52:54:00:00:00:01", 1000);
    boot(&mut s, "52:54:00:00:00:01", 2000);
    assert_eq!(s.earlier_events(), 3);
    boot(&mut s, "52:54:00:00:00:02", 3000);
    boot(&mut s, "52:54:00:00:00:03", 4000);
    assert!(s.detail("52:54:00:00:00:01").is_none());
    assert_eq!(s.earlier_events(), 0);
}
