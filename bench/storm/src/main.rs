//! Boot storm: N simulated machines power on at once and each does what BIOS PXE firmware
//! and then iPXE do, against one boot server (issue 20, target 3):
//!
//! DHCP DISCOVER -> proxy OFFER, REQUEST on port 4011 -> ACK, TFTP of the boot file,
//! GET /boot.ipxe, GET /ipxe?..., the kernel and initrd of the script, GET /ignition?mac=.
//!
//! Each stage is timed per machine; the summary gives the storm time (until the last machine
//! has its Ignition), end-to-end and per-stage p50/p99, retries and failures, then one JSON
//! line. Run it inside a network namespace (bench/storm/run.sh), never on a real network.

mod dhcp;
mod http;
mod tftp;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::net::UdpSocket;
use tokio::time::timeout_at;

/// A DHCP request (DISCOVER, and the port-4011 REQUEST) is sent again after 1, 2, 4, 8, 16
/// s of silence, and abandoned 32 s after the sixth: about the minute a PXE ROM tries
/// (ROMs start at 4 s; 1 s here, so that a loss costs what it costs a modern client).
const DHCP_WAITS: [u64; 6] = [1, 2, 4, 8, 16, 32];
const HTTP_ATTEMPTS: u32 = 4;
const STAGES: [&str; 8] = [
    "dhcp_offer",
    "pxe_ack",
    "tftp",
    "boot_ipxe",
    "ipxe_script",
    "kernel",
    "initrd",
    "ignition",
];

#[derive(Parser, Clone)]
#[command(
    name = "storm",
    about = "Boot-storm benchmark: N PXE + iPXE machines at once"
)]
struct Args {
    /// Interface the DHCP broadcasts go out of (and replies come in on).
    #[arg(long, default_value = "c0")]
    iface: String,
    /// The boot server's address (proxy DHCP 4011 and TFTP when the replies name none,
    /// and the HTTP server of /boot.ipxe).
    #[arg(long, default_value = "192.168.78.1")]
    server: Ipv4Addr,
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// Simulated machines.
    #[arg(long, short = 'n', default_value_t = 100)]
    machines: u32,
    /// Address of machine 0; machine i has the i-th address from there whose last octet is
    /// neither 0 nor 255 (as if the site's DHCP server had given it). They must be on the
    /// client interface (`--print-machines` lists them).
    #[arg(long, default_value = "192.168.100.1")]
    first_ip: Ipv4Addr,
    /// Start the machines evenly over this many seconds (0: all at once, a power cut).
    #[arg(long, default_value_t = 0.0)]
    ramp_secs: f64,
    /// Machines that are not done after this many seconds count as failed.
    #[arg(long, default_value_t = 900)]
    deadline_secs: u64,
    /// Name of the server in the output.
    #[arg(long, default_value = "server")]
    label: String,
    /// Stage by stage: every machine does a stage at the same instant, the next stage
    /// starts when all are done with it (each server meets N machines at once at every
    /// stage; `--ramp-secs` is ignored).
    #[arg(long)]
    lockstep: bool,
    /// The largest TCP window each HTTP connection advertises, in KiB, as iPXE's TCP keeps
    /// it: at most 256 KiB (a receive buffer of that size: `SO_RCVBUF` asks half). 0: the
    /// kernel's autotuning (up to `net.ipv4.tcp_rmem`'s maximum, 32 MiB here: a thousand
    /// such sockets in one kernel share its TCP memory with the servers' send buffers, which
    /// real machines do not).
    #[arg(long, default_value_t = http::IPXE_WINDOW_KIB)]
    window_kib: u32,
    /// Copy kernels and initrds into the tool's memory as they arrive. By default the kernel
    /// drops them on receipt (`MSG_TRUNC`): real machines copy on their own CPUs, while
    /// here every simulated machine shares the server's CPUs, and copying 50 GB cost the
    /// tool more CPU than the server spent sending it.
    #[arg(long)]
    copy_bodies: bool,
    /// Print "MAC IP" of every machine and exit (for the data directory and addresses).
    #[arg(long)]
    print_machines: bool,
}

impl Args {
    fn receive(&self) -> http::Receive {
        http::Receive {
            window_kib: self.window_kib,
            copy_bodies: self.copy_bodies,
        }
    }
}

/// Machine i's MAC: 52:54:00 then i + 1 on 24 bits.
fn mac_of(i: u32) -> [u8; 6] {
    let b = (i + 1).to_be_bytes();
    [0x52, 0x54, 0x00, b[1], b[2], b[3]]
}

fn ip_of(first: Ipv4Addr, i: u32) -> Ipv4Addr {
    let mut a = u32::from(first);
    let mut left = i;
    loop {
        if !matches!(a & 0xff, 0 | 255) {
            if left == 0 {
                return Ipv4Addr::from(a);
            }
            left -= 1;
        }
        a += 1;
    }
}

fn hex(mac: &[u8; 6], sep: &str) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(sep)
}

#[derive(Default)]
struct Counters {
    dhcp_retries: AtomicU64,
    pxe_retries: AtomicU64,
    tftp_retries: AtomicU64,
    tftp_errors: AtomicU64,
    http_retries: AtomicU64,
    bytes: AtomicU64,
}

struct Machine {
    i: u32,
    ip: Ipv4Addr,
    client: dhcp::Client,
}

type StageResult<T> = Result<T, (usize, String)>;

/// DHCP DISCOVER -> OFFER from the proxy (option 60 PXEClient).
async fn dhcp_offer(
    m: &Machine,
    bc: &dhcp::Broadcast,
    c: &Counters,
) -> Result<dhcp::Reply, String> {
    let fail = |e: String| e;
    let mut rx = bc.register(m.client.xid);
    let pkt = dhcp::encode(&m.client, dhcp::DISCOVER, Ipv4Addr::UNSPECIFIED, None);
    let mut res = Err(fail("no PXE offer after 6 DISCOVERs".into()));
    'send: for (k, wait) in DHCP_WAITS.iter().enumerate() {
        if k > 0 {
            c.dhcp_retries.fetch_add(1, Relaxed);
        }
        bc.send(&pkt)
            .map_err(|e| fail(format!("send DISCOVER: {e}")))?;
        let until = tokio::time::Instant::now() + Duration::from_secs(*wait);
        while let Ok(Some(r)) = timeout_at(until, rx.recv()).await {
            if r.msg_type == dhcp::OFFER && r.is_pxe() && r.mac == m.client.mac {
                res = Ok(r);
                break 'send;
            }
        }
    }
    bc.unregister(m.client.xid);
    res
}

/// REQUEST to port 4011 from the machine's address -> ACK with the boot file.
async fn pxe_ack(
    m: &Machine,
    server: Ipv4Addr,
    offer: &dhcp::Reply,
    c: &Counters,
) -> Result<dhcp::Reply, String> {
    let fail = |e: String| e;
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .map_err(|e| fail(e.to_string()))?;
    s.set_reuse_address(true).map_err(|e| fail(e.to_string()))?;
    s.set_nonblocking(true).map_err(|e| fail(e.to_string()))?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(m.ip, dhcp::CLIENT_PORT)).into())
        .map_err(|e| fail(format!("bind {}:68: {e}", m.ip)))?;
    let sock = UdpSocket::from_std(s.into()).map_err(|e| fail(e.to_string()))?;
    let pkt = dhcp::encode(&m.client, dhcp::REQUEST, m.ip, offer.boot_item);
    let to = SocketAddrV4::new(server, dhcp::PXE_PORT);
    let mut buf = vec![0u8; 2048];
    for (k, wait) in DHCP_WAITS.iter().enumerate() {
        if k > 0 {
            c.pxe_retries.fetch_add(1, Relaxed);
        }
        sock.send_to(&pkt, to)
            .await
            .map_err(|e| fail(format!("send: {e}")))?;
        let until = tokio::time::Instant::now() + Duration::from_secs(*wait);
        while let Ok(Ok(n)) = timeout_at(until, sock.recv(&mut buf)).await {
            match dhcp::parse(&buf[..n]) {
                Some(r) if r.xid == m.client.xid && r.msg_type == dhcp::ACK => return Ok(r),
                _ => {}
            }
        }
    }
    Err(fail("no ACK on port 4011 after 6 REQUESTs".into()))
}

/// GET with iPXE's single keep-alive connection per server; a failed request is tried
/// again on a new connection after 1 s (counted as an HTTP retry).
async fn get(
    m: &Machine,
    conns: &mut Vec<http::Conn>,
    url: &http::Url,
    keep: bool,
    c: &Counters,
    rx: http::Receive,
) -> Result<http::Response, String> {
    let mut last = String::new();
    for attempt in 0..HTTP_ATTEMPTS {
        if attempt > 0 {
            c.http_retries.fetch_add(1, Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let pos = conns.iter().position(|k| k.authority() == url.authority);
        let mut conn = match pos {
            Some(p) => conns.swap_remove(p),
            None => match http::Conn::open(m.ip, &url.authority, rx).await {
                Ok(k) => k,
                Err(e) => {
                    last = format!("connect {}: {e}", url.authority);
                    continue;
                }
            },
        };
        match conn.get(&url.path, keep).await {
            Ok(r) if r.status == 200 => {
                c.bytes.fetch_add(r.length, Relaxed);
                if conn.reusable() {
                    conns.push(conn);
                }
                return Ok(r);
            }
            Ok(r) => return Err(format!("GET {}: status {}", url.path, r.status)),
            Err(e) => last = format!("GET {}: {e}", url.path),
        }
    }
    Err(last)
}

/// The boot server's `/boot.ipxe`, where every machine's HTTP starts.
fn base(a: &Args) -> http::Url {
    http::Url {
        authority: format!("{}:{}", a.server, a.http_port),
        path: "/boot.ipxe".into(),
    }
}

/// What one machine has learnt so far: the next stage's input.
struct Boot {
    m: Machine,
    offer: Option<dhcp::Reply>,
    ack: Option<dhcp::Reply>,
    /// iPXE's keep-alive connections, one per server.
    conns: Vec<http::Conn>,
    script_url: Option<http::Url>,
    script: Option<http::Script>,
    /// Each HTTP stage's time to first byte (its first request's).
    first_byte: [Option<Duration>; 8],
}

impl Boot {
    fn new(m: Machine) -> Boot {
        Boot {
            m,
            offer: None,
            ack: None,
            conns: Vec::new(),
            script_url: None,
            script: None,
            first_byte: [None; 8],
        }
    }

    /// Stage `k` ([`STAGES`]) of this machine's boot.
    async fn step(
        &mut self,
        k: usize,
        a: &Args,
        bc: &dhcp::Broadcast,
        c: &Counters,
    ) -> Result<(), String> {
        let m = &self.m;
        let mac = hex(&m.client.mac, "-");
        let learnt = |what: &str| format!("no {what} from the stage before");
        match k {
            0 => self.offer = Some(dhcp_offer(m, bc, c).await?),
            1 => {
                let offer = self.offer.as_ref().ok_or_else(|| learnt("offer"))?;
                self.ack = Some(pxe_ack(m, a.server, offer, c).await?);
            }
            2 => {
                let (offer, ack) = self
                    .offer
                    .as_ref()
                    .zip(self.ack.as_ref())
                    .ok_or_else(|| learnt("ACK"))?;
                let file = if ack.file.is_empty() {
                    &offer.file
                } else {
                    &ack.file
                };
                let next = [ack.siaddr, offer.siaddr]
                    .into_iter()
                    .find(|s| !s.is_unspecified())
                    .unwrap_or(a.server);
                let sock = UdpSocket::bind(SocketAddrV4::new(m.ip, 0))
                    .await
                    .map_err(|e| e.to_string())?;
                let got = tftp::fetch(&sock, SocketAddrV4::new(next, 69), file)
                    .await
                    .map_err(|e| format!("{file}: {e}"))?;
                c.tftp_retries.fetch_add(got.retries.into(), Relaxed);
                c.tftp_errors.fetch_add(got.errors.into(), Relaxed);
            }
            3 => {
                let r = get(m, &mut self.conns, &base(a), true, c, a.receive()).await?;
                self.first_byte[k] = Some(r.first_byte);
            }
            4 => {
                // What matchbox's /boot.ipxe chains to, with iPXE's expansions.
                let uuid = hex_uuid(&m.client.uuid);
                let url = http::Url::resolve(
                    &base(a),
                    &format!("/ipxe?uuid={uuid}&mac={mac}&domain=&hostname=&serial="),
                );
                let r = get(m, &mut self.conns, &url, true, c, a.receive()).await?;
                self.first_byte[k] = Some(r.first_byte);
                self.script = Some(http::parse_script(&String::from_utf8_lossy(&r.body)));
                self.script_url = Some(url);
            }
            5 | 6 => {
                let (script, url) = self
                    .script
                    .as_ref()
                    .zip(self.script_url.as_ref())
                    .ok_or_else(|| learnt("script"))?;
                let files = if k == 5 {
                    script.kernel.iter().cloned().collect::<Vec<_>>()
                } else {
                    script.initrds.clone()
                };
                if files.is_empty() {
                    return Err(format!(
                        "the script has no {} line",
                        if k == 5 { "kernel" } else { "initrd" }
                    ));
                }
                for f in &files {
                    let r = get(
                        m,
                        &mut self.conns,
                        &http::Url::resolve(url, f),
                        false,
                        c,
                        a.receive(),
                    )
                    .await?;
                    self.first_byte[k].get_or_insert(r.first_byte);
                }
            }
            _ => {
                let ign = http::Url::resolve(&base(a), &format!("/ignition?mac={mac}"));
                let r = get(m, &mut self.conns, &ign, true, c, a.receive()).await?;
                self.first_byte[k] = Some(r.first_byte);
                if r.body.first() != Some(&b'{') {
                    return Err("the Ignition config is not JSON".into());
                }
            }
        }
        Ok(())
    }
}

/// What one machine's boot took: every stage, and each HTTP stage's time to first byte.
struct Timing {
    stage: [Duration; 8],
    first_byte: [Option<Duration>; 8],
}

/// One machine's whole boot, stage after stage; the duration of every stage.
async fn boot(
    m: Machine,
    a: Arc<Args>,
    bc: Arc<dhcp::Broadcast>,
    c: Arc<Counters>,
) -> StageResult<Timing> {
    let mut b = Boot::new(m);
    let mut t = [Duration::ZERO; 8];
    for (k, t) in t.iter_mut().enumerate() {
        let clock = Instant::now();
        b.step(k, &a, &bc, &c).await.map_err(|e| (k, e))?;
        *t = clock.elapsed();
    }
    Ok(Timing {
        stage: t,
        first_byte: b.first_byte,
    })
}

/// `--lockstep`: every machine does stage k, all at once, and the next stage starts when
/// the last machine is done with it. Each stage then meets every server with all N
/// machines at the same instant, whatever the stages before did to spread them out.
/// Per machine: (start, end, the duration of every stage or the stage that failed).
async fn lockstep(
    machines: Vec<Machine>,
    a: &Arc<Args>,
    bc: &Arc<dhcp::Broadcast>,
    c: &Arc<Counters>,
    deadline: tokio::time::Instant,
) -> Vec<(Instant, Instant, StageResult<Timing>)> {
    let t0 = Instant::now();
    let mut alive: Vec<(Boot, [Duration; 8])> = machines
        .into_iter()
        .map(|m| (Boot::new(m), [Duration::ZERO; 8]))
        .collect();
    let mut out = Vec::new();
    for k in 0..STAGES.len() {
        let tasks: Vec<_> = alive
            .drain(..)
            .map(|(mut b, mut t)| {
                let (a, bc, c) = (a.clone(), bc.clone(), c.clone());
                tokio::spawn(async move {
                    let clock = Instant::now();
                    let r = match timeout_at(deadline, b.step(k, &a, &bc, &c)).await {
                        Ok(r) => r.map_err(|e| (k, e)),
                        Err(_) => Err((usize::MAX, "deadline".to_string())),
                    };
                    t[k] = clock.elapsed();
                    (b, t, r)
                })
            })
            .collect();
        for task in tasks {
            let (b, t, r) = task.await.expect("machine task");
            match r {
                Ok(()) => alive.push((b, t)),
                Err(e) => out.push((t0, Instant::now(), Err(e))),
            }
        }
    }
    let end = Instant::now();
    out.extend(alive.into_iter().map(|(b, t)| {
        let timing = Timing {
            stage: t,
            first_byte: b.first_byte,
        };
        (t0, end, Ok(timing))
    }));
    out
}

fn hex_uuid(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Nearest-rank percentile of sorted seconds.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

fn raise_nofile() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let a = Arc::new(Args::parse());
    let machines = (0..a.machines).map(|i| Machine {
        i,
        ip: ip_of(a.first_ip, i),
        client: dhcp::Client {
            xid: 0x5354_0000 ^ (i + 1),
            mac: mac_of(i),
            uuid: {
                let mut u = [0x4b; 16];
                u[12..].copy_from_slice(&(i + 1).to_be_bytes());
                u
            },
        },
    });
    if a.print_machines {
        for m in machines {
            println!("{} {}", hex(&m.client.mac, ":"), m.ip);
        }
        return Ok(());
    }
    raise_nofile();
    let bc = dhcp::Broadcast::open(&a.iface)?;
    let c = Arc::new(Counters::default());
    let n = a.machines;
    let t0 = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.deadline_secs);
    let results = if a.lockstep {
        lockstep(machines.collect(), &a, &bc, &c, deadline).await
    } else {
        let mut tasks = Vec::new();
        for m in machines {
            let (a2, bc, c) = (a.clone(), bc.clone(), c.clone());
            let delay = Duration::from_secs_f64(a.ramp_secs * f64::from(m.i) / f64::from(n.max(1)));
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let start = Instant::now();
                let r = match timeout_at(deadline, boot(m, a2, bc, c)).await {
                    Ok(r) => r,
                    Err(_) => Err((usize::MAX, "deadline".into())),
                };
                (start, Instant::now(), r)
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("machine task"));
        }
        results
    };
    let mut stage: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
    let mut first_byte: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
    let (mut e2e, mut ends) = (Vec::new(), Vec::new());
    let mut failures: std::collections::BTreeMap<String, u32> = Default::default();
    for (start, end, r) in results {
        match r {
            Ok(d) => {
                for (k, x) in d.stage.iter().enumerate() {
                    stage[k].push(x.as_secs_f64());
                }
                for (k, x) in d.first_byte.iter().enumerate() {
                    first_byte[k].extend(x.map(|x| x.as_secs_f64()));
                }
                e2e.push((end - start).as_secs_f64());
                ends.push((end - t0).as_secs_f64());
            }
            Err((k, e)) => {
                let name = STAGES.get(k).copied().unwrap_or("deadline");
                if failures.values().sum::<u32>() < 5 {
                    eprintln!("machine failed at {name}: {e}");
                }
                *failures.entry(name.to_string()).or_default() += 1;
            }
        }
    }
    for v in stage
        .iter_mut()
        .chain(first_byte.iter_mut())
        .chain([&mut e2e, &mut ends])
    {
        v.sort_by(f64::total_cmp);
    }
    let ok = e2e.len();
    let storm = ends.last().copied().unwrap_or(f64::NAN);
    let load = |x: &AtomicU64| x.load(Relaxed);

    println!(
        "{}: {ok}/{n} machines got their Ignition; storm time {storm:.2} s ({}); {:.2} GB moved over HTTP",
        a.label,
        if ok as u32 == n {
            "all done"
        } else {
            "the last success; NOT all machines booted"
        },
        load(&c.bytes) as f64 / 1e9
    );
    println!(
        "per machine end to end: p50 {:.3} s, p99 {:.3} s",
        pct(&e2e, 0.5),
        pct(&e2e, 0.99)
    );
    println!(
        "{:<12} {:>9} {:>9} {:>13} {:>13}",
        "stage", "p50 s", "p99 s", "1st byte p50", "1st byte p99"
    );
    for (k, name) in STAGES.iter().enumerate() {
        let fb = |q| {
            if first_byte[k].is_empty() {
                String::new()
            } else {
                format!("{:.4}", pct(&first_byte[k], q))
            }
        };
        println!(
            "{name:<12} {:>9.4} {:>9.4} {:>13} {:>13}",
            pct(&stage[k], 0.5),
            pct(&stage[k], 0.99),
            fb(0.5),
            fb(0.99)
        );
    }
    println!(
        "retries: dhcp {}, pxe 4011 {}, tftp {} (+{} transfers refused and restarted), http {}; failures: {failures:?}",
        load(&c.dhcp_retries),
        load(&c.pxe_retries),
        load(&c.tftp_retries),
        load(&c.tftp_errors),
        load(&c.http_retries)
    );
    let mut stages = serde_json::Map::new();
    for (k, name) in STAGES.iter().enumerate() {
        let mut j = serde_json::json!({"p50": pct(&stage[k], 0.5), "p99": pct(&stage[k], 0.99)});
        if !first_byte[k].is_empty() {
            j["first_byte_p50"] = pct(&first_byte[k], 0.5).into();
            j["first_byte_p99"] = pct(&first_byte[k], 0.99).into();
        }
        stages.insert(name.to_string(), j);
    }
    let j = serde_json::json!({
        "label": a.label, "machines": n, "ok": ok, "failed": n as usize - ok,
        "failures": failures, "storm_s": storm,
        "e2e_p50": pct(&e2e, 0.5), "e2e_p99": pct(&e2e, 0.99), "stages": stages,
        "retries": {"dhcp": load(&c.dhcp_retries), "pxe": load(&c.pxe_retries),
            "tftp": load(&c.tftp_retries), "tftp_refused": load(&c.tftp_errors),
            "http": load(&c.http_retries)},
        "http_bytes": load(&c.bytes),
    });
    println!("{j}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_addresses_skip_network_and_broadcast() {
        let f = Ipv4Addr::new(192, 168, 100, 1);
        assert_eq!(ip_of(f, 0), f);
        assert_eq!(ip_of(f, 253), Ipv4Addr::new(192, 168, 100, 254));
        assert_eq!(ip_of(f, 254), Ipv4Addr::new(192, 168, 101, 1));
        assert_eq!(hex(&mac_of(0), ":"), "52:54:00:00:00:01");
        assert_eq!(hex(&mac_of(999), "-"), "52-54-00-00-03-e8");
        assert_eq!(hex_uuid(&[0xab; 16]).len(), 36);
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(pct(&v, 0.5), 51.0);
        assert_eq!(pct(&v, 0.99), 99.0);
        assert!(pct(&[], 0.5).is_nan());
    }
}
