//! Diagnostics: a [`Report`] is a list of [`Entry`] values, each with a severity, a message, the
//! field path it concerns and, when known, the 1-based line and column in the source document.

use std::fmt;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational only.
    Info,
    /// Suspicious but accepted (fatal only with `--strict`).
    Warning,
    /// The document is rejected.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One diagnostic.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// Severity of the diagnostic.
    pub severity: Severity,
    /// Human readable message (Butane's / Ignition's wording where one exists).
    pub message: String,
    /// Dotted field path, e.g. `passwd.users.0.ssh_authorized_keys` (YAML field names for Butane
    /// input, JSON field names for Ignition input). Empty for the document root.
    pub path: String,
    /// 1-based line in the source, when known.
    pub line: Option<usize>,
    /// 1-based column in the source, when known.
    pub column: Option<usize>,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.severity)?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, " at line {l}, column {c}")?,
            (Some(l), None) => write!(f, " at line {l}")?,
            _ => {}
        }
        if !self.path.is_empty() {
            write!(f, " ({})", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A list of diagnostics.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// The diagnostics, in the order they were found.
    pub entries: Vec<Entry>,
}

impl Report {
    /// Adds an entry.
    pub fn push(
        &mut self,
        severity: Severity,
        message: impl Into<String>,
        path: impl Into<String>,
        pos: Option<(usize, usize)>,
    ) {
        self.entries.push(Entry {
            severity,
            message: message.into(),
            path: path.into(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
        });
    }

    /// Whether any entry is an error.
    pub fn has_errors(&self) -> bool {
        self.entries.iter().any(|e| e.severity == Severity::Error)
    }

    /// Whether any entry is a warning.
    pub fn has_warnings(&self) -> bool {
        self.entries.iter().any(|e| e.severity == Severity::Warning)
    }

    /// Whether the report is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| e.severity == Severity::Error)
    }

    /// Warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| e.severity == Severity::Warning)
    }

    /// Appends all entries of `other`.
    pub fn merge(&mut self, other: Report) {
        self.entries.extend(other.entries);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}
