//! Transfer state machine fed arbitrary datagrams and timer ticks: never
//! panics, never sends a DATA block outside the current window.
#![no_main]

use std::time::{Duration, Instant};

use kindling_tftp::packet::{self, Packet};
use kindling_tftp::transfer::{Status, Transfer, TransferParams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let Some((&sz, mut rest)) = rest.split_first() else {
        return;
    };
    let mut opts = Vec::new();
    if cfg & 1 != 0 {
        opts.push((
            "blksize".to_string(),
            (8 + u32::from(cfg >> 1) * 3).to_string(),
        ));
    }
    if cfg & 2 != 0 {
        opts.push(("windowsize".to_string(), u32::from(cfg >> 4).to_string()));
    }
    if cfg & 4 != 0 {
        opts.push(("tsize".to_string(), "0".to_string()));
    }
    let file: Vec<u8> = (0..usize::from(sz) * 37).map(|i| i as u8).collect();
    let params = TransferParams {
        max_blksize: 512,
        max_windowsize: 8,
        timeout: Duration::from_millis(100),
        retries: 3,
        max_timeout: Duration::from_secs(1),
        max_client_timeout: Duration::from_secs(5),
    };
    let mut now = Instant::now();
    let (mut t, _) = Transfer::start(&opts, Box::new(file), Some(u64::from(sz) * 37), params, now);
    let ws = usize::from(t.negotiated().windowsize);
    while let Some((&op, r)) = rest.split_first() {
        rest = r;
        let step = match op % 4 {
            0 => {
                now += Duration::from_millis(u64::from(op));
                t.on_timeout(now)
            }
            1 => {
                let Some((b, r)) = rest.split_first_chunk::<2>() else {
                    break;
                };
                rest = r;
                t.on_packet(
                    &Packet::Ack {
                        block: u16::from_be_bytes(*b),
                    }
                    .encode(),
                    now,
                )
            }
            _ => {
                let n = usize::from(op >> 2).min(rest.len());
                let (pkt, r) = rest.split_at(n);
                rest = r;
                t.on_packet(pkt, now)
            }
        };
        let datas = step
            .send
            .iter()
            .filter(|p| matches!(packet::parse(p), Ok(Packet::Data { .. })))
            .count();
        assert!(datas <= ws);
        if let Status::Finished(_) = step.status {
            break;
        }
    }
});
