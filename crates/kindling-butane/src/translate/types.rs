//! The public face of a translation: its options, its result and its error.

use crate::report::Report;
use serde_json::Value;
use std::path::PathBuf;

/// Options of [`translate`](crate::translate).
#[derive(Clone, Debug, Default)]
pub struct TranslateOptions {
    /// Directory that `local` / `contents_local` / `ssh_authorized_keys_local` / `trees` are
    /// relative to (`-d/--files-dir`). Without it, those fields are errors, as in Butane.
    pub files_dir: Option<PathBuf>,
    /// Treat warnings as errors (`-s/--strict`).
    pub strict: bool,
    /// Never gzip inline/local contents (Butane's `NoResourceAutoCompression`).
    pub no_resource_auto_compression: bool,
}

/// A successful translation.
#[derive(Clone, Debug)]
pub struct Translation {
    /// Compact JSON, byte-compatible with Butane's output (Go escaping, Go key order).
    pub json: String,
    /// The same document as a value.
    pub value: Value,
    /// Ignition spec version of the output, e.g. `3.0.0`.
    pub spec_version: String,
    /// Butane variant (`fcos`).
    pub variant: String,
    /// Butane version, e.g. `1.0.0`.
    pub version: String,
    /// Warnings (never errors).
    pub warnings: Report,
}

impl Translation {
    /// Pretty JSON like `butane --pretty` (2-space indent).
    pub fn pretty(&self) -> String {
        crate::json::to_go_json_pretty(&self.value)
    }
}

/// A failed translation: the report holds at least one error (or, with `strict`, a warning).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct TranslateError {
    /// Butane-style summary, e.g. `source config is invalid`.
    pub message: String,
    /// All diagnostics.
    pub report: Report,
}

/// A failed translation with the given summary.
pub(super) fn fail(message: &str, report: Report) -> TranslateError {
    TranslateError {
        message: message.to_string(),
        report,
    }
}
