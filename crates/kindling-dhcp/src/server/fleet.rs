//! Full mode in a fleet: before an ACK goes out, its lease is claimed in the store the
//! servers share (etcd, through [`SharedLeases`], which the binary implements), so that two
//! servers serving one segment never ACK one address to two machines. A claim another
//! server's client already holds turns the ACK into a NAK and holds the address back here
//! until that lease ends; the client starts over and is offered another address. The
//! store's calls block, so they run on tokio's blocking pool, at most
//! [`MAX_CLAIMS`](super::claim::MAX_CLAIMS) at once.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::warn;

use super::claim::{Claim, SharedLeases};
use super::leasing::unix_now;
use super::worker::{Pending, Worker, lock};
use crate::full::leases::format_mac;
use crate::policy::{ClientInfo, Decision, IgnoreReason};

impl Worker {
    /// Claims the lease of the ACK `p` (of `ip`) in the shared store; what to send instead
    /// when another client holds it (a NAK), or `None` when nothing can be sent now.
    pub(super) async fn claim_first(
        &self,
        fleet: Arc<dyn SharedLeases>,
        ip: Ipv4Addr,
        packet: &[u8],
        source: SocketAddrV4,
        mut p: Pending,
    ) -> Option<Pending> {
        let leasing = self.shared.leasing.as_ref()?;
        let lease = leasing.holder(ip)?;
        let now = unix_now();
        let (mac, expires) = (lease.mac, lease.expires);
        let claim = tokio::task::spawn_blocking(move || fleet.claim(ip, mac, expires, now))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)));
        let until = match claim {
            Ok(Claim::Granted) => return Some(p),
            Ok(Claim::Held {
                mac: other,
                expires,
            }) => {
                p.span.in_scope(|| warn!(address = %ip, holder = %format_mac(&other), until = expires, "address held by another server's client: NAK, holding it back"));
                expires
            }
            Err(e) => {
                self.unavailable();
                p.span.in_scope(|| warn!(address = %ip, error = %e, "shared store unreachable: lease not claimed, no ACK (the client asks again)"));
                return None;
            }
        };
        let local = lock(&self.shared.local).clone();
        let ctx = self.context(source, &local);
        let outcome = leasing.held_elsewhere(&self.config, &ctx, packet, ip, until);
        match outcome.decision {
            // The REQUEST decided again with the address held: a NAK (never another lease,
            // which would need a claim of its own).
            Decision::Reply(r) if r.lease.is_none() && self.safe(&r, &local, &p.span) => {
                p.reply = r;
                p.client = outcome.client;
                Some(p)
            }
            Decision::Reply(_) => None,
            Decision::Ignore(reason) => {
                self.stats.0.ignored[reason.index()].fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// A RELEASE applied here: the client's claim in the shared store ends now, so that
    /// every server may hand the address out again (best effort, in the background).
    pub(super) fn release_shared(&self, client: Option<&ClientInfo>) {
        let (Some(fleet), Some(c)) = (self.shared.fleet.get(), client) else {
            return;
        };
        let (Some(mac), ip) = (c.mac, c.ciaddr) else {
            return;
        };
        if ip.is_unspecified() {
            return;
        }
        let (fleet, span) = (fleet.clone(), tracing::Span::current());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = fleet.release(ip, mac, unix_now()) {
                span.in_scope(|| warn!(address = %ip, error = %e, "shared store: release not recorded (the claim ends with its lease)"));
            }
        });
    }

    /// An ACK not sent for want of the shared store (unreachable, or too many claims).
    pub(super) fn unavailable(&self) {
        self.stats.0.ignored[IgnoreReason::SharedStoreUnavailable.index()]
            .fetch_add(1, Ordering::Relaxed);
    }
}
