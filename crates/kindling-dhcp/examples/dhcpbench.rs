//! Load generator for bench/dhcp/run.sh: sends PXE DISCOVERs (BIOS, arch 0) with a bounded
//! number in flight and measures proxy replies per second and latency percentiles.
//! Run it inside the client namespace of the benchmark (never on a real network).
//!
//! ```text
//! dhcpbench --iface c0 --count 20000 --window 32 --label kindling
//! ```

#[path = "support/bench.rs"]
mod bench;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use clap::Parser;
use dhcproto::v4::{self, DhcpOption};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use kindling_dhcp::mmsg::{RecvBatch, send_batch_blocking};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    iface: String,
    #[arg(long, default_value_t = 20000)]
    count: u32,
    #[arg(long, default_value_t = 32)]
    window: u64,
    #[arg(long, default_value = "server")]
    label: String,
    /// Distinct client MACs (request i comes from machine i mod N): a boot storm of N
    /// machines, each retrying. 0 = a new MAC for every request (worst case for the
    /// server's per-machine bookkeeping).
    #[arg(long, default_value_t = 10000)]
    machines: u32,
    /// Poll for replies without sleeping (one core busy) instead of blocking.
    #[arg(long)]
    spin: bool,
    /// Offer at most this many DISCOVERs per second (paced; polls for replies while
    /// waiting). 0: as fast as the window allows. Latency at a fixed rate (e.g. another
    /// server's maximum) is the tail a storm of that size sees.
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

const BASE_XID: u32 = 0x6b00_0000;
/// Offsets of `xid` and `chaddr` in a BOOTP header.
const XID: usize = 4;
const CHADDR: usize = 28;
/// DISCOVERs per `sendmmsg` (at most; never more than the window allows).
const SEND_BATCH: usize = 16;

fn discover(xid: u32) -> Vec<u8> {
    let mac = [
        0x52,
        0x54,
        0x00,
        (xid >> 16) as u8,
        (xid >> 8) as u8,
        xid as u8,
    ];
    let mut m = v4::Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac,
    );
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(v4::MessageType::Discover));
    o.insert(DhcpOption::ClassIdentifier(
        b"PXEClient:Arch:00000:UNDI:002001".to_vec(),
    ));
    o.insert(DhcpOption::ClientSystemArchitecture(
        v4::Architecture::from(0u16),
    ));
    o.insert(DhcpOption::ClientNetworkInterface(1, 2, 1));
    o.insert(DhcpOption::ClientMachineIdentifier(vec![0; 17]));
    let mut out = Vec::new();
    m.encode(&mut Encoder::new(&mut out)).expect("encode");
    out
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let sock = bench::client_socket(&a.iface)?;
    let fd = sock.as_raw_fd();

    // One thread does both sides (send what the window allows, then block for replies), so
    // the generator itself adds no cross-thread wake-ups to the round trip it measures.
    let n = a.count as usize;
    let start = Instant::now();
    let mut sent_at = vec![0u64; n];
    let mut lat = vec![u64::MAX; n];
    let (mut i, mut received, mut skipped) = (0usize, 0usize, 0usize);
    let mut last_reply_ns = 0u64;
    let mut last_progress = Instant::now();
    let dest = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let template = discover(BASE_XID);
    let mut out = vec![template; SEND_BATCH];
    let mut rx = RecvBatch::new(64, 2048);
    loop {
        let inflight = i.saturating_sub(received + skipped);
        let free = (a.window as usize).saturating_sub(inflight);
        // Refill in whole batches (or to the end): one sendmmsg per SEND_BATCH replies,
        // whatever the server's own batching, so each server gets the same offered pattern.
        // Paced: request i may leave at i / rate seconds.
        let due = a.rate == 0
            || start.elapsed().as_nanos() as u64
                >= (i as u64).saturating_mul(1_000_000_000) / a.rate;
        if due && i < n && free >= SEND_BATCH.min(a.window as usize).min(n - i) && free > 0 {
            // Up to SEND_BATCH DISCOVERs per sendmmsg: each is the template with its own xid
            // and MAC patched in.
            let k = free.min(SEND_BATCH).min(n - i);
            for (j, pkt) in out.iter_mut().take(k).enumerate() {
                let xid = BASE_XID + (i + j) as u32;
                pkt[XID..XID + 4].copy_from_slice(&xid.to_be_bytes());
                let machine = match a.machines {
                    0 => (i + j) as u32,
                    m => (i + j) as u32 % m,
                };
                pkt[CHADDR + 3..CHADDR + 6].copy_from_slice(&machine.to_be_bytes()[1..]);
            }
            let now = start.elapsed().as_nanos() as u64;
            sent_at[i..i + k].fill(now);
            let packets: Vec<(&[u8], SocketAddrV4)> =
                out[..k].iter().map(|p| (p.as_slice(), dest)).collect();
            i += send_batch_blocking(fd, &packets)?;
            continue;
        }
        if received + skipped >= n {
            break;
        }
        let got = if a.spin || a.rate > 0 {
            rx.recv(fd)
        } else {
            rx.recv_wait(fd)
        };
        match got {
            Ok(_) => {
                let now = start.elapsed().as_nanos() as u64;
                for d in rx.iter() {
                    let Ok(msg) = v4::Message::decode(&mut Decoder::new(d.data)) else {
                        continue;
                    };
                    let idx = msg.xid().wrapping_sub(BASE_XID) as usize;
                    if msg.opcode() != v4::Opcode::BootReply || idx >= i || lat[idx] != u64::MAX {
                        continue;
                    }
                    lat[idx] = now.saturating_sub(sent_at[idx]);
                    received += 1;
                    last_reply_ns = now;
                    last_progress = Instant::now();
                }
            }
            Err(_) if i < n => {
                // Nothing for 100 ms with a full window: count the oldest as lost, move on.
                if inflight > 0 && last_progress.elapsed() > Duration::from_millis(100) {
                    skipped += 1;
                    last_progress = Instant::now();
                }
            }
            Err(_) => {
                // Everything sent; stop once the stragglers have had 500 ms.
                if last_progress.elapsed() > Duration::from_millis(500) {
                    break;
                }
            }
        }
    }
    let elapsed = last_reply_ns as f64 / 1e9;
    let mut l: Vec<u64> = lat.into_iter().filter(|x| *x != u64::MAX).collect();
    l.sort_unstable();
    let pct = |p: f64| bench::pct(&l, p);
    let got = l.len();
    println!(
        "{{\"label\":\"{}\",\"sent\":{n},\"replies\":{got},\"lost\":{},\"secs\":{elapsed:.3},\"rps\":{:.0},\"p50_us\":{:.0},\"p90_us\":{:.0},\"p99_us\":{:.0},\"p999_us\":{:.0}}}",
        a.label,
        n - got,
        got as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999)
    );
    Ok(())
}
