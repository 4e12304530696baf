//! Groups: which machines (selectors) get which profile, plus metadata.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::json::{self, JsonError};
use crate::labels::Labels;
use crate::lifecycle::InstallOnce;
use crate::mac::Mac;

/// Group text: names, ids, MACs and most selector strings fit inline (no heap
/// allocation up to 24 bytes), so 10,000 groups stay within a few megabytes.
pub type Str = compact_str::CompactString;

/// A group as matchbox reads it from `groups/<name>.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The file name without `.json` (matchbox's key for get/delete).
    pub file_id: Str,
    pub id: Str,
    pub name: Str,
    pub profile: Str,
    /// Selector requirements; `mac` values are normalised.
    pub selector: Selector,
    /// Arbitrary metadata (a JSON object), used in templates and `/metadata`:
    /// kept as compact JSON text and parsed when a template needs it (an
    /// object kept parsed costs ten times the memory; requests that render
    /// templates clone it anyway).
    metadata: Str,
    /// `key=value` pairs sorted and joined with `,`, matchbox's tie-breaker.
    pub selector_string: Str,
    /// Kindling's `install_once` for this group's machines (wins over the profile's).
    pub install_once: Option<InstallOnce>,
    /// Kindling's `secure_boot`: this group's x86-64 UEFI PXE machines boot the signed
    /// shim (`true`) or iPXE (`false`), whatever `[secure_boot] default` and the DHCP
    /// rules say (docs/secure-boot.md). Only a `mac` selector is known at DHCP time.
    pub secure_boot: Option<bool>,
}

/// Selector pairs sorted by key: a compact map (most groups have one or two
/// pairs, and 10,000 groups must fit in a few megabytes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector(Box<[(Str, Str)]>);

impl Selector {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// As a JSON object (for APIs and `kindling select --json`).
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect(),
        )
    }
}

impl<'a> IntoIterator for &'a Selector {
    type Item = (&'a str, &'a str);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (Str, Str)>, fn(&'a (Str, Str)) -> (&'a str, &'a str)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Why a group file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error(transparent)]
    Json(#[from] JsonError),
    #[error("selector {key}: {source}")]
    Mac {
        key: String,
        source: crate::mac::MacError,
    },
}

impl Group {
    /// Parses a group file the way matchbox's `ParseGroup` does, including
    /// `Normalize` (a `mac` selector must be a valid MAC, and is canonicalised).
    pub fn parse(file_id: &str, bytes: &[u8]) -> Result<Group, GroupError> {
        let v = json::parse(bytes)?;
        let obj = json::object(&v, "group")?;
        let id = json::string_field(obj, "id", "")?;
        let name = json::string_field(obj, "name", "")?;
        let profile = json::string_field(obj, "profile", "")?;
        let mut selector = BTreeMap::new();
        match json::field(obj, "selector") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => {
                            return Err(JsonError::Type {
                                field: format!("selector.{k}"),
                                expected: "string",
                                found: json::kind(other),
                            }
                            .into());
                        }
                    };
                    selector.insert(k.clone(), v);
                }
            }
            Some(other) => {
                return Err(JsonError::Type {
                    field: "selector".into(),
                    expected: "object",
                    found: json::kind(other),
                }
                .into());
            }
        }
        let empty = Map::new();
        let metadata = match json::field(obj, "metadata") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(JsonError::Type {
                    field: "metadata".into(),
                    expected: "object",
                    found: json::kind(other),
                }
                .into());
            }
        };
        for (k, v) in selector.iter_mut() {
            if k.eq_ignore_ascii_case("mac") {
                let mac = Mac::parse(v).map_err(|source| GroupError::Mac {
                    key: k.clone(),
                    source,
                })?;
                *v = mac.to_string();
            }
        }
        let mut g = Group::new(file_id, id, name, profile, selector, metadata);
        g.install_once = InstallOnce::from_field(obj)?;
        g.secure_boot = match json::field(obj, "secure_boot") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(JsonError::Type {
                    field: "secure_boot".into(),
                    expected: "boolean",
                    found: json::kind(other),
                }
                .into());
            }
        };
        Ok(g)
    }

    /// Builds a group and its derived tie-break string.
    pub fn new(
        file_id: &str,
        id: String,
        name: String,
        profile: String,
        selector: BTreeMap<String, String>,
        metadata: &Map<String, Value>,
    ) -> Group {
        let mut pairs: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.sort();
        let metadata = if metadata.is_empty() {
            Str::default()
        } else {
            // Serialising a parsed object cannot fail (keys are strings).
            serde_json::to_string(metadata)
                .map(Str::from)
                .unwrap_or_default()
        };
        Group {
            file_id: file_id.into(),
            id: id.into(),
            name: name.into(),
            profile: profile.into(),
            selector_string: pairs.join(",").into(),
            selector: Selector(
                selector
                    .into_iter()
                    .map(|(k, v)| (Str::from(k), Str::from(v)))
                    .collect(),
            ),
            metadata,
            install_once: None,
            secure_boot: None,
        }
    }

    /// What this group's machines do about installing: the group's `install_once`, else
    /// its profile's.
    pub fn install_once_with(&self, profile: &crate::profile::Profile) -> Option<InstallOnce> {
        self.install_once.or(profile.install_once)
    }

    /// The group's metadata object (parsed from its compact form; keys keep
    /// the file's order).
    pub fn metadata(&self) -> Map<String, Value> {
        if self.metadata.is_empty() {
            return Map::new();
        }
        serde_json::from_str(&self.metadata).unwrap_or_default()
    }

    /// matchbox's `Matches`: every selector pair equals the label; a missing
    /// label reads as the empty string (so `{"k": ""}` matches a missing `k`).
    pub fn matches(&self, labels: &Labels) -> bool {
        self.selector
            .iter()
            .all(|(k, v)| labels.get(k).map(String::as_str).unwrap_or("") == v)
    }

    /// The first selector pair that does not match, for "why" output.
    pub fn first_mismatch<'a>(
        &'a self,
        labels: &'a Labels,
    ) -> Option<(&'a str, &'a str, Option<&'a str>)> {
        self.selector.iter().find_map(|(k, v)| {
            let got = labels.get(k).map(String::as_str);
            (got.unwrap_or("") != v).then_some((k, v, got))
        })
    }

    /// matchbox's evaluation order: more selectors first, then the larger
    /// selector string first (reverse lexicographic), then file name (matchbox
    /// leaves exact ties to an unstable sort; Kindling makes them deterministic).
    pub fn eval_order(a: &Group, b: &Group) -> std::cmp::Ordering {
        b.selector
            .len()
            .cmp(&a.selector.len())
            .then_with(|| b.selector_string.cmp(&a.selector_string))
            .then_with(|| a.file_id.cmp(&b.file_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_fields_unknown_ignored() {
        let g = Group::parse(
            "g",
            br#"{"ID":"a","Name":"n","PROFILE":"p","selector":{"MAC":"52-54-00-AA-BB-CC","os":"installed"},"extra":1,"metadata":{"k":1}}"#,
        )
        .unwrap();
        assert_eq!(g.id, "a");
        assert_eq!(g.profile, "p");
        assert_eq!(g.selector.get("MAC"), Some("52:54:00:aa:bb:cc"));
        assert_eq!(g.selector_string, "MAC=52:54:00:aa:bb:cc,os=installed");
    }

    #[test]
    fn metadata_kept_compact_reads_back_the_same() {
        let src = br#"{"metadata":{"z":1,"a":[1,2.5,"x",null,true],"n":{"k":{"deep":-3}},"f":1.0,"big":18446744073709551615,"s":"\u00e9\n"}}"#;
        let g = Group::parse("g", src).unwrap();
        let v: Value = serde_json::from_slice(src).unwrap();
        let want = v["metadata"].as_object().unwrap().clone();
        let got = g.metadata();
        assert_eq!(got, want);
        // The file's key order is kept, as with the parsed object before.
        let keys: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(keys, ["z", "a", "n", "f", "big", "s"]);
        assert_eq!(got["f"].as_f64(), Some(1.0));
        assert!(got["f"].is_f64());
        assert_eq!(got["big"].as_u64(), Some(u64::MAX));
        assert!(
            Group::parse("e", br#"{"metadata":{}}"#)
                .unwrap()
                .metadata()
                .is_empty()
        );
        assert!(
            Group::parse("e", br#"{"id":"e"}"#)
                .unwrap()
                .metadata()
                .is_empty()
        );
    }

    #[test]
    fn invalid_mac_selector_rejects_group() {
        let e = Group::parse("bad", br#"{"id":"bad","selector":{"mac":"not-a-mac"}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "selector mac: address not-a-mac: invalid MAC address"
        );
    }

    #[test]
    fn secure_boot_extension() {
        let on = Group::parse(
            "g",
            br#"{"selector":{"mac":"52:54:00:aa:bb:cc"},"secure_boot":true}"#,
        );
        assert_eq!(on.unwrap().secure_boot, Some(true));
        let off = Group::parse("g", br#"{"Secure_Boot":false}"#).unwrap();
        assert_eq!(off.secure_boot, Some(false));
        assert_eq!(
            Group::parse("g", br#"{"id":"g"}"#).unwrap().secure_boot,
            None
        );
        let e = Group::parse("g", br#"{"secure_boot":"yes"}"#).unwrap_err();
        assert!(e.to_string().contains("secure_boot"), "{e}");
    }

    #[test]
    fn wrong_types_rejected() {
        assert!(Group::parse("x", br#"{"selector":{"a":1}}"#).is_err());
        assert!(Group::parse("x", br#"{"id":5}"#).is_err());
        assert!(Group::parse("x", br#"{"metadata":[1]}"#).is_err());
        assert!(Group::parse("x", br#"[]"#).is_err());
    }

    #[test]
    fn syntax_error_has_position() {
        let e = Group::parse("x", b"{\n  \"id\": \"a\",\n  \"profile\" \"p\"\n}").unwrap_err();
        match e {
            GroupError::Json(JsonError::Syntax { line, column, .. }) => {
                assert_eq!((line, column), (3, 13));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn empty_value_quirk() {
        let g = Group::parse("x", br#"{"selector":{"os":""}}"#).unwrap();
        assert!(g.matches(&Labels::new()));
        let mut l = Labels::new();
        l.insert("os".into(), "installed".into());
        assert!(!g.matches(&l));
    }
}
