//! Small RFC 7440 (windowsize) TFTP download client used by the loss test and
//! the benchmark, because atftp 0.8's windowed client stalls for good once a
//! re-ACK is lost (it answers a retransmitted window only once).
//!
//! Usage: tftpget HOST:PORT NAME OUTFILE [--blksize N] [--windowsize N] [--timeout-ms N] [--retries N]
//!
//! Receiver rules: ACK every `windowsize` in-order blocks and the final block;
//! on an out-of-order block ACK the last in-order block (once per stall, again
//! only after 2 ms, so one burst yields one ACK); on silence for `timeout` re-send the last ACK (or the RRQ).
//! Prints `bytes=N ms=N MB/s=X` on success; exit 1 on failure.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use kindling_tftp::packet::{Mode, Packet, Request};

struct Args {
    server: SocketAddr,
    name: String,
    out: String,
    blksize: Option<u16>,
    windowsize: Option<u16>,
    timeout: Duration,
    retries: u32,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let server = it
        .next()
        .ok_or("missing HOST:PORT")?
        .parse()
        .map_err(|e| format!("{e}"))?;
    let name = it.next().ok_or("missing NAME")?;
    let out = it.next().ok_or("missing OUTFILE")?;
    let mut a = Args {
        server,
        name,
        out,
        blksize: None,
        windowsize: None,
        timeout: Duration::from_millis(200),
        retries: 50,
    };
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let n: u64 = v.parse().map_err(|e| format!("{k}: {e}"))?;
        match k.as_str() {
            "--blksize" => a.blksize = Some(n as u16),
            "--windowsize" => a.windowsize = Some(n as u16),
            "--timeout-ms" => a.timeout = Duration::from_millis(n),
            "--retries" => a.retries = n as u32,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    Ok(a)
}

fn run(a: &Args) -> Result<(u64, Instant), String> {
    let bind = if a.server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    let mut options = Vec::new();
    if let Some(b) = a.blksize {
        options.push(("blksize".to_string(), b.to_string()));
    }
    if let Some(w) = a.windowsize {
        options.push(("windowsize".to_string(), w.to_string()));
    }
    options.push(("tsize".to_string(), "0".to_string()));
    let rrq = Packet::Rrq(Request {
        filename: a.name.clone(),
        mode: Mode::Octet,
        options,
    })
    .encode();
    sock.send_to(&rrq, a.server).map_err(|e| e.to_string())?;
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(&a.out).map_err(|e| e.to_string())?);
    let mut blksize: usize = 512;
    let mut window: u64 = 1;
    let mut tid: Option<SocketAddr> = None;
    let mut last: u64 = 0; // last in-order block (absolute)
    let mut since_ack: u64 = 0;
    let mut last_ack: Option<Vec<u8>> = None;
    let mut last_gap_ack = Instant::now();
    let mut gap_acked_for: Option<u64> = None;
    let mut tries = 0;
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 65536 + 4];
    sock.set_read_timeout(Some(a.timeout))
        .map_err(|e| e.to_string())?;
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                tries += 1;
                if tries > a.retries {
                    return Err("timed out".into());
                }
                match (&last_ack, tid) {
                    (Some(ack), Some(t)) => sock.send_to(ack, t),
                    _ => sock.send_to(&rrq, a.server),
                }
                .map_err(|e| e.to_string())?;
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        match tid {
            None => tid = Some(from),
            Some(t) if t != from => continue,
            _ => {}
        }
        let Some(t) = tid else { continue };
        let pkt = match kindling_tftp::packet::parse(buf.get(..n).unwrap_or_default()) {
            Ok(p) => p,
            Err(_) => continue,
        };
        match pkt {
            Packet::Oack { options } => {
                if last != 0 {
                    continue;
                }
                tries = 0;
                for (k, v) in options {
                    match k.as_str() {
                        "blksize" => blksize = v.parse().unwrap_or(512),
                        "windowsize" => window = v.parse().unwrap_or(1),
                        _ => {}
                    }
                }
                let ack = Packet::Ack { block: 0 }.encode();
                sock.send_to(&ack, t).map_err(|e| e.to_string())?;
                last_ack = Some(ack);
            }
            Packet::Data { block, data } => {
                let expected = last + 1;
                if block == (expected & 0xffff) as u16 {
                    tries = 0;
                    out.write_all(&data).map_err(|e| e.to_string())?;
                    total += data.len() as u64;
                    last = expected;
                    since_ack += 1;
                    let fin = data.len() < blksize;
                    if fin || since_ack >= window {
                        let ack = Packet::Ack { block }.encode();
                        sock.send_to(&ack, t).map_err(|e| e.to_string())?;
                        last_ack = Some(ack);
                        since_ack = 0;
                    }
                    if fin {
                        // Dally: re-ACK retransmitted final blocks until the server
                        // has been silent for one timeout (our last ACK may be lost).
                        out.flush().map_err(|e| e.to_string())?;
                        let done = Instant::now();
                        sock.set_read_timeout(Some(a.timeout)).ok();
                        while let Ok((_, f)) = sock.recv_from(&mut buf) {
                            if f == t
                                && let Some(ack) = &last_ack
                            {
                                let _ = sock.send_to(ack, t);
                            }
                        }
                        return Ok((total, done));
                    }
                } else if gap_acked_for != Some(last)
                    || last_gap_ack.elapsed() >= Duration::from_millis(2)
                {
                    gap_acked_for = Some(last);
                    let ack = Packet::Ack {
                        block: (last & 0xffff) as u16,
                    }
                    .encode();
                    sock.send_to(&ack, t).map_err(|e| e.to_string())?;
                    last_ack = Some(ack);
                    since_ack = 0;
                    last_gap_ack = Instant::now();
                }
            }
            Packet::Error { code, message } => {
                return Err(format!("server error {code}: {message}"));
            }
            _ => {}
        }
    }
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tftpget: {e}");
            std::process::exit(2);
        }
    };
    let t0 = Instant::now();
    match run(&a) {
        Ok((bytes, done)) => {
            let s = (done - t0).as_secs_f64();
            println!(
                "bytes={bytes} ms={} MB/s={:.2}",
                (s * 1000.0) as u64,
                bytes as f64 / s / 1e6
            );
        }
        Err(e) => {
            eprintln!("tftpget: {e}");
            std::process::exit(1);
        }
    }
}
