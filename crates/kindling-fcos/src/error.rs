use std::path::PathBuf;

use kindling_guard::Chain;

/// Everything that can stop a pull, a rollback or a status check.
///
/// Each message is whole: an error from another crate (reqwest, I/O, JSON)
/// is written into it with its own causes ([`Chain`]: `Connection refused`,
/// not just `error sending request`) and is not also returned by `source()`,
/// so that no printer, `{}` or anyhow's `{:#}`, repeats a cause.
#[derive(Debug, thiserror::Error)]
pub enum FcosError {
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    /// `error` without its URL (the message names it once).
    #[error("http request to {url} failed: {}", Chain(.error))]
    Http { url: String, error: reqwest::Error },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("download of {url} interrupted: {why}")]
    Interrupted { url: String, why: &'static str },
    #[error("{url} is larger than the {limit} bytes allowed")]
    TooLarge { url: String, limit: u64 },
    #[error("stream metadata from {url} is not valid: {}", Chain(.error))]
    Metadata {
        url: String,
        error: serde_json::Error,
    },
    #[error("stream metadata has no {0}")]
    Missing(String),
    #[error(
        "release mismatch: the metadata says release {expected} but the {artifact} location {location} is for another release"
    )]
    ReleaseMismatch {
        artifact: &'static str,
        expected: String,
        location: String,
    },
    #[error("sha256 mismatch for {file}: metadata says {expected}, downloaded data has {actual}")]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    #[error(
        "no signature for {file} at {url} (HTTP {status}); refusing it (pass --insecure to skip signatures)"
    )]
    SignatureMissing {
        file: String,
        url: String,
        status: u16,
    },
    #[error("bad OpenPGP signature for {file}: {why}")]
    SignatureInvalid { file: String, why: String },
    #[error(
        "no OpenPGP keyring: none of {tried:?} exists; point --keyring (or fcos.keyring) at Fedora's public keys, or pass --insecure"
    )]
    NoKeyring { tried: Vec<PathBuf> },
    #[error("keyring {path}: {why}")]
    Keyring { path: PathBuf, why: String },
    #[error("{}: {}", .path.display(), Chain(.error))]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("profile {path}: {why}")]
    Profile { path: PathBuf, why: String },
    #[error("state file {path}: {why}")]
    State { path: PathBuf, why: String },
    #[error("another pull or rollback of stream {0} is running")]
    Locked(String),
    #[error(
        "no server URL: pass --server-url (or set fcos.server_url) to the http://host:port the machines reach this server on"
    )]
    NoServerUrl,
    #[error("stream {stream}: {why}")]
    Rollback { stream: String, why: String },
    /// `last` names the URL.
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp {
        url: String,
        attempts: u32,
        last: Box<FcosError>,
    },
}

impl FcosError {
    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        FcosError::Io {
            path: path.into(),
            error,
        }
    }

    /// A failed request to `url` (reqwest's own copy of the URL left out).
    pub(crate) fn http(url: &impl std::fmt::Display, error: reqwest::Error) -> Self {
        FcosError::Http {
            url: url.to_string(),
            error: error.without_url(),
        }
    }

    /// Whether trying the same download again may help (network trouble and
    /// server errors), as opposed to a verdict on the data.
    pub fn is_transient(&self) -> bool {
        match self {
            FcosError::Http { .. } | FcosError::Interrupted { .. } => true,
            FcosError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
}
