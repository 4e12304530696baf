//! The keyring against real-world key material: Fedora's published keys
//! (parse only) and GnuPG-made RSA 4096 keys and signatures (Fedora signs
//! with GnuPG), so that rPGP is checked against the tool that makes the
//! signatures, not only against itself.

use std::fs;
use std::path::Path;
use std::process::Command;

use kindling_fcos::FcosError;
use kindling_fcos::keyring::Keyring;

#[test]
fn loads_fedoras_published_keys() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fedora-signing-keys.asc");
    let ring = Keyring::load(&path).unwrap();
    let fps = ring.fingerprints();
    assert_eq!(ring.len(), 4, "{fps:?}");
    for fp in [
        "567e347ad0044ade55ba8a5f199e2f91fd431d51",
        "c6e7f081cf80e13146676e88829b606631645531",
        "36f612dcf27f7d1a48a835e4dbfcf71c6d9f90a6",
        "4f50a6114cd5c6976a7f1179655a4b02f577861e",
    ] {
        assert!(fps.contains(&fp.to_string()), "{fp} not in {fps:?}");
    }
}

fn gpg(home: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args([
            "--batch",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ])
        .args(args)
        .output()
        .expect("gpg (Debian package gpg) must be installed for this test");
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn verifies_gnupg_rsa4096_detached_signatures() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("gnupg");
    fs::create_dir_all(&home).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    }
    gpg(
        &home,
        &[
            "--quick-gen-key",
            "Kindling test <test@kindling.invalid>",
            "rsa4096",
            "sign",
            "never",
        ],
    );
    // A second key in the same export: binary keyrings hold several keys.
    gpg(
        &home,
        &[
            "--quick-gen-key",
            "Kindling second <second@kindling.invalid>",
            "ed25519",
            "sign",
            "never",
        ],
    );
    let other_home = tmp.path().join("gnupg-other");
    fs::create_dir_all(&other_home).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&other_home, fs::Permissions::from_mode(0o700)).unwrap();
    }
    gpg(
        &other_home,
        &[
            "--quick-gen-key",
            "Other <o@kindling.invalid>",
            "ed25519",
            "sign",
            "never",
        ],
    );

    let data = tmp
        .path()
        .join("fedora-coreos-43.20251101.3.0-live-kernel.x86_64");
    fs::write(&data, vec![0x5au8; 300_000]).unwrap();
    // Binary detached signature, as Fedora publishes them.
    let sig = sign(&home, "test@kindling.invalid", &data, false);
    // Armored, too.
    let asc = sign(&home, "test@kindling.invalid", &data, true);
    let other = sign(&other_home, "o@kindling.invalid", &data, false);

    // Keyring as a binary export in a directory, next to Fedora's armored keys.
    let keys = tmp.path().join("keys");
    fs::create_dir_all(&keys).unwrap();
    let export = gpg(&home, &["--export"]).stdout;
    fs::write(keys.join("test.gpg"), export).unwrap();
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fedora-signing-keys.asc"),
        keys.join("fedora.asc"),
    )
    .unwrap();
    let ring = Keyring::load(&keys).unwrap();
    assert_eq!(ring.len(), 6, "{:?}", ring.fingerprints());

    let signer = ring.verify_file(&sig, &data, "kernel").unwrap();
    assert_eq!(signer, fingerprint(&home, "test@kindling.invalid"));
    ring.verify_file(&asc, &data, "kernel").unwrap();
    // A key the keyring does not hold: refused in words, naming the issuer.
    let e = ring.verify_file(&other, &data, "kernel").unwrap_err();
    assert!(matches!(e, FcosError::SignatureInvalid { .. }), "{e:?}");
    let msg = e.to_string();
    assert_words(&msg);
    assert!(
        msg.contains("signature does not match any key of the keyring"),
        "{msg}"
    );
    assert!(
        msg.contains(&fingerprint(&other_home, "o@kindling.invalid")),
        "{msg}"
    );

    // Forged: a real signature by the right key, over other bytes.
    let elsewhere = tmp.path().join("something-else");
    fs::write(&elsewhere, b"something else").unwrap();
    let forged = sign(&home, "test@kindling.invalid", &elsewhere, false);
    let name = "fedora-coreos-43.20251101.3.0-live-kernel.x86_64";
    let e = ring.verify_file(&forged, &data, name).unwrap_err();
    assert!(matches!(e, FcosError::SignatureInvalid { .. }), "{e:?}");
    let msg = e.to_string();
    assert_forged(&msg, name, &signer);

    // One flipped byte in the data.
    let mut bytes = fs::read(&data).unwrap();
    bytes[123_456] ^= 1;
    fs::write(&data, bytes).unwrap();
    for s in [&sig, &asc] {
        let e = ring.verify_file(s, &data, name).unwrap_err();
        assert!(matches!(e, FcosError::SignatureInvalid { .. }), "{e:?}");
        assert_forged(&e.to_string(), name, &signer);
    }
}

/// A detached signature (binary, or armored) of `file` by the key of `uid`.
fn sign(home: &Path, uid: &str, file: &Path, armor: bool) -> Vec<u8> {
    let out = file.with_extension(if armor { "asc" } else { "sig" });
    let _ = fs::remove_file(&out);
    let mut args = vec!["--local-user", uid, "--detach-sign"];
    if armor {
        args.push("--armor");
    }
    args.extend(["--output", out.to_str().unwrap(), file.to_str().unwrap()]);
    gpg(home, &args);
    fs::read(&out).unwrap()
}

/// The fingerprint (lower-case hex) of the key of `uid` in `home`.
fn fingerprint(home: &Path, uid: &str) -> String {
    let out = gpg(home, &["--with-colons", "--fingerprint", uid]).stdout;
    let text = String::from_utf8_lossy(&out);
    text.lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .and_then(|l| l.trim_matches(':').rsplit(':').next())
        .map(|f| f.to_ascii_lowercase())
        .unwrap_or_else(|| panic!("no fingerprint for {uid} in {text}"))
}

/// Words, not a library's assertion text or a debug string.
fn assert_words(msg: &str) {
    for bad in [
        "assertion",
        "left:",
        "right:",
        "`",
        "[",
        "{",
        "Some(",
        "Error",
    ] {
        assert!(!msg.contains(bad), "{bad:?} in {msg}");
    }
}

/// "signature does not match", the file, the key that signed.
fn assert_forged(msg: &str, file: &str, signer: &str) {
    assert_words(msg);
    assert!(msg.contains("signature does not match"), "{msg}");
    assert!(msg.contains(file), "{msg}");
    assert!(msg.contains(signer), "{msg}");
}
