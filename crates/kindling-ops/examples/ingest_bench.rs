//! How many events per second the operator view takes (store + journal), and what one
//! observer call costs. Run: `cargo run --release -p kindling-ops --example ingest_bench`.

use std::time::Instant;

use kindling_ops::{Ops, OpsConfig};
use kindling_timeline::{Event, Stage};

mod support;

fn main() {
    let dir = std::env::temp_dir().join(format!("kindling-ops-bench-{}", std::process::id()));
    let cfg = OpsConfig {
        neighbour_lookup: false,
        ..OpsConfig::default()
    };
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    for (label, journal) in [("memory only", None), ("with journal", Some(dir.as_path()))] {
        let ops = Ops::open(&cfg, journal);
        let t = Instant::now();
        for i in 0..n {
            let m = i % 1000;
            let mut e = Event::http_request(
                1_700_000_000_000 + i,
                "GET",
                "/assets/vmlinuz",
                kindling_timeline::Endpoint::Assets,
                200,
            );
            e.mac = kindling_model::MacAddr::parse(&format!(
                "52:54:00:00:{:02x}:{:02x}",
                m / 256,
                m % 256
            ))
            .ok();
            e.ip = format!("10.1.{}.{}", m / 256, m % 256).parse().ok();
            if let Some(h) = e.http_mut() {
                h.bytes = 8_000_000;
            }
            e.stage = Some(Stage::Kernel);
            ops.record(e);
        }
        ops.flush();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{label}: {n} events for 1000 machines in {secs:.2} s = {:.0} events/s ({:.2} us/event)",
            n as f64 / secs,
            secs * 1e6 / n as f64
        );
        let dropped = ops
            .metrics_text()
            .lines()
            .find(|l| l.starts_with("kindling_journal_dropped_total "))
            .map(str::to_string)
            .unwrap_or_default();
        println!("  {dropped}");
        ops.shutdown();
    }
    let size = support::dir_bytes(&dir);
    println!("journal on disk: {size} bytes (cap 4 x 8 MiB)");
    let t = Instant::now();
    let ops = Ops::open(&cfg, Some(&dir));
    println!(
        "start-up read-back of that journal: {:.2} s, {} machines",
        t.elapsed().as_secs_f64(),
        ops.machines().len()
    );
    ops.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
