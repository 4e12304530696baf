//! Kindling's boot timelines, sans I/O: what happened to each machine, in memory.
//!
//! * [`event`]: the typed boot [`Event`] (one line of the journal, one entry of a
//!   timeline), its JSON and its `what` line, made when read.
//! * [`classify`]: which boot [`Stage`] a request is (profiles' kernel and initrd paths).
//! * [`store`]: the bounded [`Store`]: machines by MAC, their last boots, IP -> MAC ties;
//!   every input carries its own timestamp.
//! * [`text`]: what the dashboard and `kindling machines` both print of a machine.
//!
//! No sockets, files or clocks here: `kindling-ops` feeds the store from the DHCP, TFTP
//! and HTTP servers and keeps the journal; `kindling-api`'s `kindling machines` replays a
//! journal into a store of its own.

pub mod classify;
pub mod event;
pub mod store;
pub mod text;

pub use event::{
    Detail, Dhcp, DhcpStep, Endpoint, Event, Http, Kind, Name, Reason, Source, Stage, Tftp,
};
pub use store::{BootError, LeaseSummary, Limits, MachineDetail, MachineSummary, Store};
