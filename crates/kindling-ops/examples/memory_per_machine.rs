//! Live heap bytes the boot timeline holds per machine, counted by a global allocator
//! (deterministic: no RSS, no allocator statistics). Two scenarios over N machines:
//!
//! - `http`: one `GET /ipxe?mac=...` each (endpoint `ipxe`, status 200, about 600 bytes,
//!   from 127.0.0.1, with group and profile), like `bench/http/run.sh`;
//! - `dhcp`: one proxy-DHCP DISCOVER seen + OFFER answered each, like `observer_bench`;
//! - `boots`: five boots each (DISCOVER seen, OFFER answered, `/ipxe`), like
//!   `bench/memory/run.sh`: the newest boot in full, the earlier ones within
//!   `max_earlier_events` (20,000 by default, shared by all machines);
//! - `full`: one whole boot each, as a BIOS machine booting Fedora CoreOS live stores it:
//!   the ROM's DISCOVER/OFFER and 4011 REQUEST/ACK, the NBP over TFTP, iPXE's
//!   DISCOVER/OFFER, `/boot.ipxe`, `/ipxe`, kernel, initramfs, rootfs and `/ignition`
//!   (13 events; the bench above stores 3 per boot).
//!
//! Then a journal of those HTTP events (N machines, 4 events each): how fast they are
//! recorded, applied and journaled, and at start-up how long `Ops::open` takes to replay
//! them and the peak of live heap above the store it keeps.
//!
//! ```text
//! cargo run --release -p kindling-ops --example memory_per_machine -- 10000
//! ```
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use kindling_ops::{Ops, OpsConfig};
use kindling_timeline::{Detail, Dhcp, DhcpStep, Event, Name, Stage};

mod support;

/// Bytes requested and not yet freed (allocator bookkeeping not included).
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Live allocations.
static BLOCKS: AtomicIsize = AtomicIsize::new(0);
/// Highest `LIVE` since the last [`reset_peak`].
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grew(by: isize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn reset_peak() -> isize {
    let now = LIVE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

struct Counting;

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as isize);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size as isize - layout.size() as isize);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn snapshot() -> (isize, isize) {
    (LIVE.load(Ordering::Relaxed), BLOCKS.load(Ordering::Relaxed))
}

fn report(label: &str, n: u32, before: (isize, isize), after: (isize, isize), stored: usize) {
    let bytes = after.0 - before.0;
    let blocks = after.1 - before.1;
    let n = isize::try_from(n.max(1)).unwrap_or(1);
    println!(
        "{label}: {stored} machines, {bytes} bytes in {blocks} blocks live = {} B/machine \
         requested, {:.2} blocks/machine, ~{} B/machine with allocator headers",
        bytes / n,
        blocks as f64 / n as f64,
        // What a glibc-like allocator really uses: 8 bytes of header per block, rounded
        // up to 16 (an estimate, printed next to the exact count).
        (bytes + blocks * 16) / n,
    );
}

/// Room for every machine (the default bound, 10,000, would evict some).
fn cfg(n: u32) -> OpsConfig {
    OpsConfig {
        neighbour_lookup: false,
        max_machines: n as usize + 16,
        ..OpsConfig::default()
    }
}

/// The bench's request for machine `i`, `k` ms after its first.
fn http_event(i: u32, k: u64) -> Event {
    let b = [
        0x52,
        0x54,
        (i >> 24) as u8,
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8,
    ];
    let hyp = format!(
        "{:02x}-{:02x}-{:02x}-{:02x}-{:02x}-{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    );
    let mut e = Event::http_request(
        1_795_000_000_000 + u64::from(i) + k,
        "GET",
        &format!("/ipxe?mac={hyp}"),
        kindling_timeline::Endpoint::Ipxe,
        200,
    );
    e.mac = kindling_model::MacAddr::parse(&hyp.replace('-', ":")).ok();
    e.ip = "127.0.0.1".parse().ok();
    if let Some(h) = e.http_mut() {
        h.bytes = 600;
        h.duration_ms = 0.15;
        h.group = Some(format!("node-{i}").into());
        h.profile = Some(format!("profile-{}", i % 10).into());
    }
    e.stage = Some(Stage::Script);
    e
}

/// Live heap added by machines `0..n`, each made by `one(i)` (after one warm-up machine,
/// so that lazily made things, the thread and tables, are not counted).
fn measure(label: &str, n: u32, ops: std::sync::Arc<Ops>, warm_up: u32, one: impl Fn(u32)) {
    one(warm_up);
    ops.flush();
    let before = snapshot();
    for i in 0..n {
        one(i);
        if i % 512 == 0 {
            ops.flush();
        }
    }
    ops.flush();
    let after = snapshot();
    report(label, n, before, after, ops.machines().len() - 1);
    // `one` holds the last other reference to `ops`.
    drop(one);
    ops.shutdown();
    settle(ops);
}

fn http(n: u32) {
    let ops = Ops::in_memory(&cfg(n));
    let o = ops.clone();
    measure("http", n, ops, u32::MAX, move |i| {
        o.record(http_event(i, 0))
    });
}

fn dhcp(n: u32) {
    let ops = Ops::in_memory(&cfg(n));
    let reply = support::offer("undionly.kpxe");
    let o = ops.clone();
    let one = move |i: u32| {
        let mac = [0x52, 0x54, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        support::discover_offer(&*o, &support::bios_client(i, mac), &reply);
    };
    measure("dhcp", n, ops, 0x00ff_ffff, one);
}

/// DISCOVER seen or OFFER answered for machine `i` at `ts`.
fn dhcp_event(i: u32, ts: u64, step: DhcpStep) -> Event {
    use kindling_dhcp::wire::MessageType;
    let mut d = Dhcp::new(step);
    d.firmware = Some(kindling_dhcp::Firmware::BiosPxe);
    d.arch = Some(0);
    d.iface = Some(Name::new("s0"));
    match step {
        DhcpStep::Answered => {
            d.message = Some(MessageType::Offer.into());
            d.file = Some(Name::new("undionly.kpxe"));
        }
        _ => {
            d.message = Some(MessageType::Discover.into());
            d.port = 67;
            d.vendor_class = Some(Name::new("PXEClient:Arch:00000:UNDI:002001"));
        }
    }
    let mut e = Event::new(ts, Detail::Dhcp(d));
    e.mac = http_event(i, 0).mac;
    e
}

/// One whole boot of machine `i` from `ts`: the events a BIOS machine booting Fedora
/// CoreOS live leaves in its timeline (the same names and sizes for every machine but
/// its MAC, group and script's query).
fn full_boot(i: u32, ts: u64) -> Vec<Event> {
    use kindling_dhcp::wire::MessageType;
    let mut out = Vec::new();
    let dhcp = |k: u64, step: DhcpStep, msg: MessageType, port: u16, ipxe: bool| {
        let mut e = dhcp_event(i, ts + k, step);
        if let Some(d) = e.dhcp_mut() {
            d.message = Some(msg.into());
            d.port = port;
            if ipxe {
                d.firmware = Some(kindling_dhcp::Firmware::Ipxe);
                d.user_class = Some(Name::new("iPXE"));
                if step == DhcpStep::Answered {
                    d.file = Some(Name::new("http://10.0.0.1:8080/boot.ipxe"));
                }
            }
        }
        e
    };
    out.push(dhcp(0, DhcpStep::Seen, MessageType::Discover, 67, false));
    out.push(dhcp(1, DhcpStep::Answered, MessageType::Offer, 0, false));
    out.push(dhcp(
        1_000,
        DhcpStep::Seen,
        MessageType::Request,
        4011,
        false,
    ));
    out.push(dhcp(1_001, DhcpStep::Answered, MessageType::Ack, 0, false));
    let mut t = Event::new(
        ts + 1_100,
        Detail::Tftp(Box::new(kindling_timeline::Tftp {
            file: "undionly.kpxe".into(),
            write: false,
            probe: false,
            bytes: 70_226,
            duration_ms: Some(84.0),
        })),
    );
    t.mac = http_event(i, 0).mac;
    t.ip = "10.0.1.17".parse().ok();
    t.stage = Some(Stage::Tftp);
    out.push(t);
    out.push(dhcp(3_000, DhcpStep::Seen, MessageType::Discover, 67, true));
    out.push(dhcp(3_001, DhcpStep::Answered, MessageType::Offer, 0, true));
    // One request of the boot: `k` ms after its start, to `endpoint`, `bytes` answered.
    let http = |k: u64, endpoint, path: &str, stage, bytes| {
        let mut e = http_event(i, 0);
        e.ts += k;
        e.ip = "10.0.1.17".parse().ok();
        e.stage = Some(stage);
        if let Some(h) = e.http_mut() {
            h.endpoint = Some(endpoint);
            h.path = path.into();
            h.bytes = bytes;
        }
        e
    };
    use kindling_timeline::Endpoint::{Assets, BootIpxe, Ignition, Ipxe};
    let asset = "/assets/fedora-coreos/fedora-coreos-43.20261115.3.0-live";
    let script = format!("/ipxe?uuid=&mac=52-54-{i:08x}&domain=&hostname=&serial=");
    out.push(http(4_000, BootIpxe, "/boot.ipxe", Stage::Script, 86));
    out.push(http(4_100, Ipxe, &script, Stage::Script, 600));
    let kernel = format!("{asset}-kernel-x86_64");
    out.push(http(4_200, Assets, &kernel, Stage::Kernel, 17_000_000));
    let initrd = format!("{asset}-initramfs.x86_64.img");
    out.push(http(6_000, Assets, &initrd, Stage::Initrd, 110_000_000));
    let rootfs = format!("{asset}-rootfs.x86_64.img");
    out.push(http(16_000, Assets, &rootfs, Stage::Rootfs, 830_000_000));
    let ignition = format!("/ignition?mac=52-54-{i:08x}");
    out.push(http(90_000, Ignition, &ignition, Stage::Ignition, 4_000));
    out
}

fn full(n: u32) {
    // What one machine's whole boot leaves: one boot of 13 events (else this is not
    // the scenario it says).
    let one = Ops::in_memory(&cfg(1));
    let evs = full_boot(7, 1_795_000_000_000);
    let count = evs.len();
    let mac = evs[0].mac.map(|m| m.to_string()).unwrap_or_default();
    evs.into_iter().for_each(|e| one.record(e));
    one.flush();
    let stored = one.machine(&mac).map(|d| {
        let last = d.timeline.last();
        let stages = last.and_then(|b| b.last_stage);
        (d.timeline.len(), last.map_or(0, |b| b.events.len()), stages)
    });
    assert_eq!(stored.map(|s| (s.0, s.1)), Some((1, count)), "{stored:?}");
    println!(
        "full: one boot of {count} events stored per machine, last stage {:?}",
        stored.and_then(|s| s.2)
    );
    one.shutdown();
    settle(one);
    let ops = Ops::in_memory(&cfg(n));
    let o = ops.clone();
    let one = move |i: u32| {
        for e in full_boot(i, 1_795_000_000_000 + u64::from(i)) {
            o.record(e);
        }
    };
    measure("full", n, ops, 0x00ff_ffff, one);
}

fn boots(n: u32) {
    const BOOTS: u64 = 5;
    let ops = Ops::in_memory(&cfg(n));
    let o = ops.clone();
    let one = move |i: u32| {
        for b in 0..BOOTS {
            let ts = 1_795_000_000_000 + u64::from(i) + b * 60_000;
            o.record(dhcp_event(i, ts, DhcpStep::Seen));
            o.record(dhcp_event(i, ts + 1, DhcpStep::Answered));
            o.record(http_event(i, b * 60_000 + 2));
        }
    };
    measure("boots", n, ops, 0x00ff_ffff, one);
}

fn journal(n: u32) {
    let dir = std::env::temp_dir().join(format!("kindling-ops-mem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = OpsConfig {
        fsync: kindling_ops::FsyncPolicy::Never,
        ..cfg(n)
    };
    let ops = Ops::open(&cfg, Some(&dir));
    let t = std::time::Instant::now();
    for i in 0..n {
        // Four distinct requests per machine (a repeat would not be journaled).
        for k in 0..4u64 {
            let mut e = http_event(i, k * 1000);
            if let Some(h) = e.http_mut() {
                h.status = 200 + k as u16;
            }
            ops.record(e);
        }
        if i % 256 == 0 {
            ops.flush();
        }
    }
    ops.flush();
    let written = t.elapsed().as_secs_f64();
    ops.shutdown();
    settle(ops);
    let size = support::dir_bytes(&dir);
    let base = reset_peak();
    let t = std::time::Instant::now();
    let ops = Ops::open(&cfg, Some(&dir));
    let replayed = t.elapsed().as_secs_f64();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let kept = LIVE.load(Ordering::Relaxed) - base;
    let machines = ops.machines().len();
    ops.shutdown();
    settle(ops);
    let events = f64::from(n) * 4.0;
    println!(
        "journal: {} events recorded, applied and journaled at {:.0} events/s; {size} bytes \
         on disk; Ops::open replays them in {replayed:.2} s ({machines} machines), peak \
         {peak} B above the store it keeps ({kept} B: peak - kept = {} B)",
        events,
        events / written,
        peak - kept
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Drops `ops` and waits for its applier thread to let go of it, so that its store is
/// freed before the next scenario counts.
fn settle(ops: std::sync::Arc<Ops>) {
    let weak = std::sync::Arc::downgrade(&ops);
    drop(ops);
    while weak.strong_count() > 0 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    http(n);
    dhcp(n);
    boots(n);
    full(n);
    journal(n);
}
