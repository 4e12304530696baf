//! Sans-I/O state machine for one read transfer (server side).
//!
//! Input: a received datagram or a timer tick, each with the current [`Instant`].
//! Output: a [`Step`]: datagrams to send, and either the next deadline or the end.
//!
//! Windowing (RFC 7440): after an ACK for block `n` that lies inside the window
//! in flight, the window restarts at `n + 1` and `windowsize` blocks are sent.
//! An ACK that does not advance (duplicate or old) is ignored, so a window is
//! never sent twice because of duplicate ACKs (Sorcerer's Apprentice); lost
//! packets are recovered by the retransmission timer, which doubles on every
//! consecutive timeout up to the retry limit.
//!
//! Block numbers roll over from 65535 to 0, as tftpd-hpa, atftp, curl and
//! busybox expect.

use std::io;
use std::time::{Duration, Instant};

use crate::packet::{self, ErrorCode, Packet};

/// Random access to the bytes being served.
pub trait BlockReader: Send {
    /// Read up to `buf.len()` bytes at `offset`; fewer only at end of file.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

impl BlockReader for std::fs::File {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            let Some(rest) = buf.get_mut(done..) else {
                break;
            };
            match FileExt::read_at(self, rest, offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

impl BlockReader for Vec<u8> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let src = self.get(start..).unwrap_or_default();
        let n = src.len().min(buf.len());
        if let (Some(d), Some(s)) = (buf.get_mut(..n), src.get(..n)) {
            d.copy_from_slice(s);
        }
        Ok(n)
    }
}

/// Limits and defaults the server applies to one transfer.
#[derive(Debug, Clone)]
pub struct TransferParams {
    /// Largest block size granted (already clamped to the path MTU by the caller).
    pub max_blksize: u16,
    /// Largest window granted (RFC 7440).
    pub max_windowsize: u16,
    /// Retransmission timeout when the client negotiates none.
    pub timeout: Duration,
    /// Retransmissions of the same packet(s) before giving up.
    pub retries: u32,
    /// Upper bound for the backed-off timeout.
    pub max_timeout: Duration,
    /// Largest `timeout` option accepted from a client (RFC 2349). A larger value is
    /// ignored: left out of the OACK, and `timeout` is used. This keeps a client that
    /// never acknowledges from holding a transfer for minutes (255 s, doubled on
    /// every retry).
    pub max_client_timeout: Duration,
}

impl Default for TransferParams {
    fn default() -> Self {
        Self {
            max_blksize: 1468,
            max_windowsize: 16,
            timeout: Duration::from_secs(1),
            retries: 5,
            max_timeout: Duration::from_secs(10),
            max_client_timeout: Duration::from_secs(5),
        }
    }
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every block was acknowledged.
    Completed,
    /// The client answered our OACK with ERROR 8 (e.g. EDK2's tsize probe): a normal end.
    OptionsDeclined,
    /// The client sent another ERROR.
    ClientError { code: u16, message: String },
    /// No progress within the retry limit.
    TimedOut,
    /// Reading the file failed.
    ReadError(String),
    /// The server shut down (set by the shell).
    Cancelled,
    /// The peer became unreachable (set by the shell, e.g. ICMP port unreachable).
    PeerGone(String),
    /// The slot was given to a new client while this transfer was idle (set by the
    /// shell; see `limits::Slots`).
    Evicted,
}

impl std::fmt::Display for Outcome {
    /// Why it ended, for people (logs, the boot timeline). Contains the client's ERROR
    /// message: escape it (`kindling_guard::esc`) before logging.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Completed => f.write_str("completed"),
            Outcome::OptionsDeclined => f.write_str("options declined (ERROR 8)"),
            Outcome::ClientError { code, message } => {
                write!(f, "client sent ERROR {code}: {message}")
            }
            Outcome::TimedOut => f.write_str("timed out (no ACK within the retry limit)"),
            Outcome::ReadError(e) => write!(f, "read error: {e}"),
            Outcome::Cancelled => f.write_str("server shut down"),
            Outcome::PeerGone(e) => write!(f, "peer unreachable: {e}"),
            Outcome::Evicted => f.write_str("evicted: slot given to a new client (server full)"),
        }
    }
}

impl Outcome {
    /// Every [`Outcome::label`], in declaration order (metrics start them at zero).
    pub const LABELS: [&'static str; 8] = [
        "completed",
        "options_declined",
        "client_error",
        "timed_out",
        "read_error",
        "cancelled",
        "peer_gone",
        "evicted",
    ];

    /// Position in [`Outcome::LABELS`] (the counters' index).
    pub fn index(&self) -> usize {
        match self {
            Outcome::Completed => 0,
            Outcome::OptionsDeclined => 1,
            Outcome::ClientError { .. } => 2,
            Outcome::TimedOut => 3,
            Outcome::ReadError(_) => 4,
            Outcome::Cancelled => 5,
            Outcome::PeerGone(_) => 6,
            Outcome::Evicted => 7,
        }
    }

    /// The stable snake_case label (metrics).
    pub fn label(&self) -> &'static str {
        Self::LABELS[self.index()]
    }

    /// Completed or a normal client abort after option negotiation.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Completed | Outcome::OptionsDeclined)
    }
}

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Call [`Transfer::on_timeout`] at this instant unless a packet comes first.
    Wait(Instant),
    Finished(Outcome),
}

/// Result of feeding the machine.
#[derive(Debug)]
pub struct Step {
    /// Datagrams to send to the peer, in order.
    pub send: Vec<Vec<u8>>,
    pub status: Status,
}

/// Option values agreed with the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub windowsize: u16,
    pub timeout: Duration,
    /// Options acknowledged in the OACK (empty: no OACK was sent).
    pub oack: Vec<(String, String)>,
}

/// Apply RFC 2347/2348/2349/7440 negotiation. Unknown or invalid options are ignored.
pub fn negotiate(
    options: &[(String, String)],
    size: Option<u64>,
    p: &TransferParams,
) -> Negotiated {
    let mut n = Negotiated {
        blksize: packet::DEFAULT_BLKSIZE,
        windowsize: 1,
        timeout: p.timeout,
        oack: Vec::new(),
    };
    for (name, value) in options {
        let value = value.trim();
        match name.as_str() {
            "blksize" => {
                if let Ok(v) = value.parse::<u32>()
                    && (u32::from(packet::MIN_BLKSIZE)..=u32::from(packet::MAX_BLKSIZE))
                        .contains(&v)
                {
                    let max = p
                        .max_blksize
                        .clamp(packet::MIN_BLKSIZE, packet::MAX_BLKSIZE);
                    let v = (v as u16).min(max);
                    n.blksize = v;
                    n.oack.push((name.clone(), v.to_string()));
                }
            }
            "tsize" => {
                if let Some(size) = size {
                    n.oack.push((name.clone(), size.to_string()));
                }
            }
            "timeout" => {
                // RFC 2349: the server either accepts the value or ignores the option.
                // Values above `max_client_timeout` are ignored (server default).
                if let Ok(v) = value.parse::<u8>()
                    && v >= 1
                    && Duration::from_secs(u64::from(v)) <= p.max_client_timeout
                {
                    n.timeout = Duration::from_secs(u64::from(v));
                    n.oack.push((name.clone(), v.to_string()));
                }
            }
            "windowsize" => {
                if let Ok(v) = value.parse::<u32>()
                    && (1..=65535).contains(&v)
                {
                    let v = (v as u16).min(p.max_windowsize.max(1));
                    n.windowsize = v;
                    n.oack.push((name.clone(), v.to_string()));
                }
            }
            _ => {}
        }
    }
    n
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// OACK sent, waiting for ACK 0.
    Oack,
    /// Sending data.
    Data,
    Done,
}

/// Counters of one transfer, read by the shell when it ends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TransferCounters {
    /// Datagrams produced (including retransmissions).
    pub packets_sent: u64,
    /// UDP payload bytes produced (including retransmissions).
    pub bytes_sent: u64,
    /// Timer-driven retransmission rounds.
    pub retransmits: u64,
    /// ACKs ignored because they did not advance the window.
    pub stale_acks: u64,
    /// Undecodable datagrams ignored.
    pub malformed: u64,
    /// Decodable but unexpected datagrams ignored (RRQ, DATA, OACK from the client).
    pub unexpected: u64,
    /// ACKs that advanced the transfer (ACK 0 of an OACK included).
    pub progress: u64,
}

/// One read transfer.
pub struct Transfer {
    reader: Box<dyn BlockReader>,
    params: TransferParams,
    neg: Negotiated,
    phase: Phase,
    /// Highest block acknowledged (absolute, 0 = none).
    acked: u64,
    /// Next block to send (absolute).
    next: u64,
    /// Final block once known (the first one shorter than blksize).
    last: Option<u64>,
    last_len: u64,
    tries: u32,
    cur_timeout: Duration,
    deadline: Instant,
    /// Bytes of file data acknowledged by the client.
    delivered: u64,
    counters: TransferCounters,
    oack_pkt: Vec<u8>,
}

impl std::fmt::Debug for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfer")
            .field("neg", &self.neg)
            .field("phase", &self.phase)
            .field("acked", &self.acked)
            .field("next", &self.next)
            .field("last", &self.last)
            .finish()
    }
}

/// Wire block number for an absolute block number (rolls over to 0).
pub fn wire_block(abs: u64) -> u16 {
    (abs & 0xffff) as u16
}

impl Transfer {
    /// Start serving `reader` for a request carrying `options`; `size` feeds tsize.
    pub fn start(
        options: &[(String, String)],
        reader: Box<dyn BlockReader>,
        size: Option<u64>,
        params: TransferParams,
        now: Instant,
    ) -> (Transfer, Step) {
        let neg = negotiate(options, size, &params);
        let oack_pkt = if neg.oack.is_empty() {
            Vec::new()
        } else {
            Packet::Oack {
                options: neg.oack.clone(),
            }
            .encode()
        };
        let cur_timeout = neg.timeout;
        let mut t = Transfer {
            reader,
            params,
            phase: if neg.oack.is_empty() {
                Phase::Data
            } else {
                Phase::Oack
            },
            neg,
            acked: 0,
            next: 1,
            last: None,
            last_len: 0,
            tries: 0,
            cur_timeout,
            deadline: now,
            delivered: 0,
            counters: TransferCounters::default(),
            oack_pkt,
        };
        let mut send = Vec::new();
        let status = match t.phase {
            Phase::Oack => {
                t.push(&mut send, t.oack_pkt.clone());
                t.arm(now)
            }
            _ => t.send_window(&mut send, now),
        };
        (t, Step { send, status })
    }

    pub fn negotiated(&self) -> &Negotiated {
        &self.neg
    }

    pub fn counters(&self) -> TransferCounters {
        self.counters
    }

    /// File bytes acknowledged by the client so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Deadline of the retransmission timer, if the transfer is running.
    pub fn deadline(&self) -> Option<Instant> {
        (self.phase != Phase::Done).then_some(self.deadline)
    }

    fn push(&mut self, send: &mut Vec<Vec<u8>>, pkt: Vec<u8>) {
        self.counters.packets_sent += 1;
        self.counters.bytes_sent += pkt.len() as u64;
        send.push(pkt);
    }

    fn arm(&mut self, now: Instant) -> Status {
        self.deadline = now + self.cur_timeout;
        Status::Wait(self.deadline)
    }

    fn finish(&mut self, outcome: Outcome) -> Status {
        self.phase = Phase::Done;
        Status::Finished(outcome)
    }

    /// (Re)send the window starting at `acked + 1`.
    fn send_window(&mut self, send: &mut Vec<Vec<u8>>, now: Instant) -> Status {
        self.next = self.acked + 1;
        let bs = usize::from(self.neg.blksize);
        for _ in 0..self.neg.windowsize {
            if let Some(last) = self.last
                && self.next > last
            {
                break;
            }
            let mut pkt = vec![0u8; 4 + bs];
            let block = self.next;
            let offset = (block - 1) * bs as u64;
            let n = match pkt.get_mut(4..) {
                Some(buf) => match self.reader.read_at(offset, buf) {
                    Ok(n) => n,
                    Err(e) => {
                        self.push(
                            send,
                            packet::encode_error(ErrorCode::NotDefined, "read error"),
                        );
                        return self.finish(Outcome::ReadError(e.to_string()));
                    }
                },
                None => 0,
            };
            pkt.truncate(4 + n.min(bs));
            let [b0, b1] = wire_block(block).to_be_bytes();
            if let Some(h) = pkt.get_mut(..4) {
                h.copy_from_slice(&[0, 3, b0, b1]);
            }
            if n < bs {
                self.last = Some(block);
                self.last_len = n as u64;
            }
            self.push(send, pkt);
            self.next += 1;
        }
        self.arm(now)
    }

    /// Feed a datagram received from the peer.
    pub fn on_packet(&mut self, buf: &[u8], now: Instant) -> Step {
        let mut send = Vec::new();
        if self.phase == Phase::Done {
            return Step {
                send,
                status: Status::Finished(Outcome::Completed),
            };
        }
        let status = match packet::parse(buf) {
            Ok(Packet::Ack { block }) => self.on_ack(block, &mut send, now),
            Ok(Packet::Error { code, message }) => {
                if code == ErrorCode::OptionRefused {
                    self.finish(Outcome::OptionsDeclined)
                } else {
                    self.finish(Outcome::ClientError {
                        code: code.as_u16(),
                        message,
                    })
                }
            }
            Err(_) => {
                self.counters.malformed += 1;
                Status::Wait(self.deadline)
            }
            Ok(_) => {
                self.counters.unexpected += 1;
                Status::Wait(self.deadline)
            }
        };
        Step { send, status }
    }

    fn on_ack(&mut self, block: u16, send: &mut Vec<Vec<u8>>, now: Instant) -> Status {
        match self.phase {
            Phase::Oack => {
                if block == 0 {
                    self.counters.progress += 1;
                    self.phase = Phase::Data;
                    self.tries = 0;
                    self.cur_timeout = self.neg.timeout;
                    self.send_window(send, now)
                } else {
                    self.counters.stale_acks += 1;
                    Status::Wait(self.deadline)
                }
            }
            Phase::Data => {
                // Blocks in flight: acked+1 ..= next-1. Map the 16-bit number into
                // acked ..= next-1 (at most 65536 values, so unambiguous).
                let delta = u64::from(block.wrapping_sub(wire_block(self.acked)));
                let abs = self.acked + delta;
                if delta == 0 || abs >= self.next {
                    self.counters.stale_acks += 1;
                    return Status::Wait(self.deadline);
                }
                self.acked = abs;
                self.counters.progress += 1;
                self.tries = 0;
                self.cur_timeout = self.neg.timeout;
                let bs = u64::from(self.neg.blksize);
                if self.last == Some(abs) {
                    self.delivered = (abs - 1) * bs + self.last_len;
                    return self.finish(Outcome::Completed);
                }
                self.delivered = abs * bs;
                self.send_window(send, now)
            }
            Phase::Done => Status::Finished(Outcome::Completed),
        }
    }

    /// Feed a timer tick. Retransmits if the deadline passed.
    pub fn on_timeout(&mut self, now: Instant) -> Step {
        let mut send = Vec::new();
        let status = match self.phase {
            Phase::Done => Status::Finished(Outcome::Completed),
            _ if now < self.deadline => Status::Wait(self.deadline),
            _ => {
                self.tries += 1;
                if self.tries > self.params.retries {
                    self.push(
                        &mut send,
                        packet::encode_error(ErrorCode::NotDefined, "timed out"),
                    );
                    self.finish(Outcome::TimedOut)
                } else {
                    self.counters.retransmits += 1;
                    self.cur_timeout =
                        (self.cur_timeout * 2).min(self.params.max_timeout.max(self.neg.timeout));
                    if self.phase == Phase::Oack {
                        let p = self.oack_pkt.clone();
                        self.push(&mut send, p);
                        self.arm(now)
                    } else {
                        self.send_window(&mut send, now)
                    }
                }
            }
        };
        Step { send, status }
    }
}
