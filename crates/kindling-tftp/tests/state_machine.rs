//! State-machine tests without sockets: the test plays the client.

use std::io;
use std::time::{Duration, Instant};

use kindling_tftp::packet::{self, ErrorCode, Packet};
use kindling_tftp::transfer::{BlockReader, Outcome, Status, Step, Transfer, TransferParams};

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn opts(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn ack(b: u16) -> Vec<u8> {
    Packet::Ack { block: b }.encode()
}

fn params() -> TransferParams {
    TransferParams {
        max_blksize: 1468,
        max_windowsize: 16,
        timeout: Duration::from_secs(1),
        retries: 3,
        max_timeout: Duration::from_secs(10),
        max_client_timeout: Duration::from_secs(5),
    }
}

/// Decode the DATA packets of a step as (wire block, payload).
fn datas(step: &Step) -> Vec<(u16, Vec<u8>)> {
    step.send
        .iter()
        .map(|p| match packet::parse(p).unwrap() {
            Packet::Data { block, data } => (block, data),
            other => panic!("expected DATA, got {other:?}"),
        })
        .collect()
}

fn blocks(step: &Step) -> Vec<u16> {
    datas(step).into_iter().map(|(b, _)| b).collect()
}

fn start(
    options: &[(&str, &str)],
    file: Vec<u8>,
    p: TransferParams,
    now: Instant,
) -> (Transfer, Step) {
    let size = file.len() as u64;
    Transfer::start(&opts(options), Box::new(file), Some(size), p, now)
}

/// Client that ACKs every window end; returns the reassembled file.
fn drive_to_end(t: &mut Transfer, mut step: Step, now: Instant) -> Vec<u8> {
    let mut out = Vec::new();
    let mut expect: u16 = 1;
    loop {
        match &step.status {
            Status::Finished(o) => {
                assert_eq!(*o, Outcome::Completed);
                return out;
            }
            Status::Wait(_) => {}
        }
        let d = datas(&step);
        assert!(!d.is_empty(), "server went silent");
        let mut last = 0;
        for (b, payload) in d {
            assert_eq!(b, expect, "out of order block");
            expect = expect.wrapping_add(1);
            out.extend_from_slice(&payload);
            last = b;
        }
        step = t.on_packet(&ack(last), now);
    }
}

#[test]
fn lockstep_without_options() {
    let now = Instant::now();
    let file = data(1025);
    let (mut t, step) = start(&[], file.clone(), params(), now);
    assert_eq!(blocks(&step), vec![1]);
    assert_eq!(step.status, Status::Wait(now + Duration::from_secs(1)));
    let got = drive_to_end(&mut t, step, now);
    assert_eq!(got, file);
    assert_eq!(t.delivered(), 1025);
}

#[test]
fn edge_sizes_lockstep() {
    for (size, nblocks) in [(0usize, 1usize), (511, 1), (512, 2), (513, 2), (1024, 3)] {
        let now = Instant::now();
        let file = data(size);
        let (mut t, step) = start(&[], file.clone(), params(), now);
        let mut count = 0;
        let mut step = step;
        let mut got = Vec::new();
        while let Status::Wait(_) = step.status {
            let d = datas(&step);
            assert_eq!(d.len(), 1);
            count += 1;
            got.extend_from_slice(&d[0].1);
            step = t.on_packet(&ack(d[0].0), now);
        }
        assert_eq!(step.status, Status::Finished(Outcome::Completed));
        assert_eq!(count, nblocks, "size {size}");
        assert_eq!(got, file);
    }
}

#[test]
fn oack_then_windowed_data() {
    let now = Instant::now();
    let file = data(9 * 100 + 50); // blksize 100 -> 10 blocks
    let mut p = params();
    p.max_blksize = 100;
    let (mut t, step) = start(
        &[("blksize", "1468"), ("tsize", "0"), ("windowsize", "4")],
        file.clone(),
        p,
        now,
    );
    assert_eq!(step.send.len(), 1);
    assert_eq!(
        packet::parse(&step.send[0]).unwrap(),
        Packet::Oack {
            options: opts(&[("blksize", "100"), ("tsize", "950"), ("windowsize", "4")])
        }
    );
    let s = t.on_packet(&ack(0), now);
    assert_eq!(blocks(&s), vec![1, 2, 3, 4]);
    let s = t.on_packet(&ack(4), now);
    assert_eq!(blocks(&s), vec![5, 6, 7, 8]);
    let s = t.on_packet(&ack(8), now);
    let d = datas(&s);
    assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), vec![9, 10]);
    assert_eq!(d[1].1.len(), 50);
    let s = t.on_packet(&ack(10), now);
    assert!(s.send.is_empty());
    assert_eq!(s.status, Status::Finished(Outcome::Completed));
    assert_eq!(t.delivered(), 950);
}

#[test]
fn full_windowed_transfer_reassembles() {
    let now = Instant::now();
    let file = data(100_000);
    let (mut t, step) = start(
        &[("windowsize", "16"), ("blksize", "1024")],
        file.clone(),
        params(),
        now,
    );
    assert!(matches!(
        packet::parse(&step.send[0]).unwrap(),
        Packet::Oack { .. }
    ));
    let step = t.on_packet(&ack(0), now);
    assert_eq!(step.send.len(), 16);
    assert_eq!(drive_to_end(&mut t, step, now), file);
}

#[test]
fn lost_data_in_window_restarts_after_last_good_block() {
    let now = Instant::now();
    let (mut t, _) = start(
        &[("windowsize", "4"), ("blksize", "8")],
        data(200),
        params(),
        now,
    );
    let s = t.on_packet(&ack(0), now);
    assert_eq!(blocks(&s), vec![1, 2, 3, 4]);
    // Block 3 lost: the client ACKs 2 (RFC 7440), the window restarts at 3.
    let s = t.on_packet(&ack(2), now);
    assert_eq!(blocks(&s), vec![3, 4, 5, 6]);
    // Further ACK 2s from out-of-order arrivals: no window is resent twice.
    for _ in 0..3 {
        let s = t.on_packet(&ack(2), now);
        assert!(s.send.is_empty());
        assert!(matches!(s.status, Status::Wait(_)));
    }
    assert_eq!(t.counters().stale_acks, 3);
    let s = t.on_packet(&ack(6), now);
    assert_eq!(blocks(&s), vec![7, 8, 9, 10]);
}

#[test]
fn duplicate_ack_lockstep_is_ignored() {
    let now = Instant::now();
    let (mut t, s) = start(&[], data(2000), params(), now);
    assert_eq!(blocks(&s), vec![1]);
    let s = t.on_packet(&ack(1), now);
    assert_eq!(blocks(&s), vec![2]);
    let s = t.on_packet(&ack(1), now); // duplicate
    assert!(s.send.is_empty());
    let s = t.on_packet(&ack(0), now); // old
    assert!(s.send.is_empty());
    let s = t.on_packet(&ack(9), now); // future
    assert!(s.send.is_empty());
    let s = t.on_packet(&ack(2), now);
    assert_eq!(blocks(&s), vec![3]);
    assert_eq!(t.counters().stale_acks, 3);
}

#[test]
fn lost_ack_retransmits_window_with_backoff() {
    let t0 = Instant::now();
    let (mut t, _) = start(&[("windowsize", "3")], data(5000), params(), t0);
    let s = t.on_packet(&ack(0), t0);
    assert_eq!(blocks(&s), vec![1, 2, 3]);
    // Early tick: nothing.
    let s = t.on_timeout(t0 + Duration::from_millis(500));
    assert!(s.send.is_empty());
    assert_eq!(s.status, Status::Wait(t0 + Duration::from_secs(1)));
    // ACK 3 lost: the window is resent after 1 s, next deadline after 2 s more.
    let t1 = t0 + Duration::from_secs(1);
    let s = t.on_timeout(t1);
    assert_eq!(blocks(&s), vec![1, 2, 3]);
    assert_eq!(s.status, Status::Wait(t1 + Duration::from_secs(2)));
    let t2 = t1 + Duration::from_secs(2);
    let s = t.on_timeout(t2);
    assert_eq!(blocks(&s), vec![1, 2, 3]);
    assert_eq!(s.status, Status::Wait(t2 + Duration::from_secs(4)));
    // Progress resets the backoff.
    let s = t.on_packet(&ack(3), t2);
    assert_eq!(blocks(&s), vec![4, 5, 6]);
    assert_eq!(s.status, Status::Wait(t2 + Duration::from_secs(1)));
    assert_eq!(t.counters().retransmits, 2);
}

#[test]
fn oack_is_retransmitted_and_times_out() {
    let t0 = Instant::now();
    let (mut t, s) = start(&[("tsize", "0")], data(10), params(), t0);
    let oack = s.send[0].clone();
    let mut now = t0;
    let mut timeout = Duration::from_secs(1);
    for _ in 0..3 {
        now += timeout;
        let s = t.on_timeout(now);
        assert_eq!(s.send, vec![oack.clone()]);
        timeout *= 2;
        assert_eq!(s.status, Status::Wait(now + timeout));
    }
    now += timeout;
    let s = t.on_timeout(now);
    assert_eq!(s.status, Status::Finished(Outcome::TimedOut));
    assert_eq!(
        packet::parse(&s.send[0]).unwrap(),
        Packet::Error {
            code: ErrorCode::NotDefined,
            message: "timed out".into()
        }
    );
    assert_eq!(t.deadline(), None);
}

#[test]
fn backoff_is_capped() {
    let t0 = Instant::now();
    let mut p = params();
    p.retries = 10;
    p.max_timeout = Duration::from_secs(3);
    let (mut t, _) = start(&[], data(10), p, t0);
    let mut now = t0 + Duration::from_secs(1);
    let mut last_gap = Duration::ZERO;
    for _ in 0..5 {
        let s = t.on_timeout(now);
        let Status::Wait(d) = s.status else { panic!() };
        last_gap = d - now;
        now = d;
    }
    assert_eq!(last_gap, Duration::from_secs(3));
}

#[test]
fn rollover_past_65535_goes_to_zero() {
    let now = Instant::now();
    let size = 65536 * 8 + 1; // blocks 1..=65537 with blksize 8
    let file = data(size);
    let (mut t, s) = start(&[("blksize", "8")], file.clone(), params(), now);
    assert!(matches!(
        packet::parse(&s.send[0]).unwrap(),
        Packet::Oack { .. }
    ));
    let s = t.on_packet(&ack(0), now);
    let got = drive_to_end(&mut t, s, now);
    assert_eq!(got, file);
    assert_eq!(t.delivered(), size as u64);
}

#[test]
fn rollover_windowed_with_loss_at_wrap() {
    let now = Instant::now();
    let size = 65540 * 8 + 3;
    let file = data(size);
    let (mut t, _) = start(
        &[("blksize", "8"), ("windowsize", "16")],
        file,
        params(),
        now,
    );
    let mut s = t.on_packet(&ack(0), now);
    // Advance windows until one spans the wrap.
    loop {
        let b = blocks(&s);
        if b.contains(&0) {
            // Window e.g. 65521..=65535,0: pretend 65535 was lost -> ACK 65534.
            let pos = b.iter().position(|&x| x == 65535).unwrap();
            assert!(pos > 0);
            let s2 = t.on_packet(&ack(65534), now);
            let b2 = blocks(&s2);
            assert_eq!(b2[0], 65535);
            assert_eq!(b2[1], 0);
            assert_eq!(b2[2], 1);
            s = t.on_packet(&ack(*b2.last().unwrap()), now);
            break;
        }
        s = t.on_packet(&ack(*b.last().unwrap()), now);
    }
    // Finish: blocks past the wrap continue from the small numbers.
    loop {
        if let Status::Finished(o) = &s.status {
            assert_eq!(*o, Outcome::Completed);
            break;
        }
        let b = blocks(&s);
        s = t.on_packet(&ack(*b.last().unwrap()), now);
    }
    assert_eq!(t.delivered(), size as u64);
}

#[test]
fn option_negotiation_clamps_and_ignores() {
    let now = Instant::now();
    let oack_of = |o: &[(&str, &str)], size: Option<u64>, p: TransferParams| {
        let (_, s) = Transfer::start(&opts(o), Box::new(data(10)), size, p, now);
        match packet::parse(&s.send[0]).unwrap() {
            Packet::Oack { options } => Some(options),
            Packet::Data { .. } => None,
            other => panic!("{other:?}"),
        }
    };
    // Clamped to the configured maximum.
    assert_eq!(
        oack_of(
            &[("blksize", "65464"), ("windowsize", "64")],
            None,
            params()
        ),
        Some(opts(&[("blksize", "1468"), ("windowsize", "16")]))
    );
    // Below maximum: granted as asked.
    assert_eq!(
        oack_of(&[("blksize", "1024"), ("timeout", "3")], None, params()),
        Some(opts(&[("blksize", "1024"), ("timeout", "3")]))
    );
    // Invalid values, unknown options and tsize without a known size: no OACK at all.
    assert_eq!(
        oack_of(
            &[
                ("blksize", "7"),
                ("blksize2", "512"),
                ("timeout", "0"),
                ("timeout", "256"),
                ("windowsize", "0"),
                ("multicast", ""),
                ("tsize", "0")
            ],
            None,
            params()
        ),
        None
    );
    assert_eq!(oack_of(&[("blksize", "70000")], None, params()), None);
    assert_eq!(oack_of(&[("blksize", "abc")], None, params()), None);
    // tsize reports the size.
    assert_eq!(
        oack_of(&[("tsize", "0")], Some(123456789), params()),
        Some(opts(&[("tsize", "123456789")]))
    );
    // Negotiated timeout drives retransmission.
    let (mut t, _) = Transfer::start(
        &opts(&[("timeout", "5")]),
        Box::new(data(10)),
        None,
        params(),
        now,
    );
    let s = t.on_packet(&ack(0), now);
    assert_eq!(s.status, Status::Wait(now + Duration::from_secs(5)));
}

#[test]
fn client_timeout_above_the_cap_is_ignored() {
    let now = Instant::now();
    let oack_of = |o: &[(&str, &str)], size: Option<u64>, p: TransferParams| {
        let (_, s) = Transfer::start(&opts(o), Box::new(data(10)), size, p, now);
        match packet::parse(&s.send[0]).unwrap() {
            Packet::Oack { options } => Some(options),
            Packet::Data { .. } => None,
            other => panic!("{other:?}"),
        }
    };
    // 6..=255 s: left out of the OACK (RFC 2349 lets the server ignore it), the
    // server's own timeout drives retransmission.
    for v in ["6", "60", "255"] {
        assert_eq!(
            oack_of(&[("timeout", v), ("blksize", "1024")], None, params()),
            Some(opts(&[("blksize", "1024")])),
            "{v}"
        );
        let (mut t, s) = Transfer::start(
            &opts(&[("timeout", v)]),
            Box::new(data(10)),
            None,
            params(),
            now,
        );
        // No OACK: DATA 1 at once, retransmitted after the server's 1 s.
        assert_eq!(s.status, Status::Wait(now + Duration::from_secs(1)));
        assert_eq!(t.negotiated().timeout, Duration::from_secs(1));
        let s = t.on_timeout(now + Duration::from_secs(1));
        assert_eq!(s.send.len(), 1);
    }
    // At the cap: accepted as asked.
    assert_eq!(
        oack_of(&[("timeout", "5")], None, params()),
        Some(opts(&[("timeout", "5")]))
    );
    let mut p = params();
    p.max_client_timeout = Duration::from_secs(255);
    assert_eq!(
        oack_of(&[("timeout", "255")], None, p),
        Some(opts(&[("timeout", "255")]))
    );
}

#[test]
fn client_errors_end_the_transfer() {
    let now = Instant::now();
    // EDK2 tsize probe: OACK answered with ERROR 8 -> normal end.
    let (mut t, _) = start(&[("tsize", "0")], data(10), params(), now);
    let s = t.on_packet(
        &packet::encode_error(ErrorCode::OptionRefused, "User aborted"),
        now,
    );
    assert_eq!(s.status, Status::Finished(Outcome::OptionsDeclined));
    assert!(s.send.is_empty());
    assert!(Outcome::OptionsDeclined.is_success());
    // Another error mid-transfer -> failure.
    let (mut t, _) = start(&[], data(5000), params(), now);
    let s = t.on_packet(&packet::encode_error(ErrorCode::DiskFull, "full"), now);
    assert_eq!(
        s.status,
        Status::Finished(Outcome::ClientError {
            code: 3,
            message: "full".into()
        })
    );
    assert!(!matches!(s.status, Status::Finished(ref o) if o.is_success()));
}

#[test]
fn malformed_and_unexpected_packets_are_ignored() {
    let now = Instant::now();
    let (mut t, _) = start(&[], data(5000), params(), now);
    for junk in [&b""[..], b"\x00", b"\x00\x63abc", b"\x00\x04\x00"] {
        let s = t.on_packet(junk, now);
        assert!(s.send.is_empty());
        assert!(matches!(s.status, Status::Wait(_)));
    }
    let s = t.on_packet(
        &Packet::Data {
            block: 1,
            data: vec![1],
        }
        .encode(),
        now,
    );
    assert!(s.send.is_empty());
    assert_eq!(t.counters().malformed, 4);
    assert_eq!(t.counters().unexpected, 1);
    // Still works afterwards.
    let s = t.on_packet(&ack(1), now);
    assert_eq!(blocks(&s), vec![2]);
}

struct FailingReader;
impl BlockReader for FailingReader {
    fn read_at(&mut self, _: u64, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("disk on fire"))
    }
}

#[test]
fn read_error_sends_error_and_fails() {
    let now = Instant::now();
    let (_, s) = Transfer::start(&[], Box::new(FailingReader), None, params(), now);
    assert_eq!(
        s.status,
        Status::Finished(Outcome::ReadError("disk on fire".into()))
    );
    assert!(matches!(
        packet::parse(s.send.last().unwrap()).unwrap(),
        Packet::Error {
            code: ErrorCode::NotDefined,
            ..
        }
    ));
}

#[test]
fn file_shrinking_during_transfer_ends_early() {
    // A reader reporting 0 bytes past 600: the transfer ends at the first short block.
    struct Shrunk(Vec<u8>);
    impl BlockReader for Shrunk {
        fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read_at(off, buf)
        }
    }
    let now = Instant::now();
    let (mut t, s) = Transfer::start(&[], Box::new(Shrunk(data(600))), Some(5000), params(), now);
    let got = drive_to_end(&mut t, s, now);
    assert_eq!(got.len(), 600);
}
