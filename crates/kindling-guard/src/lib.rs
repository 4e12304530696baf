//! What every listener of a boot server needs against hostile clients, said once:
//!
//! - [`Esc`]: client-supplied text made safe for a log line (no forged lines, no
//!   terminal escape codes, in any log format);
//! - [`Budget`] and [`Buckets`]: token buckets per client key (MAC, IP address) in a
//!   bounded table, with an injected clock (sans-I/O, testable without sleeping);
//! - [`Counts`]: how many of something (connections, transfers, fetches) each client
//!   holds, with a per-client cap and a guard that gives the slot back when dropped;
//! - [`LogGate`]: a rate limit for log lines, so that a flood cannot flood the log;
//! - [`answerable`]: whether a datagram's source address can be answered at all;
//! - [`ClientKey`]: the key a TCP client's connections are counted under (an IPv4
//!   address, or an IPv6 /64);
//! - [`grow_receive_buffer`]: room in a listening UDP socket for a rack's requests
//!   arriving at once ([`BURST_BUFFER`]);
//!
//! and what every download says about itself:
//!
//! - [`Chain`]: an error with its whole `source()` chain on one line, no cause repeated
//!   (`connection refused`, not just `error sending request`);
//! - [`progress`]: when a long download logs a progress line ([`progress::Meter`],
//!   sans-I/O) and its single updating line on a terminal ([`progress::TtyLine`]).
//!
//! No dependency but libc, and no I/O but that terminal line on stderr and a socket
//! option: the DHCP and TFTP cores stay reusable on their own.

mod addr;
mod bucket;
mod burst;
mod chain;
mod count;
mod esc;
pub mod progress;

pub use addr::{ClientKey, answerable};
pub use bucket::{Buckets, Budget, LogGate, Take};
pub use burst::{BURST_BUFFER, Short, grow_receive_buffer};
pub use chain::{Chain, chain};
pub use count::{Counts, Full, Held};
pub use esc::{Esc, EscDisplay, esc};
