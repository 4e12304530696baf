//! Kindling's data model: matchbox-compatible groups, profiles, labels and
//! selection, held in an in-memory index.

pub mod fcos;
pub mod gojson;
pub mod group;
pub mod index;
pub mod json;
pub mod labels;
pub mod lifecycle;
pub mod mac;
pub mod machines;
pub mod profile;
pub mod store;

pub use fcos::FcosTrack;
pub use group::{Group, GroupError, Selector, Str};
pub use index::{Considered, Index};
pub use labels::{LabelWarning, Labels, labels_from_args, labels_from_query};
pub use lifecycle::{Done, InstallOnce, LocalBoot};
pub use mac::{Mac, MacAddr};
pub use machines::{Change, Discovered, Installed, MachineRecord, Machines, Pending, Via};
pub use profile::{Boot, Profile, ProfileError};
pub use store::{Area, DataDir, Loader, Problem, ProfileLookupError, ReadError, Snapshot};
