//! A machine's record: its lifecycle state as stored (one JSON file per machine, or one
//! key of the shared store), and the names and parsing of those records.

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;

/// How an install was marked done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Ignition,
    Callback,
    Operator,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Ignition => "ignition",
            Via::Callback => "callback",
            Via::Operator => "operator",
        }
    }
}

/// A finished install: the machine's next boots go to its disk until it is re-armed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// Unix milliseconds.
    pub at: u64,
    pub via: Via,
    /// The group and profile it was installed with (empty when the operator marked a
    /// machine by hand).
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub profile: String,
}

/// A machine that asked for its boot script and matched no group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Discovered {
    /// Unix milliseconds.
    pub first_seen: u64,
    /// Unix milliseconds (kept in memory on every request; written with the record).
    pub last_seen: u64,
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// What the client said (`arch`, `uuid`, `serial`, `hostname` labels), each cut to
    /// [`MAX_FACT_BYTES`].
    #[serde(default)]
    pub arch: String,
    #[serde(default)]
    pub uuid: String,
    #[serde(default)]
    pub serial: String,
    #[serde(default)]
    pub hostname: String,
    /// When facts were last handed to the writer (memory only): a client whose facts
    /// keep changing is written at most once a minute.
    #[serde(skip)]
    pub written: u64,
}

/// The longest client-supplied fact kept for a discovered machine.
pub const MAX_FACT_BYTES: usize = 128;
/// One machine's lifecycle state (its file's content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineRecord {
    /// `52:54:00:12:34:56`.
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<Installed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered: Option<Discovered>,
}

impl MachineRecord {
    pub(super) fn empty(mac: MacAddr) -> MachineRecord {
        MachineRecord {
            mac: mac.to_string(),
            installed: None,
            discovered: None,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.installed.is_none() && self.discovered.is_none()
    }
}

/// The file of `mac`'s record in the machines directory.
pub fn file_name(mac: MacAddr) -> String {
    format!("{}.json", mac.to_string().replace(':', "-"))
}

pub(super) fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_FACT_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Reads one record file: its MAC (from the name, the authority) and content, or why not.
pub(super) fn read_record(path: &Path, mac: MacAddr) -> Result<MachineRecord, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    parse_record(&bytes, mac)
}

/// One record's content, for `mac` (the name's MAC is the authority).
pub(super) fn parse_record(bytes: &[u8], mac: MacAddr) -> Result<MachineRecord, String> {
    let mut r: MachineRecord = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    match MacAddr::parse(&r.mac) {
        Ok(m) if m == mac => {
            r.mac = mac.to_string();
            Ok(r)
        }
        _ => Err(format!("names {:?} but is the file of {mac}", r.mac)),
    }
}

/// The MAC a record file's name stands for (`52-54-00-12-34-56.json`).
pub(super) fn mac_of_file(name: &str) -> Option<MacAddr> {
    let stem = name.strip_suffix(".json")?;
    let mac = MacAddr::parse(stem).ok()?;
    (file_name(mac) == name).then_some(mac)
}

/// Reads `mac`'s record straight from a machines directory (`None` when it has none or it
/// does not load).
pub fn read_one(dir: &Path, mac: MacAddr) -> Option<MachineRecord> {
    read_record(&dir.join(file_name(mac)), mac).ok()
}
