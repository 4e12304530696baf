//! DHCPv6 for network boot over IPv6 (UEFI HTTP Boot, UEFI PXE over IPv6, iPXE).
//!
//! * `wire`: the panic-free message parser and encoder;
//! * `addr`: stateless address assignment (the /64 plus a SipHash of DUID and IAID);
//! * `decide`: the sans-I/O core, [`decide6`];
//! * the `[dhcp.v6]` table is `crate::config::v6`;
//! * `server`: the tokio shell, [`Dhcp6Server`].
//!
//! See `docs/dhcpv6.md`.

pub mod addr;
pub mod decide;
pub mod server;
pub mod wire;

pub use self::decide::{Client6, Context6, Decision6, Ignore6, Outcome6, Reply6, decide6};
pub use self::server::{Dhcp6Error, Dhcp6Server, Dhcp6Stats, Listener6Info, Stats6Handle};
pub use crate::config::v6::{Checked6, Dhcp6Config};
