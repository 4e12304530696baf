//! Everything a reader sees of a store after a rich sequence of events (JSON of the
//! summaries and details, `kindling machines` text, the events handed to the journal),
//! compared byte for byte with `golden/timeline.txt`, which was written by the store
//! before its compact layout: the layout must stay invisible.
//!
//! After an intended change of the output: `KINDLING_TIMELINE_GOLDEN=write cargo test -p
//! kindling-api --test timeline_golden`, and review the diff of the file.

use std::cell::Cell;

use kindling_timeline::Event;
use kindling_timeline::store::{Limits, Store};
use serde_json::{Value, json};

// Events are made as the journal has them (flat JSON, every field in text) and read
// back: the test holds both the read side and everything readers see.

fn ev(ts: u64, kind: &str, what: &str, mac: Option<&str>, ip: Option<&str>) -> Value {
    let mut e = json!({"ts": ts, "kind": kind, "ok": true, "what": what});
    if let Some(m) = mac {
        e["mac"] = json!(m);
    }
    if let Some(ip) = ip {
        e["ip"] = json!(ip);
    }
    e
}

fn http(ts: u64, mac: Option<&str>, ip: &str, endpoint: &str, path: &str, status: u16) -> Value {
    let mut e = ev(ts, "http_request", &format!("GET {path}"), mac, Some(ip));
    e["endpoint"] = json!(endpoint);
    e["path"] = json!(path);
    e["status"] = json!(status);
    e["ok"] = json!(status < 400);
    e["bytes"] = json!(ts % 1000);
    e["duration_ms"] = json!((ts % 7) as f64 / 3.0);
    if status >= 400 {
        e["reason"] = json!(format!("reason {ts}"));
    }
    match endpoint {
        "ipxe" | "boot.ipxe" => e["stage"] = json!("script"),
        "ignition" => e["stage"] = json!("ignition"),
        _ => {}
    }
    e
}

fn dhcp(ts: u64, mac: &str, fw: &str, kind: &str, msg: &str, what: &str) -> Value {
    let mut e = ev(ts, kind, what, Some(mac), None);
    e["stage"] = json!("dhcp");
    e["firmware"] = json!(fw);
    e["message"] = json!(msg);
    e["arch"] = json!("7 (efi-x64)");
    e["vendor_class"] = json!("PXEClient:Arch:00007:UNDI:003016");
    e["iface"] = json!("kbr0");
    if fw == "ipxe" {
        e["user_class"] = json!("iPXE");
    }
    e
}

fn dump(s: &mut Store, out: &mut String) {
    let mut sums = s.summaries();
    sums.sort_by(|a, b| a.mac.cmp(&b.mac));
    out.push_str(&serde_json::to_string_pretty(&sums).unwrap());
    out.push_str(&kindling_api::machines_cli::format_list(&sums));
    for m in &sums {
        let d = s.detail(&m.mac).unwrap();
        out.push_str(&serde_json::to_string_pretty(&d).unwrap());
        out.push_str(&kindling_api::machines_cli::format_detail(&d));
        out.push_str(&format!("{:?}\n", d.summary));
    }
    out.push_str(&format!(
        "pending {} unattributed {} machines {}\n",
        s.pending_events(),
        s.unattributed,
        s.machine_count()
    ));
}

fn scenario() -> String {
    let mut out = String::new();
    let mut s = Store::new(Limits {
        max_machines: 16,
        max_boots: 3,
        max_events: 9,
        ..Limits::default()
    });
    let a = "52:54:00:00:00:0a";
    let b = "52:54:00:00:00:0b";
    let t = Cell::new(1_795_000_000_000u64);
    let step = |d: u64| {
        t.set(t.get() + d);
        t.get()
    };
    let mut log = |s: &mut Store, e: Value| {
        let e: Event = serde_json::from_value(e).unwrap();
        for g in s.ingest(e) {
            out.push_str(&serde_json::to_string(&g).unwrap());
            out.push('\n');
        }
    };
    let disc = |ts, fw| dhcp(ts, a, fw, "dhcp_seen", "discover", "DISCOVER on port 67");
    // More machines than kept (the least recently seen go, an eighth at a time).
    for i in 0..20u64 {
        let m = format!("52:54:00:00:01:{i:02x}");
        let ip = format!("10.1.0.{i}");
        log(&mut s, http(step(1), Some(&m), &ip, "ipxe", "/ipxe", 200));
    }
    // Boots beyond max_boots: the oldest go.
    for i in 0..5u16 {
        let c = "52:54:00:00:00:0c";
        let e = http(
            step(20 * 60 * 1000),
            Some(c),
            "10.0.0.7",
            "ipxe",
            "/ipxe",
            200 + i,
        );
        log(&mut s, e);
    }
    log(&mut s, disc(step(1), "uefi_pxe"));
    let mut o = dhcp(
        step(1),
        a,
        "uefi_pxe",
        "dhcp_answered",
        "offer",
        "OFFER ipxe.efi",
    );
    o["path"] = json!("ipxe.efi");
    o["reason"] = json!("rule x");
    log(&mut s, o.clone());
    // A DISCOVER/OFFER retry: counted on the first pair.
    log(&mut s, disc(step(1), "uefi_pxe"));
    o["ts"] = json!(step(1));
    log(&mut s, o.clone());
    // TFTP from an address not tied yet: waits.
    let mut tf = ev(
        step(1),
        "tftp_transfer",
        "RRQ ipxe.efi",
        None,
        Some("10.0.0.5"),
    );
    tf["stage"] = json!("tftp");
    tf["path"] = json!("ipxe.efi");
    tf["bytes"] = json!(1_000_000);
    tf["duration_ms"] = json!(12.5);
    log(&mut s, tf.clone());
    let mut tf2 = tf.clone();
    tf2["ts"] = json!(step(1));
    tf2["ok"] = json!(false);
    tf2["reason"] = json!("timed out");
    log(&mut s, tf2);
    // The 4011 REQUEST ties the address.
    let mut req = dhcp(
        step(1),
        a,
        "uefi_pxe",
        "dhcp_seen",
        "request",
        "REQUEST on port 4011",
    );
    req["ip"] = json!("10.0.0.5");
    log(&mut s, req);
    log(
        &mut s,
        http(step(1), None, "10.0.0.5", "boot.ipxe", "/boot.ipxe", 200),
    );
    let mut ix = http(step(1), Some(a), "10.0.0.5", "ipxe", "/ipxe", 200);
    ix["group"] = json!("g1");
    ix["profile"] = json!("prof-with-a-long-name-more-than-24");
    log(&mut s, ix.clone());
    ix["ts"] = json!(step(1));
    log(&mut s, ix.clone());
    log(&mut s, disc(step(1), "ipxe"));
    for (endpoint, path, status) in [
        ("assets", "/assets/fedora-coreos-live-kernel-x86_64", 200),
        (
            "assets",
            "/assets/fedora-coreos-live-initramfs.x86_64.img",
            200,
        ),
        ("ignition", "/ignition", 404),
        (
            "assets",
            "/assets/fedora-coreos-live-rootfs.x86_64.img",
            200,
        ),
        ("ignition", "/ignition", 200),
    ] {
        log(
            &mut s,
            http(step(1), None, "10.0.0.5", endpoint, path, status),
        );
    }
    // Repeats, and more events than a boot keeps.
    for _ in 0..3 {
        log(&mut s, ix.clone());
        let mut c = ix.clone();
        c["ts"] = json!(step(2));
        log(&mut s, c);
    }
    // Late (older than the newest).
    log(
        &mut s,
        http(t.get() - 5, Some(a), "10.0.0.5", "generic", "/generic", 500),
    );
    // A firmware DISCOVER after the script: a new boot; an ignored DISCOVER.
    log(&mut s, disc(step(1), "bios_pxe"));
    let mut ig = dhcp(
        step(1),
        a,
        "bios_pxe",
        "dhcp_ignored",
        "discover",
        "DISCOVER not answered",
    );
    ig["ok"] = json!(false);
    ig["reason"] = json!("no_rule");
    log(&mut s, ig);
    // After a long silence: a new boot.
    log(
        &mut s,
        http(
            step(20 * 60 * 1000),
            Some(a),
            "10.0.0.5",
            "ipxe",
            "/ipxe",
            404,
        ),
    );
    // Odd texts and numbers. (A user class on an HTTP request, as this line once had,
    // reads as absent since events are typed: option 77 is a DHCP field.)
    let mut x = http(step(1), Some(b), "10.0.0.6", "ipxe", "/ipxe?x=ü\"\\", 200);
    x["bytes"] = json!(u64::MAX);
    x["duration_ms"] = json!(0.0);
    x["user_class"] = json!("a,b");
    log(&mut s, x);
    // A MAC that is not a 6-byte address (a hand-edited journal) names no machine: the
    // event waits for its IP like any unattributed one (before MacAddr it made a machine
    // "AA-BB"; the only change to this file's output).
    log(
        &mut s,
        http(step(1), Some("AA-BB"), "10.9.9.9", "ipxe", "/ipxe", 200),
    );
    dump(&mut s, &mut out);
    out
}

#[test]
fn readers_see_what_they_saw_before_the_compact_layout() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/timeline.txt");
    let got = scenario();
    if std::env::var("KINDLING_TIMELINE_GOLDEN").as_deref() == Ok("write") {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap();
    if got != want {
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(g, w)| g != w)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "output differs from {} from line {}:\n got: {:?}\nwant: {:?}",
            path.display(),
            line + 1,
            got.lines().nth(line),
            want.lines().nth(line)
        );
    }
}
