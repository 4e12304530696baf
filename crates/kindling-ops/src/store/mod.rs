//! The bounded in-memory store: machines by MAC, their last boots, IP -> MAC ties.
//! Sans-I/O: every input carries its own timestamp.
//!
//! Laid out for writes (every DHCP, TFTP and HTTP event), not reads (the API, the CLI,
//! the dashboard): a machine is one small record keyed by its MAC's 48 bits, its facts
//! packed into one block; a boot holds its events inline (`StoredEvent`: numbers plus
//! one packed block of texts, recurring texts as shared `Names`). The public
//! [`Machine`], [`Boot`] and [`Event`](crate::Event) are built from that on each read.
//! About 330 bytes per machine with one HTTP request (about 930 before), see
//! `examples/memory_per_machine.rs`.
//!
//! The parts, each depending only on those listed before it:
//!
//! * `types`: what readers get: [`Limits`], [`Machine`], [`Boot`], [`BootError`],
//!   [`MachineSummary`], [`MachineDetail`].
//! * `names`: the shared table of recurring texts (`Names`).
//! * `stored`: the compact forms kept in memory (`StoredEvent`, `StoredBoot`,
//!   `MachineRec`) and the indexes of their packed fields.
//! * `api`: the [`Store`]: ingest, replay, IP -> MAC ties, pending events, eviction,
//!   reads.

mod api;
mod names;
mod stored;
mod types;

#[cfg(test)]
mod tests;

pub use api::Store;
pub use types::{Boot, BootError, Limits, Machine, MachineDetail, MachineSummary};
