//! How much a file body may keep queued in the kernel beyond what is in flight
//! (`TCP_NOTSENT_LOWAT`), while it is sent.
//!
//! Every connection carries [`SEND_QUEUE_LOWAT`] from its accept: enough for a storm of a
//! thousand downloads to stay clear of the kernel's TCP memory pressure. A bound that
//! small makes the sender push the bytes itself, a quarter MiB per wake-up, which on one
//! machine is work the client's reads would otherwise do (bench/cache: 1.6-2.0x nginx's
//! CPU per GiB at 32 connections, where nginx lets each queue grow to the kernel's
//! maximum). So a file body's queue is a share of a budget: what all file bodies being
//! sent at once may queue together ([`Budget`], a quarter of the kernel's TCP memory low
//! mark), divided by how many are being sent, rounded down to a power of two, never
//! below [`SEND_QUEUE_LOWAT`] nor above [`QUEUE_MAX`]. A few downloads queue as much as
//! nginx's; a storm's each get the floor, as before. The share is looked at again before
//! each `sendfile(2)`, so the bodies that started first give theirs back as a storm
//! grows.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpStream;

use crate::listen::SEND_QUEUE_LOWAT;

/// The most one file body may queue: the kernel's default maximum send buffer
/// (`net.ipv4.tcp_wmem`), so never more than a socket left to the kernel would.
pub const QUEUE_MAX: u32 = 4 << 20;

/// The budget when the kernel's TCP memory limits cannot be read.
pub const DEFAULT_BUDGET: u64 = 64 << 20;

/// A file body of at most this size, larger than the floor, goes into the socket whole,
/// in one `sendfile(2)`: the rest of the answer then leaves as the client reads, without
/// the connection's task being woken again behind every other answer of a storm. nginx's
/// one call does the same for any size; this bound keeps what a connection may hold near
/// the floor's order. In a lockstep storm of 1,000 machines fetching 1 MB, the stage's
/// median went from 228-242 to 172-234 ms (medians of the runs 238 and 201) with about
/// 15 % less CPU (bench/storm/README.md, stop 43).
pub const WHOLE_FILE_MAX: u64 = 1 << 20;

/// File bodies being sent now, by every listener of the process.
static SENDING: AtomicUsize = AtomicUsize::new(0);

/// Registers in `r` (`/metrics`, at each scrape) the file bodies being sent now and the
/// bound each has now (its share of this machine's budget).
pub fn register(r: &mut prometheus_client::registry::Registry) {
    use prometheus_client::metrics::gauge::ConstGauge;
    let sending = SENDING.load(Ordering::Relaxed);
    let share = Budget::of_this_machine().share(sending);
    r.register(
        "kindling_http_file_bodies_sending",
        "File bodies (assets, cache, TFTP files over HTTP) being sent now; they share the send-queue budget",
        ConstGauge::new(sending as i64),
    );
    r.register(
        "kindling_http_send_queue_share_bytes",
        "What each file body may queue in the kernel beyond what is in flight now: the budget (a quarter of net.ipv4.tcp_mem's low mark) divided among the bodies being sent, 512 KiB to 4 MiB",
        ConstGauge::new(i64::from(share)),
    );
}

/// What all file bodies sent at once may queue together, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget(pub u64);

impl Budget {
    /// This machine's: a quarter of `net.ipv4.tcp_mem`'s first value (pages below which
    /// the kernel does not regulate TCP's memory), leaving the rest for bytes in flight,
    /// receive buffers and other sockets; [`DEFAULT_BUDGET`] when it cannot be read.
    /// Read once.
    pub fn of_this_machine() -> Budget {
        static BUDGET: OnceLock<Budget> = OnceLock::new();
        *BUDGET.get_or_init(|| {
            // SAFETY: sysconf has no preconditions.
            let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
            std::fs::read_to_string("/proc/sys/net/ipv4/tcp_mem")
                .ok()
                .and_then(|t| Budget::from_tcp_mem(&t, page))
                .unwrap_or(Budget(DEFAULT_BUDGET))
        })
    }

    /// From the text of `/proc/sys/net/ipv4/tcp_mem` (three page counts) and the page
    /// size; `None` when it does not parse.
    pub fn from_tcp_mem(text: &str, page: u64) -> Option<Budget> {
        let low: u64 = text.split_whitespace().next()?.parse().ok()?;
        Some(Budget(low.checked_mul(page)? / 4))
    }

    /// One body's share when `sending` bodies are being sent (itself included): the
    /// budget divided among them, rounded down to a power of two (so that it changes
    /// seldom as bodies come and go), within [`SEND_QUEUE_LOWAT`] and [`QUEUE_MAX`].
    pub fn share(self, sending: usize) -> u32 {
        let each = self.0 / (sending.max(1) as u64);
        let pow = if each == 0 { 0 } else { 1u64 << each.ilog2() };
        pow.clamp(u64::from(SEND_QUEUE_LOWAT), u64::from(QUEUE_MAX)) as u32
    }
}

/// One file body being sent on `stream`: counted among [`SENDING`] while it lives, its
/// connection's bound kept at its share ([`FileBody::refresh`]) and set back to
/// [`SEND_QUEUE_LOWAT`] when it ends, however it ends.
pub(crate) struct FileBody<'a> {
    stream: &'a TcpStream,
    budget: Budget,
    /// A body of at most [`WHOLE_FILE_MAX`] queued whole: its length, else 0.
    whole: u32,
    /// The bound the socket has now.
    bound: u32,
}

impl<'a> FileBody<'a> {
    /// Starts counting a body of `len` bytes on `stream` and sets its bound.
    pub(crate) fn start(stream: &'a TcpStream, len: u64, budget: Budget) -> FileBody<'a> {
        let sending = SENDING.fetch_add(1, Ordering::Relaxed) + 1;
        let share = budget.share(sending);
        let whole = if len > u64::from(SEND_QUEUE_LOWAT) && len <= WHOLE_FILE_MAX {
            grow_send_buffer(stream, len as usize);
            len as u32
        } else {
            0
        };
        let mut body = FileBody {
            stream,
            budget,
            whole,
            bound: SEND_QUEUE_LOWAT,
        };
        body.set(share.max(whole));
        body
    }

    /// Sets the bound to the body's share of now (one `setsockopt` when it changed).
    pub(crate) fn refresh(&mut self) {
        let share = self.budget.share(SENDING.load(Ordering::Relaxed));
        self.set(share.max(self.whole));
    }

    fn set(&mut self, bound: u32) {
        if bound != self.bound {
            let _ = socket2::SockRef::from(self.stream).set_tcp_notsent_lowat(bound);
            self.bound = bound;
        }
    }
}

impl Drop for FileBody<'_> {
    fn drop(&mut self) {
        SENDING.fetch_sub(1, Ordering::Relaxed);
        self.set(SEND_QUEUE_LOWAT);
    }
}

/// Lets `stream`'s buffer hold `len` bytes unless the kernel has already grown it so far
/// (Linux doubles what is asked, leaving room for its own overhead; best effort). It is
/// asked with `SO_SNDBUFFORCE` (CAP_NET_ADMIN, as root has) only: `SO_SNDBUF` is capped by
/// `net.core.wmem_max` (208 KiB by default) and would fix the buffer below what the
/// kernel's autotuning grows it to, for the connection's life. Without the capability the
/// buffer stays the kernel's, and one call queues what it holds.
fn grow_send_buffer(stream: &TcpStream, len: usize) {
    use std::os::fd::AsRawFd;
    let s = socket2::SockRef::from(stream);
    if s.send_buffer_size().is_ok_and(|b| b < 2 * len) {
        let v = libc::c_int::try_from(len).unwrap_or(libc::c_int::MAX);
        // SAFETY: setsockopt on an open descriptor with a c_int option of its size.
        unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUFFORCE,
                std::ptr::from_ref(&v).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::listen::bound_send_queue;

    async fn pair(l: &tokio::net::TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        bound_send_queue(&s);
        (client, s)
    }

    fn bound_of(s: &TcpStream) -> u32 {
        socket2::SockRef::from(s).tcp_notsent_lowat().unwrap()
    }

    /// A body's bound is its share while it is sent and the floor again after, however
    /// the other tests running at once move the count (a budget too large or too small
    /// for any count to matter).
    #[tokio::test]
    async fn a_body_holds_its_share_and_gives_it_back() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (_client, s) = pair(&l).await;
        assert_eq!(bound_of(&s), SEND_QUEUE_LOWAT);
        {
            let mut body = FileBody::start(&s, 256 << 20, Budget(u64::MAX / 2));
            assert_eq!(bound_of(&s), QUEUE_MAX);
            body.refresh();
            assert_eq!(bound_of(&s), QUEUE_MAX);
        }
        assert_eq!(bound_of(&s), SEND_QUEUE_LOWAT);
        {
            let mut body = FileBody::start(&s, 256 << 20, Budget(0));
            body.refresh();
            assert_eq!(bound_of(&s), SEND_QUEUE_LOWAT);
        }
        // A body queued whole keeps its length as its bound through refreshes, or its
        // share when that is larger.
        {
            let mut body = FileBody::start(&s, 1_000_000, Budget(0));
            body.refresh();
            assert_eq!(bound_of(&s), 1_000_000);
        }
        {
            let mut body = FileBody::start(&s, 1_000_000, Budget(u64::MAX / 2));
            body.refresh();
            assert_eq!(bound_of(&s), QUEUE_MAX);
        }
        assert_eq!(bound_of(&s), SEND_QUEUE_LOWAT);
    }

    /// `/metrics` shows the bodies being sent and the share each has (other tests may
    /// be sending at the same time: at least this one, and the share of that count).
    #[tokio::test]
    async fn metrics_show_the_bodies_being_sent_and_their_share() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (_client, s) = pair(&l).await;
        let body = FileBody::start(&s, 256 << 20, Budget::of_this_machine());
        let mut r = prometheus_client::registry::Registry::default();
        register(&mut r);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        drop(body);
        let value = |name: &str| -> u64 {
            let line = text.lines().find(|l| l.starts_with(&format!("{name} ")));
            let v = line.and_then(|l| l.split_whitespace().nth(1));
            v.and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} in {text}"))
        };
        let sending = value("kindling_http_file_bodies_sending");
        assert!(sending >= 1, "{text}");
        let share = value("kindling_http_send_queue_share_bytes");
        assert_eq!(
            share,
            u64::from(Budget::of_this_machine().share(sending as usize))
        );
    }

    /// One non-blocking `sendfile(2)` of a 1,000,000-byte file to a client that reads
    /// nothing: the accepted socket's bound stops it short; a [`FileBody`] of that length
    /// lets the one call queue it all, with a budget that gives it only the floor.
    #[tokio::test]
    async fn a_body_up_to_the_whole_file_bound_goes_in_one_call() {
        let len = 1_000_000usize;
        assert!(len as u64 <= WHOLE_FILE_MAX && len as u64 > u64::from(SEND_QUEUE_LOWAT));
        let dir = kindling_testkit::tempdir("whole");
        let path = dir.path().join("body");
        std::fs::write(&path, vec![7u8; 2 * len]).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let once = |s: &TcpStream| {
            let mut off: libc::off_t = 0;
            // SAFETY: both descriptors are open; `off` is a live off_t.
            unsafe { libc::sendfile(s.as_raw_fd(), f.as_raw_fd(), &mut off, len) }
        };
        let mut sent = Vec::new();
        for whole in [false, true] {
            let (_client, s) = pair(&l).await;
            let _body = whole.then(|| FileBody::start(&s, len as u64, Budget(0)));
            sent.push(once(&s));
        }
        // And with a budget that gives it more than the file: the buffer grows all the same
        // (made small first: on loopback the kernel's first buffer already holds 1 MB).
        let (_client, s) = pair(&l).await;
        socket2::SockRef::from(&s)
            .set_send_buffer_size(64 << 10)
            .unwrap();
        let body = FileBody::start(&s, len as u64, Budget(u64::MAX / 2));
        sent.push(once(&s));
        drop(body);
        assert!(sent[0] > 0 && (sent[0] as usize) < len, "bounded: {sent:?}");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(sent[1] as usize, len, "whole: {sent:?}");
            assert_eq!(sent[2] as usize, len, "whole with a large share: {sent:?}");
        } else {
            // Without CAP_NET_ADMIN the buffer stays the kernel's: never less than bounded.
            assert!(
                sent[1] >= sent[0] && sent[2] >= sent[0],
                "without the capability: {sent:?}"
            );
        }
    }

    #[test]
    fn the_budget_is_a_quarter_of_tcp_mems_low_mark() {
        assert_eq!(
            Budget::from_tcp_mem("287907\t383877\t575814\n", 4096),
            Some(Budget(287_907 * 4096 / 4))
        );
        assert_eq!(Budget::from_tcp_mem("", 4096), None);
        assert_eq!(Budget::from_tcp_mem("many pages", 4096), None);
        assert_eq!(Budget::from_tcp_mem("18446744073709551615 1 2", 4096), None);
    }

    #[test]
    fn a_share_is_a_power_of_two_between_the_floor_and_the_kernels_maximum() {
        let b = Budget(281 << 20); // this machine's: 287,907 pages of 4 KiB, a quarter
        assert_eq!(b.share(1), QUEUE_MAX);
        assert_eq!(b.share(0), QUEUE_MAX);
        assert_eq!(b.share(32), 4 << 20); // 8.8 MiB each
        assert_eq!(b.share(100), 2 << 20); // 2.8 MiB each
        assert_eq!(b.share(200), 1 << 20); // 1.4 MiB each
        assert_eq!(b.share(1000), SEND_QUEUE_LOWAT); // 288 KiB each: the floor
        let small = Budget(DEFAULT_BUDGET);
        assert_eq!(small.share(32), 2 << 20);
        assert_eq!(small.share(33), 1 << 20);
        assert_eq!(Budget(0).share(1), SEND_QUEUE_LOWAT);
        for n in 1..5000 {
            let s = b.share(n);
            assert!(s.is_power_of_two() && (SEND_QUEUE_LOWAT..=QUEUE_MAX).contains(&s));
            // Together within the budget, unless each is at the floor.
            assert!(s == SEND_QUEUE_LOWAT || n as u64 * u64::from(s) <= b.0);
        }
    }
}
