//! Full DHCP mode seen from the operator's side: the lease table as `/api/v1/leases` and
//! the machine views show it.

use crate::ops::Ops;
use kindling_timeline::store::LeaseSummary;

impl Ops {
    /// Full DHCP mode's lease table (empty in proxy mode), by address.
    pub fn leases(&self) -> Vec<LeaseSummary> {
        let Some(h) = self.dhcp_leases.get() else {
            return Vec::new();
        };
        let mut leases = h.leases();
        leases.sort_by_key(|l| l.ip);
        leases.into_iter().map(LeaseSummary::from).collect()
    }

    /// The DHCP server whose leases the machine views and `/api/v1/leases` show.
    pub fn add_dhcp_leases(&self, leases: kindling_dhcp::LeasesHandle) {
        let _ = self.dhcp_leases.set(leases);
    }
}
