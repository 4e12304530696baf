//! The seed's fcct config (Fedora CoreOS Config 1.0.0) translates to the Ignition 3.0.0 the
//! seed shows.

mod common;
use kindling_butane::{TranslateOptions, translate};
use serde_json::Value;

/// fcct 0.x marshalled Go zero structs (`"timeouts": {}`, `"source": null`, `"storage": {}`);
/// Ignition treats those exactly like absent fields, and Butane omits them. Drop them before
/// comparing.
fn normalize(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let v = normalize(v);
                let empty = v.is_null() || v.as_object().is_some_and(|o| o.is_empty());
                if !empty {
                    out.insert(k, v);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        v => v,
    }
}

const SEED: &str = "/work/shared/seed/000_b732ff49c4491a49.txt";

#[test]
fn fixtures_are_the_seed_text() {
    let Ok(seed) = std::fs::read_to_string(SEED) else {
        eprintln!("SKIP: seed document not present");
        return;
    };
    let bu = include_str!("fixtures/seed.bu");
    assert!(
        seed.contains(bu.trim_end()),
        "seed.bu is not verbatim from the seed"
    );
    let ign = include_str!("fixtures/seed.ign");
    // The blog post cuts the JSON before its final brace; the fixture adds it.
    let body = ign.trim_end().strip_suffix('}').unwrap().trim_end();
    assert!(
        seed.contains(body),
        "seed.ign is not verbatim from the seed"
    );
}

#[test]
fn seed_config_translates_to_seed_ignition() {
    let bu = include_str!("fixtures/seed.bu");
    let t = translate(bu.as_bytes(), &TranslateOptions::default()).expect("translates");
    assert_eq!(t.spec_version, "3.0.0");
    assert!(t.warnings.is_empty(), "{}", t.warnings);
    let mut expected: Value = serde_json::from_str(include_str!("fixtures/seed.ign")).unwrap();
    // The author redacted the SSH key differently in the YAML ("ssh公開鍵") and in the JSON
    // ("SSHの公開鍵"); both are the same placeholder for one key.
    let key = &mut expected["passwd"]["users"][0]["sshAuthorizedKeys"][0];
    assert!(
        key.as_str()
            .unwrap()
            .starts_with("ssh-rsa SSHの公開鍵 [email")
    );
    let ours = t.value["passwd"]["users"][0]["sshAuthorizedKeys"][0].clone();
    assert!(
        ours.as_str()
            .unwrap()
            .starts_with("ssh-rsa ssh公開鍵 [email")
    );
    *key = ours.clone();
    assert_eq!(t.value, normalize(expected.clone()));
    // And the exact bytes Butane prints for it today.
    assert_eq!(
        t.json.replace(ours.as_str().unwrap(), "KEY"),
        r#"{"ignition":{"version":"3.0.0"},"passwd":{"users":[{"groups":["adm","sudo"],"name":"inoue","sshAuthorizedKeys":["KEY"]}]},"systemd":{"units":[{"contents":"[Unit]\nDescription=Alpine CLI Shell\nAfter=network.target\n[Service]\nType=simple\nExecStart=/usr/bin/podman run --rm --privileged -v /:/host -ti alpine:latest /bin/ash\n[Install]\nWantedBy=multi-user.target\n","enabled":true,"name":"shell.service"}]}}"#
    );
    if let Some((ok, out)) = common::ignition_validate(&t.json) {
        assert!(ok, "ignition-validate rejected the seed translation: {out}");
    }
    // The seed's own JSON is valid Ignition 3.0.0 for both validators.
    let raw = include_str!("fixtures/seed.ign");
    let r = kindling_butane::validate_ignition(raw.as_bytes());
    assert!(!r.has_errors(), "{r}");
    if let Some((ok, out)) = common::ignition_validate(raw) {
        assert!(ok, "{out}");
    }
}
