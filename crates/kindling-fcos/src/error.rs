use std::path::PathBuf;

/// Everything that can stop a pull, a rollback or a status check.
#[derive(Debug, thiserror::Error)]
pub enum FcosError {
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("http request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("download of {url} interrupted: {why}")]
    Interrupted { url: String, why: &'static str },
    #[error("{url} is larger than the {limit} bytes allowed")]
    TooLarge { url: String, limit: u64 },
    #[error("stream metadata from {url} is not valid: {source}")]
    Metadata {
        url: String,
        #[source]
        source: serde_json::Error,
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
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
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
    #[error("download of {url} failed after {attempts} attempts: {last}")]
    GaveUp {
        url: String,
        attempts: u32,
        last: Box<FcosError>,
    },
}

impl FcosError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FcosError::Io {
            path: path.into(),
            source,
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
