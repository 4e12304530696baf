//! The store a fleet's servers agree on full mode's addresses in: [`SharedLeases`] (the
//! binary implements it over etcd) and its answer, [`Claim`]. Used by `fleet`.

use std::io;
use std::net::Ipv4Addr;

/// Who holds an address in the shared store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The address is ours for the client: absent, the same MAC's, or a lease that ended.
    Granted,
    /// Another client holds it until `expires` (unix seconds), through some server.
    Held { mac: [u8; 6], expires: u64 },
}

/// The store the servers of a fleet agree on addresses in. Both calls block; they must be
/// atomic on the store's side (a compare-and-swap), so that two servers cannot both win.
pub trait SharedLeases: Send + Sync {
    /// Claims `ip` for `mac` until `expires`, unless another MAC holds it past `now`.
    /// An error (the store unreachable) means the ACK is not sent: the client asks again.
    fn claim(&self, ip: Ipv4Addr, mac: [u8; 6], expires: u64, now: u64) -> io::Result<Claim>;
    /// `mac` gave `ip` up (DHCPRELEASE): its claim ends `now`. Best effort.
    fn release(&self, ip: Ipv4Addr, mac: [u8; 6], now: u64) -> io::Result<()>;
}

/// Claims in flight at once; past that an ACK is dropped (`shared_store_unavailable`).
pub(super) const MAX_CLAIMS: usize = 256;
