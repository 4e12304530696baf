//! The bounded in-memory store: machines by MAC, their last boots, IP -> MAC ties.
//! Sans-I/O: every input carries its own timestamp.
//!
//! A machine is its boots and a boot its [`Event`](crate::Event)s, kept encoded: one
//! byte buffer and a list of names per boot, a few hundred bytes for a whole boot (see
//! kindling-ops' `examples/memory_per_machine.rs`). The machine's facts are read from its
//! newest events; events are made again and text made only for readers.
//!
//! The parts, each depending only on those listed before it:
//!
//! * `types`: [`Limits`], [`Boot`], [`BootError`], and what readers get of a machine:
//!   [`MachineSummary`], [`MachineDetail`].
//! * `log`: a boot's events, encoded (`EventLog`).
//! * `machine`: a machine as kept (`MachineRec`), its facts, a boot's progress.
//! * `api`: the [`Store`]: ingest, replay, IP -> MAC ties, pending events, eviction,
//!   reads.

mod api;
mod log;
mod machine;
mod types;

#[cfg(test)]
mod tests;

pub use api::Store;
pub use types::{Boot, BootError, LeaseSummary, Limits, MachineDetail, MachineSummary};
