//! The bounded in-memory store: machines by MAC, their last boots, IP -> MAC ties.
//! Sans-I/O: every input carries its own timestamp.
//!
//! A machine is its boots and a boot its [`Event`](crate::Event)s, kept as they are
//! (typed, a DHCP event inline in 120 bytes, see kindling-ops' `examples/memory_per_machine.rs`); the
//! machine's facts are read from its newest events, text is made only for readers.
//!
//! The parts, each depending only on those listed before it:
//!
//! * `types`: [`Limits`], [`Boot`], [`BootError`], and what readers get of a machine:
//!   [`MachineSummary`], [`MachineDetail`].
//! * `machine`: a machine as kept (`MachineRec`), its facts, a boot's progress.
//! * `api`: the [`Store`]: ingest, replay, IP -> MAC ties, pending events, eviction,
//!   reads.

mod api;
mod machine;
mod types;

#[cfg(test)]
mod tests;

pub use api::Store;
pub use types::{Boot, BootError, LeaseSummary, Limits, MachineDetail, MachineSummary};
