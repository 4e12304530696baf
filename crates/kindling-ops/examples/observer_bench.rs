//! Cost of the boot timeline on the proxy-DHCP path: one DISCOVER seen + one OFFER
//! answered per iteration, cycling over N machines (retries after the first round).
//!
//! ```text
//! cargo run --release -p kindling-ops --example observer_bench -- 10000 2000000
//! ```
use std::time::Instant;

use kindling_ops::{Ops, OpsConfig};

mod support;

fn main() {
    let mut args = std::env::args().skip(1);
    let machines: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let n: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let ops = Ops::in_memory(&OpsConfig::default());
    let reply = support::offer("undionly.kpxe");
    let clients: Vec<kindling_dhcp::ClientInfo> = (0..machines.max(1))
        .map(|i| support::bios_client(i, [0x52, 0x54, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]))
        .collect();
    let t = Instant::now();
    for i in 0..n {
        let c = &clients[(i % machines.max(1)) as usize];
        support::discover_offer(&*ops, c, &reply);
    }
    let el = t.elapsed();
    ops.flush();
    // The applier thread stores events while they are recorded; the flush waits for the rest.
    let all = t.elapsed().as_secs_f64();
    println!(
        "{n} exchanges over {machines} machines: {:.0} ns per exchange (seen + answered), {} machines stored; all {} events applied after {all:.2} s ({:.0} events/s)",
        el.as_nanos() as f64 / f64::from(n),
        ops.machines().len(),
        2 * u64::from(n),
        2.0 * f64::from(n) / all
    );
}
