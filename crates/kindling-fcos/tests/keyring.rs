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
    gpg(
        &home,
        &[
            "--local-user",
            "test@kindling.invalid",
            "--detach-sign",
            "--output",
            tmp.path().join("k.sig").to_str().unwrap(),
            data.to_str().unwrap(),
        ],
    );
    // Armored, too.
    gpg(
        &home,
        &[
            "--local-user",
            "test@kindling.invalid",
            "--armor",
            "--detach-sign",
            "--output",
            tmp.path().join("k.asc").to_str().unwrap(),
            data.to_str().unwrap(),
        ],
    );
    gpg(
        &other_home,
        &[
            "--detach-sign",
            "--output",
            tmp.path().join("o.sig").to_str().unwrap(),
            data.to_str().unwrap(),
        ],
    );

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

    let sig = fs::read(tmp.path().join("k.sig")).unwrap();
    let asc = fs::read(tmp.path().join("k.asc")).unwrap();
    let other = fs::read(tmp.path().join("o.sig")).unwrap();
    ring.verify_file(&sig, &data, "kernel").unwrap();
    ring.verify_file(&asc, &data, "kernel").unwrap();
    assert!(matches!(
        ring.verify_file(&other, &data, "kernel"),
        Err(FcosError::SignatureInvalid { .. })
    ));
    // One flipped byte in the data.
    let mut bytes = fs::read(&data).unwrap();
    bytes[123_456] ^= 1;
    fs::write(&data, bytes).unwrap();
    assert!(matches!(
        ring.verify_file(&sig, &data, "kernel"),
        Err(FcosError::SignatureInvalid { .. })
    ));
}
