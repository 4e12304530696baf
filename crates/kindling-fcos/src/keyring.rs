//! Detached OpenPGP signatures, checked with rPGP (pure Rust) against a
//! keyring: a file, or a directory of files, of armored or binary public keys.

use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::packet::Signature;
use pgp::types::KeyDetails;

use crate::FcosError;

/// Public keys a signature may be made by.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
    sources: Vec<PathBuf>,
}

/// Largest key file and signature read (Fedora's keys are a few KiB).
const MAX_KEY_FILE: u64 = 4 << 20;
pub(crate) const MAX_SIGNATURE: u64 = 64 << 10;

impl Keyring {
    /// Loads every public key in `path` (a file, or every regular file in a
    /// directory, not recursing). Files without any usable key are skipped in
    /// a directory (with a warning) but an error for a single file; keys whose
    /// self-signatures do not verify, or that carry a revocation, are dropped.
    pub fn load(path: &Path) -> Result<Keyring, FcosError> {
        let meta = fs::metadata(path).map_err(|e| FcosError::io(path, e))?;
        let mut ring = Keyring {
            keys: Vec::new(),
            sources: Vec::new(),
        };
        if meta.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(path)
                .map_err(|e| FcosError::io(path, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for f in files {
                match load_file(&f) {
                    Ok(keys) if !keys.is_empty() => {
                        ring.keys.extend(keys);
                        ring.sources.push(f);
                    }
                    Ok(_) => tracing::debug!(file = %f.display(), "no public key in file"),
                    Err(why) => tracing::warn!(file = %f.display(), %why, "skipping keyring file"),
                }
            }
        } else {
            let keys = load_file(path).map_err(|why| FcosError::Keyring {
                path: path.to_path_buf(),
                why,
            })?;
            ring.keys.extend(keys);
            ring.sources.push(path.to_path_buf());
        }
        if ring.keys.is_empty() {
            return Err(FcosError::Keyring {
                path: path.to_path_buf(),
                why: "no usable OpenPGP public key found".into(),
            });
        }
        tracing::debug!(
            keys = ring.keys.len(),
            files = ring.sources.len(),
            "keyring loaded"
        );
        Ok(ring)
    }

    /// The keyring an operator named, else the first default location that exists.
    pub fn resolve(explicit: Option<&Path>) -> Result<Keyring, FcosError> {
        if let Some(p) = explicit {
            return Keyring::load(p);
        }
        let tried: Vec<PathBuf> = crate::DEFAULT_KEYRINGS.iter().map(PathBuf::from).collect();
        for p in &tried {
            if p.exists() {
                return Keyring::load(p);
            }
        }
        Err(FcosError::NoKeyring { tried })
    }

    /// Number of keys loaded.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Fingerprints (hex) of the primary keys.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| hex::encode(k.fingerprint().as_bytes()))
            .collect()
    }

    /// Checks the detached signature `sig` (armored or binary) over the file
    /// at `data`. Returns the fingerprint of the (sub)key that made it.
    ///
    /// A signature that does not verify is refused in words: "signature does
    /// not match", with the key that made it (or the issuer the signature
    /// names when the keyring has no such key), never rPGP's own assertion text.
    pub fn verify_file(&self, sig: &[u8], data: &Path, file: &str) -> Result<String, FcosError> {
        let invalid = |why: String| FcosError::SignatureInvalid {
            file: file.to_string(),
            why,
        };
        let sigs: Vec<DetachedSignature> = DetachedSignature::from_reader_many(sig)
            .map_err(|e| invalid(format!("not a readable OpenPGP signature ({e})")))?
            .0
            .filter_map(|s| s.ok())
            .collect();
        if sigs.is_empty() {
            return Err(invalid("no signature packet in it".into()));
        }
        // Why none verified: a key of the keyring that made a signature over other
        // bytes says more than an issuer the keyring does not hold.
        let mut mismatch: Option<String> = None;
        let mut issuers: Vec<String> = Vec::new();
        for s in &sigs {
            let named = issuer(&s.signature);
            issuers.extend(named.clone());
            for key in &self.keys {
                let mut candidates: Vec<(String, bool, Verifier<'_>)> = Vec::new();
                candidates.push((
                    hex::encode(key.primary_key.fingerprint().as_bytes()),
                    issued_by(&s.signature, &key.primary_key),
                    Box::new(|r: &mut dyn Read| s.signature.verify(&key.primary_key, r)),
                ));
                for sub in &key.public_subkeys {
                    if sub.verify_bindings(&key.primary_key).is_err() {
                        continue;
                    }
                    candidates.push((
                        hex::encode(sub.key.fingerprint().as_bytes()),
                        issued_by(&s.signature, &sub.key),
                        Box::new(|r: &mut dyn Read| s.signature.verify(&sub.key, r)),
                    ));
                }
                for (fp, issued, verify) in candidates {
                    if !issued {
                        continue;
                    }
                    let f = fs::File::open(data).map_err(|e| FcosError::io(data, e))?;
                    let mut r = BufReader::with_capacity(1 << 20, f);
                    match verify(&mut r) {
                        Ok(()) => return Ok(fp),
                        Err(pgp::errors::Error::IO { source, .. }) => {
                            return Err(FcosError::io(data, source));
                        }
                        Err(
                            pgp::errors::Error::Unsupported { message, .. }
                            | pgp::errors::Error::Unimplemented { message, .. },
                        ) => {
                            mismatch.get_or_insert(format!(
                                "signature by key {fp} cannot be checked: unsupported {message}"
                            ));
                        }
                        Err(_) if named.is_some() => {
                            mismatch = Some(format!(
                                "signature does not match the file: key {fp} made it over other bytes (the file or its signature was altered)"
                            ));
                        }
                        Err(_) => {
                            mismatch.get_or_insert(
                                "signature does not match the file with any key of the keyring (it names no issuer)".into(),
                            );
                        }
                    }
                }
            }
        }
        if let Some(why) = mismatch {
            return Err(invalid(why));
        }
        issuers.sort();
        issuers.dedup();
        Err(invalid(if issuers.is_empty() {
            "signature does not match: no key of the keyring made it".into()
        } else {
            format!(
                "signature does not match any key of the keyring: made by key {}, which the keyring does not hold",
                issuers.join(", ")
            )
        }))
    }
}

/// The issuer a signature names: its issuer fingerprint, else its key id (hex).
fn issuer(sig: &Signature) -> Option<String> {
    sig.issuer_fingerprint()
        .first()
        .map(|fp| hex::encode(fp.as_bytes()))
        .or_else(|| sig.issuer_key_id().first().map(hex::encode))
}

/// Whether `sig` names `key` as its issuer (or names none, as rPGP accepts).
fn issued_by(sig: &Signature, key: &impl KeyDetails) -> bool {
    let ids = sig.issuer_key_id();
    let fps = sig.issuer_fingerprint();
    (ids.is_empty() && fps.is_empty())
        || ids.iter().any(|id| **id == key.legacy_key_id())
        || fps.iter().any(|fp| **fp == key.fingerprint())
}

const ARMOR_BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";

/// The armored public key blocks of a text, each from its BEGIN line to the
/// start of the next one (text outside blocks is ignored by the parser).
fn armor_blocks(text: &str) -> Vec<&str> {
    let starts: Vec<usize> = text.match_indices(ARMOR_BEGIN).map(|(i, _)| i).collect();
    starts
        .iter()
        .enumerate()
        .filter_map(|(n, &s)| text.get(s..starts.get(n + 1).copied().unwrap_or(text.len())))
        .collect()
}

type Verifier<'a> = Box<dyn Fn(&mut dyn Read) -> pgp::errors::Result<()> + 'a>;

fn load_file(path: &Path) -> Result<Vec<SignedPublicKey>, String> {
    let f = fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    f.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(format!("larger than {MAX_KEY_FILE} bytes"));
    }
    // rPGP's multi-block armor reader keeps only the last of several
    // concatenated armored blocks (as in coreos-installer's signing-keys.asc),
    // so armored files are split into blocks here; binary files (gpg
    // --export) are one packet stream holding any number of keys.
    let mut parsed: Vec<pgp::errors::Result<SignedPublicKey>> = Vec::new();
    let text = std::str::from_utf8(&bytes).ok();
    match text.filter(|t| t.contains(ARMOR_BEGIN)) {
        Some(t) => {
            for block in armor_blocks(t) {
                let (iter, _) = SignedPublicKey::from_armor_many(block.as_bytes())
                    .map_err(|e| e.to_string())?;
                parsed.extend(iter);
            }
        }
        None => {
            let iter = SignedPublicKey::from_bytes_many(&bytes[..]).map_err(|e| e.to_string())?;
            parsed.extend(iter);
        }
    }
    let mut keys = Vec::new();
    for k in parsed {
        let k = match k {
            Ok(k) => k,
            Err(e) => return Err(e.to_string()),
        };
        if let Err(e) = k.verify_bindings() {
            tracing::warn!(file = %path.display(), error = %e, "dropping key whose self-signatures do not verify");
            continue;
        }
        if !k.details.revocation_signatures.is_empty() {
            tracing::warn!(file = %path.display(), "dropping revoked key");
            continue;
        }
        keys.push(k);
    }
    Ok(keys)
}
