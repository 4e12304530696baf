//! The operator token (`operator.token` in the cache directory) that lets
//! `kindling cache prefetch --server` start fetches through the server.

use std::io;
use std::path::Path;

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where `kindling cache prefetch --server` finds the token that lets it
/// start fetches through the server (readable by the cache's owner only).
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";

/// Reads the operator token in `dir`, creating it (random, mode 0600) when
/// missing or malformed.
pub(super) fn operator_token(dir: &Path) -> io::Result<String> {
    let path = dir.join(OPERATOR_TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim();
        if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(t.to_string());
        }
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| io::Error::other(format!("no random numbers: {e}")))?;
    let token = hex(&raw);
    let tmp = dir.join(format!("{OPERATOR_TOKEN_FILE}.{}.tmp", std::process::id()));
    let write = || -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(format!("{token}\n").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(token)
}

/// Reads the operator token of the cache in `dir` (for the CLI).
pub fn read_operator_token(dir: &Path) -> Option<String> {
    let t = std::fs::read_to_string(dir.join(OPERATOR_TOKEN_FILE)).ok()?;
    Some(t.trim().to_string()).filter(|t| !t.is_empty())
}
