//! Load generator for bench/dhcp/run.sh: sends PXE DISCOVERs (BIOS, arch 0) with a bounded
//! number in flight and measures proxy replies per second and latency percentiles.
//! Run it inside the client namespace of the benchmark (never on a real network).
//!
//! ```text
//! dhcpbench --iface c0 --count 20000 --window 32 --label kindling
//! ```

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use dhcproto::v4::{self, DhcpOption};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

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
}

const BASE_XID: u32 = 0x6b00_0000;

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
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(a.iface.as_bytes()))?;
    s.set_recv_buffer_size(4 << 20)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68)).into())?;
    let sock: UdpSocket = s.into();
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let rx = sock.try_clone()?;

    let n = a.count as usize;
    let start = Instant::now();
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let lat: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(u64::MAX)).collect());
    let received = Arc::new(AtomicU64::new(0));
    let last_ns = Arc::new(AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let receiver = {
        let (sent_at, lat, received, done, last_ns) = (
            sent_at.clone(),
            lat.clone(),
            received.clone(),
            done.clone(),
            last_ns.clone(),
        );
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut last = Instant::now();
            loop {
                match rx.recv_from(&mut buf) {
                    Ok((len, _)) => {
                        let Ok(msg) = v4::Message::decode(&mut Decoder::new(&buf[..len])) else {
                            continue;
                        };
                        let idx = msg.xid().wrapping_sub(BASE_XID) as usize;
                        if msg.opcode() != v4::Opcode::BootReply || idx >= lat.len() {
                            continue;
                        }
                        let now = start.elapsed().as_nanos() as u64;
                        let sent = sent_at[idx].load(Ordering::Acquire);
                        if lat[idx]
                            .compare_exchange(
                                u64::MAX,
                                now.saturating_sub(sent),
                                Ordering::AcqRel,
                                Ordering::Relaxed,
                            )
                            .is_ok()
                        {
                            received.fetch_add(1, Ordering::AcqRel);
                            last_ns.store(now, Ordering::Release);
                        }
                        last = Instant::now();
                    }
                    Err(_) => {
                        if done.load(Ordering::Acquire)
                            && last.elapsed() > Duration::from_millis(500)
                        {
                            return;
                        }
                    }
                }
            }
        })
    };

    let dest = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let mut stall_since: Option<Instant> = None;
    let mut i = 0usize;
    let mut skipped = 0u64;
    while i < n {
        let inflight = i as u64 - received.load(Ordering::Acquire) - skipped;
        if inflight >= a.window {
            let t = *stall_since.get_or_insert_with(Instant::now);
            if t.elapsed() > Duration::from_millis(100) {
                // Give up on the oldest outstanding one (lost) and move on.
                skipped += 1;
                stall_since = None;
            } else {
                std::thread::yield_now();
            }
            continue;
        }
        stall_since = None;
        let pkt = discover(BASE_XID + i as u32);
        sent_at[i].store(start.elapsed().as_nanos() as u64, Ordering::Release);
        sock.send_to(&pkt, dest)?;
        i += 1;
    }
    // Wait for the tail.
    let tail = Instant::now();
    while (received.load(Ordering::Acquire) as usize) < n && tail.elapsed() < Duration::from_secs(2)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = last_ns.load(Ordering::Acquire) as f64 / 1e9;
    done.store(true, Ordering::Release);
    let _ = receiver.join();
    let mut l: Vec<u64> = lat
        .iter()
        .map(|x| x.load(Ordering::Acquire))
        .filter(|x| *x != u64::MAX)
        .collect();
    l.sort_unstable();
    let pct = |p: f64| -> f64 {
        if l.is_empty() {
            return f64::NAN;
        }
        let idx = ((l.len() as f64 - 1.0) * p).round() as usize;
        l[idx.min(l.len() - 1)] as f64 / 1000.0
    };
    let got = l.len();
    println!(
        "{{\"label\":\"{}\",\"sent\":{n},\"replies\":{got},\"lost\":{},\"secs\":{elapsed:.3},\"rps\":{:.0},\"p50_us\":{:.0},\"p99_us\":{:.0}}}",
        a.label,
        n - got,
        got as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}
