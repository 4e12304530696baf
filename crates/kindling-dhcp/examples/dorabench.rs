//! Load generator for bench/dhcp-full/run.sh: complete DHCP exchanges (DISCOVER, OFFER,
//! REQUEST, ACK) against a full DHCP server, with a bounded number in flight; measures
//! leases per second and the latency of the whole exchange. Run it inside the client
//! namespace of the benchmark (never on a real network): it binds UDP 68 on `--iface`
//! (SO_BINDTODEVICE, needs root) and broadcasts.
//!
//! ```text
//! dorabench --iface c0 --count 20000 --window 64 --machines 10000 --label kea
//! ```
//!
//! Exchange `i` comes from machine `i mod --machines` (MAC 02:6b:64 + the 24-bit index), so
//! with COUNT = 2 x MACHINES the first half are new machines (the server allocates) and the
//! second half are the same machines booting again (the server finds their lease): both
//! phases are reported apart. Every DISCOVER and REQUEST has the broadcast flag set, so the
//! servers broadcast their replies to 255.255.255.255:68. An unanswered message is sent
//! again after `--timeout-ms`, at most `--retries` times, then the exchange counts as
//! failed; a NAK ends it (counted apart). One JSON line goes to stdout (for the script),
//! a readable summary to stderr; the exit status is 2 if two machines were ACKed the same
//! address.

#[path = "support/bench.rs"]
mod bench;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use clap::Parser;
use kindling_dhcp::mmsg::{RecvBatch, send_batch_blocking};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    iface: String,
    /// Complete exchanges (DORAs) to run.
    #[arg(long, default_value_t = 20000)]
    count: u32,
    /// Exchanges in flight at once.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Distinct client MACs (exchange i comes from machine i mod N). 0 = a new MAC for
    /// every exchange. At least --window, so one machine never has two exchanges at once.
    #[arg(long, default_value_t = 10000)]
    machines: u32,
    #[arg(long, default_value = "server")]
    label: String,
    /// Poll for replies without sleeping (one core busy) instead of blocking.
    #[arg(long)]
    spin: bool,
    /// Wait for an answer this long before sending a message again.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Retransmissions of one message before the exchange counts as failed.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Before measuring, one exchange from a MAC outside the range, retried every 250 ms
    /// for up to this long (the server is up when it answers). 0 = none.
    #[arg(long, default_value_t = 10)]
    warmup_secs: u64,
    /// Stop (and report what was done) when no exchange completes for this long (a server
    /// that fsyncs can stall for seconds on a busy disk).
    #[arg(long, default_value_t = 60)]
    give_up_secs: u64,
}

/// Offsets in a BOOTP header.
const FLAGS: usize = 10;
const YIADDR: usize = 16;
const SIADDR: usize = 20;
const XID: usize = 4;
const CHADDR: usize = 28;
const OPTIONS: usize = 240;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Offsets of option 50's and option 54's values in the REQUEST template.
const REQ_IP: usize = OPTIONS + 3 + 2;
const REQ_SERVER: usize = REQ_IP + 4 + 2;
/// Packets per `sendmmsg` (at most).
const SEND_BATCH: usize = 16;
const BASE_XID: u32 = 0x4b00_0000;
/// The warm-up exchange's machine and xid (outside the measured ones).
const WARMUP_MAC: u32 = 0xff_ffff;
const WARMUP_XID: u32 = 0x4aff_ffff;

const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;
const NAK: u8 = 6;

fn mac(m: u32) -> [u8; 6] {
    [0x02, 0x6b, 0x64, (m >> 16) as u8, (m >> 8) as u8, m as u8]
}

/// A BOOTREQUEST with the broadcast flag and these options, padded to BOOTP's 300 bytes.
fn packet(msg_type: u8, extra: &[(u8, [u8; 4])]) -> Vec<u8> {
    let mut p = vec![0u8; OPTIONS];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[FLAGS] = 0x80;
    p[236..240].copy_from_slice(&MAGIC);
    p.extend_from_slice(&[53, 1, msg_type]);
    for (code, v) in extra {
        p.extend_from_slice(&[*code, 4]);
        p.extend_from_slice(v);
    }
    // Parameter request list: subnet mask, router, DNS, lease time, server id.
    p.extend_from_slice(&[55, 5, 1, 3, 6, 51, 54, 255]);
    p.resize(p.len().max(300), 0);
    p
}

/// What the generator needs from a reply.
struct Reply {
    xid: u32,
    chaddr: [u8; 6],
    msg_type: u8,
    yiaddr: [u8; 4],
    server_id: [u8; 4],
}

fn parse(d: &[u8]) -> Option<Reply> {
    if d.len() < OPTIONS || d[0] != 2 || d[236..240] != MAGIC {
        return None;
    }
    let mut r = Reply {
        xid: u32::from_be_bytes(d[XID..XID + 4].try_into().ok()?),
        chaddr: d[CHADDR..CHADDR + 6].try_into().ok()?,
        msg_type: 0,
        yiaddr: d[YIADDR..YIADDR + 4].try_into().ok()?,
        server_id: d[SIADDR..SIADDR + 4].try_into().ok()?,
    };
    let mut i = OPTIONS;
    while i < d.len() {
        match d[i] {
            0 => i += 1,
            255 => break,
            code => {
                let len = *d.get(i + 1)? as usize;
                let v = d.get(i + 2..i + 2 + len)?;
                match (code, len) {
                    (53, 1) => r.msg_type = v[0],
                    (54, 4) => r.server_id.copy_from_slice(v),
                    _ => {}
                }
                i += 2 + len;
            }
        }
    }
    Some(r)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    NotStarted,
    Discover,
    Request,
    Done,
}

#[derive(Clone, Copy)]
struct Tx {
    stage: Stage,
    machine: u32,
    /// Sends of this exchange so far; a deadline is current when it carries the same number.
    sends: u32,
    /// Sends of the current message (1 + retransmissions).
    tries: u32,
    start_ns: u64,
    yiaddr: [u8; 4],
    server_id: [u8; 4],
}

/// One message to send: a DISCOVER, or a REQUEST for `ip` from server `server`.
#[derive(Clone, Copy)]
struct Msg {
    xid: u32,
    machine: u32,
    stage: Stage,
    ip: [u8; 4],
    server: [u8; 4],
}

/// Builds and sends batches of messages (sendmmsg).
struct Sender {
    fd: RawFd,
    discover: Vec<u8>,
    request: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    dest: SocketAddrV4,
    sent: u64,
}

impl Sender {
    fn send(&mut self, msgs: &[Msg]) -> anyhow::Result<()> {
        for chunk in msgs.chunks(SEND_BATCH) {
            for (buf, m) in self.bufs.iter_mut().zip(chunk) {
                buf.clear();
                if m.stage == Stage::Request {
                    buf.extend_from_slice(&self.request);
                    buf[REQ_IP..REQ_IP + 4].copy_from_slice(&m.ip);
                    buf[REQ_SERVER..REQ_SERVER + 4].copy_from_slice(&m.server);
                } else {
                    buf.extend_from_slice(&self.discover);
                }
                buf[XID..XID + 4].copy_from_slice(&m.xid.to_be_bytes());
                buf[CHADDR..CHADDR + 6].copy_from_slice(&mac(m.machine));
            }
            let packets: Vec<(&[u8], SocketAddrV4)> = self.bufs[..chunk.len()]
                .iter()
                .map(|p| (p.as_slice(), self.dest))
                .collect();
            let mut done = 0;
            while done < packets.len() {
                done += send_batch_blocking(self.fd, &packets[done..])?;
            }
            self.sent += chunk.len() as u64;
        }
        Ok(())
    }
}

/// Leases of one phase (new machines, or machines that already hold a lease).
#[derive(Default)]
struct Phase {
    lat_ns: Vec<u64>,
    first_send_ns: Option<u64>,
    last_ack_ns: u64,
}

impl Phase {
    fn rate(&self) -> f64 {
        match self.first_send_ns {
            Some(f) if self.last_ack_ns > f => {
                self.lat_ns.len() as f64 / ((self.last_ack_ns - f) as f64 / 1e9)
            }
            _ => f64::NAN,
        }
    }
}

/// A JSON number, or null for NaN (no data).
fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.0}")
    } else {
        "null".into()
    }
}

/// Who holds which address, from the ACKs: two machines must never hold the same one.
#[derive(Default)]
struct Holders {
    owner: HashMap<[u8; 4], u32>,
    held: HashMap<u32, [u8; 4]>,
    duplicates: u64,
    /// A machine ACKed a different address than it held before.
    moved: u64,
}

impl Holders {
    /// Records an ACK; returns whether the machine already held exactly this address.
    fn ack(&mut self, machine: u32, addr: [u8; 4]) -> bool {
        if let Some(old) = self.held.insert(machine, addr) {
            if old == addr {
                return true;
            }
            self.moved += 1;
            if self.owner.get(&old) == Some(&machine) {
                self.owner.remove(&old);
            }
        }
        if let Some(other) = self.owner.insert(addr, machine)
            && other != machine
        {
            self.duplicates += 1;
            if self.duplicates <= 5 {
                eprintln!(
                    "DUPLICATE: {} ACKed to {:02x?} while {:02x?} holds it",
                    Ipv4Addr::from(addr),
                    mac(machine),
                    mac(other)
                );
            }
        }
        false
    }
}

/// One exchange, retried every 250 ms, until the server answers: it is up.
fn warmup(sock: &UdpSocket, sender: &mut Sender, secs: u64) -> anyhow::Result<[u8; 4]> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 2048];
    let (mut stage, mut ip, mut server) = (Stage::Discover, [0; 4], [0; 4]);
    while Instant::now() < deadline {
        sender.send(&[Msg {
            xid: WARMUP_XID,
            machine: WARMUP_MAC,
            stage,
            ip,
            server,
        }])?;
        let resend = Instant::now() + Duration::from_millis(250);
        while Instant::now() < resend {
            let Ok(n) = sock.recv(&mut buf) else {
                continue;
            };
            let Some(r) = parse(&buf[..n]) else { continue };
            if r.xid != WARMUP_XID || r.chaddr != mac(WARMUP_MAC) {
                continue;
            }
            match (stage, r.msg_type) {
                (Stage::Discover, OFFER) if r.yiaddr != [0; 4] => {
                    (stage, ip, server) = (Stage::Request, r.yiaddr, r.server_id);
                    break;
                }
                (Stage::Request, ACK) => return Ok(r.yiaddr),
                (Stage::Request, NAK) => anyhow::bail!("warm-up: the server NAKed"),
                _ => {}
            }
        }
    }
    anyhow::bail!(
        "warm-up: no complete DHCP exchange within {secs} s (is a full DHCP server listening?)"
    )
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    anyhow::ensure!(a.window >= 1, "--window must be at least 1");
    anyhow::ensure!(
        a.machines == 0 || a.machines as usize >= a.window,
        "--machines must be 0 or at least --window"
    );
    anyhow::ensure!(
        a.machines < WARMUP_MAC && (a.machines != 0 || a.count < WARMUP_MAC),
        "at most {} machines",
        WARMUP_MAC - 1
    );
    let sock = bench::client_socket(&a.iface)?;
    let fd = sock.as_raw_fd();
    let mut sender = Sender {
        fd,
        discover: packet(DISCOVER, &[]),
        request: packet(REQUEST, &[(50, [0; 4]), (54, [0; 4])]),
        bufs: (0..SEND_BATCH).map(|_| Vec::with_capacity(512)).collect(),
        dest: SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
        sent: 0,
    };
    debug_assert_eq!(sender.request[REQ_IP - 2], 50);
    debug_assert_eq!(sender.request[REQ_SERVER - 2], 54);

    let mut holders = Holders::default();
    if a.warmup_secs > 0 {
        let addr = warmup(&sock, &mut sender, a.warmup_secs)?;
        holders.ack(WARMUP_MAC, addr);
        // Late answers to the warm-up's retransmissions are ignored by xid.
    }
    sender.sent = 0;

    let n = a.count as usize;
    let timeout_ns = a.timeout_ms * 1_000_000;
    let machine_of = |i: usize| match a.machines {
        0 => i as u32,
        m => i as u32 % m,
    };
    let mut tx: Vec<Tx> = (0..n)
        .map(|i| Tx {
            stage: Stage::NotStarted,
            machine: machine_of(i),
            sends: 0,
            tries: 0,
            start_ns: 0,
            yiaddr: [0; 4],
            server_id: [0; 4],
        })
        .collect();
    // The exchange each machine is in, if any (so one MAC never has two at once).
    let mut busy: HashSet<u32> = HashSet::new();
    // (deadline, exchange, send number): deadlines only grow, so a FIFO is in order; a
    // stale entry (the exchange moved on) is skipped when it comes out.
    let mut deadlines: VecDeque<(u64, usize, u32)> = VecDeque::new();
    let mut outq: Vec<Msg> = Vec::new();
    let mut offer_lat: Vec<u64> = Vec::with_capacity(n);
    let (mut new, mut known) = (Phase::default(), Phase::default());
    let (mut next, mut finished, mut naks, mut failed, mut retransmits) = (0usize, 0, 0, 0, 0);
    let (mut known_same, mut ack_mismatch, mut stray) = (0u64, 0u64, 0u64);
    let mut last_ack_ns = 0u64;
    let mut last_progress = Instant::now();
    let mut aborted = false;
    let mut rx = RecvBatch::new(64, 2048);
    let start = Instant::now();
    let now_ns = || start.elapsed().as_nanos() as u64;
    let is_known = |i: usize| a.machines != 0 && i >= a.machines as usize;

    loop {
        // Timeouts: retransmit, or give the exchange up.
        let now = now_ns();
        while let Some(&(d, i, seq)) = deadlines.front() {
            if d > now {
                break;
            }
            deadlines.pop_front();
            let t = &mut tx[i];
            if t.sends != seq || !matches!(t.stage, Stage::Discover | Stage::Request) {
                continue;
            }
            if t.tries > a.retries {
                t.stage = Stage::Done;
                busy.remove(&t.machine);
                failed += 1;
                finished += 1;
                continue;
            }
            t.tries += 1;
            t.sends += 1;
            retransmits += 1;
            deadlines.push_back((now + timeout_ns, i, t.sends));
            outq.push(Msg {
                xid: BASE_XID + i as u32,
                machine: t.machine,
                stage: t.stage,
                ip: t.yiaddr,
                server: t.server_id,
            });
        }
        // REQUESTs and retransmissions first, then new exchanges, in whole batches (or to
        // the end) so that every server gets the same offered pattern.
        let inflight = next - finished;
        let free = a.window.saturating_sub(inflight);
        if next < n && free > 0 && free >= SEND_BATCH.min(a.window).min(n - next) {
            let now = now_ns();
            for _ in 0..free.min(SEND_BATCH).min(n - next) {
                let t = &mut tx[next];
                if busy.contains(&t.machine) {
                    break; // that machine's previous exchange is still retrying
                }
                busy.insert(t.machine);
                t.stage = Stage::Discover;
                t.tries = 1;
                t.sends = 1;
                t.start_ns = now;
                deadlines.push_back((now + timeout_ns, next, 1));
                let phase = if is_known(next) { &mut known } else { &mut new };
                phase.first_send_ns.get_or_insert(now);
                outq.push(Msg {
                    xid: BASE_XID + next as u32,
                    machine: t.machine,
                    stage: Stage::Discover,
                    ip: [0; 4],
                    server: [0; 4],
                });
                next += 1;
            }
        }
        if !outq.is_empty() {
            sender.send(&outq)?;
            outq.clear();
            continue;
        }
        if finished >= n {
            break;
        }
        if last_progress.elapsed() > Duration::from_secs(a.give_up_secs) {
            aborted = true;
            break;
        }
        let got = if a.spin {
            rx.recv(fd)
        } else {
            rx.recv_wait(fd)
        };
        if got.is_err() {
            continue;
        }
        let now = now_ns();
        for d in rx.iter() {
            let Some(r) = parse(d.data) else { continue };
            let i = r.xid.wrapping_sub(BASE_XID) as usize;
            if i >= next || r.chaddr != mac(tx[i].machine) {
                stray += 1;
                continue;
            }
            let t = &mut tx[i];
            match (t.stage, r.msg_type) {
                (Stage::Discover, OFFER) if r.yiaddr != [0; 4] => {
                    offer_lat.push(now - t.start_ns);
                    t.stage = Stage::Request;
                    t.yiaddr = r.yiaddr;
                    t.server_id = r.server_id;
                    t.tries = 1;
                    t.sends += 1;
                    deadlines.push_back((now + timeout_ns, i, t.sends));
                    outq.push(Msg {
                        xid: r.xid,
                        machine: t.machine,
                        stage: Stage::Request,
                        ip: t.yiaddr,
                        server: t.server_id,
                    });
                }
                (Stage::Request, ACK) => {
                    t.stage = Stage::Done;
                    busy.remove(&t.machine);
                    finished += 1;
                    if r.yiaddr != t.yiaddr {
                        ack_mismatch += 1;
                    }
                    let same = holders.ack(t.machine, r.yiaddr);
                    let phase = if is_known(i) {
                        known_same += same as u64;
                        &mut known
                    } else {
                        &mut new
                    };
                    phase.lat_ns.push(now - t.start_ns);
                    phase.last_ack_ns = now;
                    last_ack_ns = now;
                    last_progress = Instant::now();
                }
                (Stage::Request, NAK) => {
                    t.stage = Stage::Done;
                    busy.remove(&t.machine);
                    finished += 1;
                    naks += 1;
                    last_progress = Instant::now();
                }
                // Duplicates (answers to retransmissions), proxy offers without an address.
                _ => stray += 1,
            }
        }
    }
    if aborted {
        failed += n - finished;
        eprintln!(
            "{}: no exchange completed for {} s, stopped after {finished} of {n}",
            a.label, a.give_up_secs
        );
    }

    let mut all: Vec<u64> = new.lat_ns.iter().chain(&known.lat_ns).copied().collect();
    all.sort_unstable();
    new.lat_ns.sort_unstable();
    known.lat_ns.sort_unstable();
    offer_lat.sort_unstable();
    let leases = all.len();
    let secs = last_ack_ns as f64 / 1e9;
    let lps = if secs > 0.0 {
        leases as f64 / secs
    } else {
        f64::NAN
    };
    let distinct = holders.owner.len() - usize::from(a.warmup_secs > 0);
    // Every figure once, as the JSON numbers both lines print.
    let q = |v: &[u64], p| num(bench::pct(v, p));
    let (p50, p99, max) = (q(&all, 0.50), q(&all, 0.99), q(&all, 1.0));
    let (offer_p50, offer_p99) = (q(&offer_lat, 0.50), q(&offer_lat, 0.99));
    let (new_p50, new_p99) = (q(&new.lat_ns, 0.50), q(&new.lat_ns, 0.99));
    let (known_p50, known_p99) = (q(&known.lat_ns, 0.50), q(&known.lat_ns, 0.99));
    let (lps, new_lps, known_lps) = (num(lps), num(new.rate()), num(known.rate()));
    let (new_n, known_n) = (new.lat_ns.len(), known.lat_ns.len());
    let (dups, moved) = (holders.duplicates, holders.moved);
    println!(
        "{{\"label\":\"{}\",\"count\":{n},\"machines\":{},\"window\":{},\"leases\":{leases},\"naks\":{naks},\"failed\":{failed},\"retransmits\":{retransmits},\"stray\":{stray},\"secs\":{secs:.3},\"lps\":{lps},\"p50_us\":{p50},\"p99_us\":{p99},\"max_us\":{max},\"offer_p50_us\":{offer_p50},\"offer_p99_us\":{offer_p99},\"new_leases\":{new_n},\"new_lps\":{new_lps},\"new_p50_us\":{new_p50},\"new_p99_us\":{new_p99},\"known_leases\":{known_n},\"known_lps\":{known_lps},\"known_p50_us\":{known_p50},\"known_p99_us\":{known_p99},\"known_same_addr\":{known_same},\"distinct_addrs\":{distinct},\"duplicates\":{dups},\"moved\":{moved},\"ack_mismatch\":{ack_mismatch},\"aborted\":{aborted}}}",
        a.label, a.machines, a.window,
    );
    eprintln!(
        "{}: {leases}/{n} leases in {secs:.2} s = {lps} leases/s; DORA p50 {p50} us, p99 {p99} us, max {max} us; \
         OFFER p99 {offer_p99} us; new machines {new_lps} leases/s (p99 {new_p99} us), known machines {known_lps} leases/s \
         (p99 {known_p99} us, {known_same}/{known_n} kept their address); naks {naks}, failed {failed}, \
         retransmits {retransmits}; distinct addresses {distinct}; duplicate addresses: {dups}",
        a.label,
    );
    if holders.duplicates > 0 {
        std::process::exit(2);
    }
    Ok(())
}
