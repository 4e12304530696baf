//! Butane (`fcos` variant, spec 1.0.0 to 1.6.0) to Ignition translation, and Ignition
//! validation, in pure Rust.
//!
//! * [`translate`] turns Butane YAML into Ignition JSON (spec 3.0.0 to 3.5.0 depending on the
//!   Butane version), byte-compatible with the Go `butane` tool where documented in
//!   [`dataurl`]; errors and warnings carry the YAML field path and line/column.
//! * [`validate_ignition`] checks a raw Ignition document (spec 3.0.0 to 3.5.0).
//! * [`cli`] is the `butane`-compatible command line (`kindling butane`).
//!
//! | Butane fcos | Ignition spec |
//! | --- | --- |
//! | 1.0.0 | 3.0.0 |
//! | 1.1.0 | 3.1.0 |
//! | 1.2.0 | 3.2.0 |
//! | 1.3.0 | 3.2.0 |
//! | 1.4.0 | 3.3.0 |
//! | 1.5.0 | 3.4.0 |
//! | 1.6.0 | 3.5.0 |
//!
//! The `flatcar` variant 1.0.0 and 1.1.0 translate to 3.3.0 and 3.4.0. See `README.md` for the
//! exact behaviour and the known differences from Go's `butane`.

mod bootdev;
pub mod cli;
pub mod dataurl;
pub mod json;
mod merge;
pub mod report;
pub mod schema;
mod translate;
pub mod validate;
pub mod yaml;

pub use report::{Entry, Report, Severity};
pub use translate::{TranslateError, TranslateOptions, Translation, spec_for_fcos, translate};
pub use validate::validate_ignition;
