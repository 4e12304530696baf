//! Groups: which machines (selectors) get which profile, plus metadata.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::json::{self, JsonError};
use crate::labels::Labels;
use crate::mac::Mac;

/// A group as matchbox reads it from `groups/<name>.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The file name without `.json` (matchbox's key for get/delete).
    pub file_id: String,
    pub id: String,
    pub name: String,
    pub profile: String,
    /// Selector requirements; `mac` values are normalised.
    pub selector: Selector,
    /// Arbitrary metadata (a JSON object), used in templates and `/metadata`.
    pub metadata: Map<String, Value>,
    /// `key=value` pairs sorted and joined with `,`, matchbox's tie-breaker.
    pub selector_string: String,
}

/// Selector pairs sorted by key: a compact map (most groups have one or two
/// pairs, and 10,000 groups must fit in a few megabytes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector(Vec<(String, String)>);

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
            .map(|i| self.0[i].1.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// As a JSON object (for APIs and `kindling select --json`).
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }
}

impl<'a> IntoIterator for &'a Selector {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
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
        let metadata = match json::field(obj, "metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
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
        Ok(Group::new(file_id, id, name, profile, selector, metadata))
    }

    /// Builds a group and its derived tie-break string.
    pub fn new(
        file_id: &str,
        id: String,
        name: String,
        profile: String,
        selector: BTreeMap<String, String>,
        metadata: Map<String, Value>,
    ) -> Group {
        let mut pairs: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.sort();
        Group {
            file_id: file_id.to_string(),
            id,
            name,
            profile,
            selector_string: pairs.join(","),
            selector: Selector(selector.into_iter().collect()),
            metadata,
        }
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
            (got.unwrap_or("") != v).then_some((k.as_str(), v.as_str(), got))
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
    fn invalid_mac_selector_rejects_group() {
        let e = Group::parse("bad", br#"{"id":"bad","selector":{"mac":"not-a-mac"}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "selector mac: address not-a-mac: invalid MAC address"
        );
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
