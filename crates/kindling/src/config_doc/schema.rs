//! The configuration's JSON Schema walked into [`Section`]s: every table depth first, with
//! its keys, types, defaults and doc comments.

use serde_json::{Map, Value};

use super::markdown::code;
use super::section::{DefaultValue, Key, Section, header};
use crate::config::Config;

/// The configuration's JSON Schema, as JSON.
fn schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("a schema is JSON")
}

/// Every table of the configuration, depth first in declaration order, the top-level keys
/// first.
pub(super) fn sections() -> Vec<Section> {
    let schema = schema();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let walker = Walker { defs };
    let defaults = serde_json::to_value(Config::default()).expect("the defaults serialize");
    let mut out = Vec::new();
    walker.table(
        &mut out,
        Table {
            path: Vec::new(),
            sample_path: Vec::new(),
            array: false,
            text: vec!["Keys that come before any table.".into()],
            schema: &schema,
            defaults: defaults.as_object(),
        },
    );
    out
}

struct Walker {
    defs: Map<String, Value>,
}

/// A table to describe.
struct Table<'a> {
    path: Vec<String>,
    sample_path: Vec<String>,
    array: bool,
    text: Vec<String>,
    /// The struct's schema (resolved).
    schema: &'a Value,
    /// The values of its keys when the file leaves the table out (from the parent's
    /// `Default`); `None` for elements of arrays and maps, whose keys' defaults come from
    /// their own schema.
    defaults: Option<&'a Map<String, Value>>,
}

/// What a property's schema describes.
enum Shape<'a> {
    /// A struct: a table of its own.
    Struct(&'a Value),
    /// An array of structs: `[[...]]`.
    ArrayOfStructs(&'a Value),
    /// A map whose values are structs: `[path.<name>]`, with the allowed names if they are
    /// a fixed set.
    MapOfStructs(&'a Value, Option<Vec<String>>),
    Leaf,
}

impl Walker {
    /// Follows `$ref`s.
    fn resolve<'a>(&'a self, mut s: &'a Value) -> &'a Value {
        for _ in 0..16 {
            match s.get("$ref").and_then(Value::as_str) {
                Some(r) => match r.strip_prefix("#/$defs/").and_then(|n| self.defs.get(n)) {
                    Some(d) => s = d,
                    None => return s,
                },
                None => return s,
            }
        }
        s
    }

    /// The schema without an `Option`'s null alternative.
    fn non_null<'a>(&'a self, s: &'a Value) -> &'a Value {
        let s = self.resolve(s);
        for k in ["anyOf", "oneOf"] {
            if let Some(v) = s.get(k).and_then(Value::as_array) {
                let rest: Vec<&Value> = v.iter().filter(|x| !is_null(x)).collect();
                if rest.len() == 1 && rest.len() < v.len() {
                    return self.resolve(rest[0]);
                }
            }
        }
        s
    }

    fn is_struct(&self, s: &Value) -> bool {
        let s = self.non_null(s);
        s.get("properties").is_some_and(|p| p.is_object()) && !self.is_fixed_map(s)
    }

    /// A map with a fixed set of keys (`BTreeMap<enum, Struct>`): every property the same
    /// struct, none required.
    fn is_fixed_map(&self, s: &Value) -> bool {
        let Some(props) = s.get("properties").and_then(Value::as_object) else {
            return false;
        };
        let mut values = props.values();
        let Some(first) = values.next() else {
            return false;
        };
        props.len() > 1
            && s.get("required").is_none()
            && values.all(|v| v == first)
            && self.resolve(first).get("properties").is_some()
    }

    fn shape<'a>(&'a self, s: &'a Value) -> Shape<'a> {
        let s = self.non_null(s);
        if self.is_fixed_map(s) {
            let props = s["properties"].as_object().expect("checked");
            let names = props.keys().cloned().collect();
            let first = props.values().next().expect("checked");
            return Shape::MapOfStructs(self.resolve(first), Some(names));
        }
        if self.is_struct(s) {
            return Shape::Struct(s);
        }
        if type_is(s, "array")
            && let Some(items) = s.get("items")
            && self.is_struct(items)
        {
            return Shape::ArrayOfStructs(self.non_null(items));
        }
        if type_is(s, "object")
            && let Some(v) = s.get("additionalProperties")
            && v.is_object()
            && self.is_struct(v)
        {
            return Shape::MapOfStructs(self.non_null(v), None);
        }
        Shape::Leaf
    }

    fn table(&self, out: &mut Vec<Section>, t: Table<'_>) {
        let props = t
            .schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let required: Vec<&str> = t
            .schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut section = Section {
            path: t.path.clone(),
            sample_path: t.sample_path.clone(),
            array: t.array,
            text: t.text.clone(),
            keys: Vec::new(),
        };
        // Tables below this one, described after it (a TOML table's keys come before its
        // sub-tables).
        let mut below: Vec<Table<'_>> = Vec::new();
        for (name, prop) in &props {
            let doc = paragraphs(prop.get("description").and_then(Value::as_str));
            let default = t
                .defaults
                .and_then(|d| d.get(name))
                .or_else(|| prop.get("default"));
            let mut path = t.path.clone();
            path.push(name.clone());
            let mut sample_path = t.sample_path.clone();
            sample_path.push(name.clone());
            let type_doc = |s: &Value| paragraphs(s.get("description").and_then(Value::as_str));
            let (ty, child) = match self.shape(prop) {
                Shape::Struct(s) => (
                    "table".to_string(),
                    Some(Table {
                        path,
                        sample_path,
                        array: false,
                        text: merge_docs(&doc, &type_doc(s)),
                        schema: s,
                        defaults: default.and_then(Value::as_object),
                    }),
                ),
                Shape::ArrayOfStructs(s) => (
                    "array of tables".to_string(),
                    Some(Table {
                        path,
                        sample_path,
                        array: true,
                        text: merge_docs(&doc, &type_doc(s)),
                        schema: s,
                        defaults: None,
                    }),
                ),
                Shape::MapOfStructs(s, names) => {
                    let placeholder = format!("<{}>", if names.is_some() { name } else { "name" });
                    let sample_key = names
                        .as_ref()
                        .and_then(|n| n.first().cloned())
                        .unwrap_or_else(|| "example".into());
                    path.push(placeholder.clone());
                    sample_path.push(sample_key);
                    let mut text = merge_docs(&doc, &type_doc(s));
                    if let Some(names) = &names {
                        text.push(format!(
                            "`{placeholder}` is one of {}.",
                            names
                                .iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    (
                        "tables by name".to_string(),
                        Some(Table {
                            path,
                            sample_path,
                            array: false,
                            text,
                            schema: s,
                            defaults: None,
                        }),
                    )
                }
                Shape::Leaf => (self.type_name(prop), None),
            };
            let (default, sample) = match &child {
                Some(c) => (DefaultValue::Table(header(&c.path, c.array)), None),
                None => match default {
                    Some(Value::Null) => (DefaultValue::Unset, Some(self.example(prop))),
                    Some(v) => (DefaultValue::Value(v.clone()), Some(v.clone())),
                    None if required.contains(&name.as_str()) => {
                        (DefaultValue::Required, Some(self.example(prop)))
                    }
                    None => (DefaultValue::Unset, Some(self.example(prop))),
                },
            };
            let mut doc = doc;
            if child.is_none()
                && let Some(values) = self.value_docs(prop)
            {
                doc.push(values);
            }
            section.keys.push(Key {
                name: name.clone(),
                ty,
                default,
                sample,
                doc,
            });
            below.extend(child);
        }
        out.push(section);
        for b in below {
            self.table(out, b);
        }
    }

    /// The type of a leaf key, in words.
    fn type_name(&self, s: &Value) -> String {
        let s = self.non_null(s);
        if let Some(c) = s.get("const") {
            return c.to_string();
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            return e
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(" or ");
        }
        for k in ["oneOf", "anyOf"] {
            if let Some(v) = s.get(k).and_then(Value::as_array) {
                let names: Vec<String> = v
                    .iter()
                    .filter(|x| !is_null(x))
                    .map(|x| self.type_name(x))
                    .collect();
                return names.join(" or ");
            }
        }
        let ty = match s.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("any"),
            _ => "any",
        };
        match ty {
            "array" => {
                let item = s.get("items").map(|i| self.type_name(i));
                match item {
                    Some(i) if i.contains(" or ") => format!("array of ({i})"),
                    Some(i) => format!("array of {i}"),
                    None => "array".into(),
                }
            }
            "object" => match s.get("additionalProperties") {
                Some(v) if v.is_object() => format!("table of {}", self.type_name(v)),
                _ => "table".into(),
            },
            "string" => match s.get("format").and_then(Value::as_str) {
                Some("ipv4") => "IPv4 address".into(),
                _ => "string".into(),
            },
            other => other.into(),
        }
    }

    /// For an enumeration whose values have doc comments: "`a`: what a does; `b`: ...".
    fn value_docs(&self, s: &Value) -> Option<String> {
        let s = self.non_null(s);
        let variants = s.get("oneOf").and_then(Value::as_array)?;
        let mut parts = Vec::new();
        for v in variants {
            let v = self.resolve(v);
            let (Some(c), Some(d)) = (v.get("const"), v.get("description").and_then(Value::as_str))
            else {
                continue;
            };
            let d = paragraphs(Some(d)).join(" ");
            parts.push(format!(
                "{}: {}",
                code(&c.to_string()),
                d.trim_end_matches('.')
            ));
        }
        (!parts.is_empty()).then(|| format!("Values: {}.", parts.join("; ")))
    }

    /// A value of this type that the deserializer accepts, for keys without a default.
    fn example(&self, s: &Value) -> Value {
        let s = self.non_null(s);
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array)
            && let Some(first) = e.first()
        {
            return first.clone();
        }
        for k in ["oneOf", "anyOf"] {
            if let Some(v) = s.get(k).and_then(Value::as_array)
                && let Some(first) = v.iter().find(|x| !is_null(x))
            {
                return self.example(first);
            }
        }
        if self.is_struct(s) {
            let mut m = Map::new();
            let required: Vec<&str> = s
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for (k, v) in s["properties"].as_object().into_iter().flatten() {
                if required.contains(&k.as_str()) {
                    m.insert(k.clone(), self.example(v));
                }
            }
            return Value::Object(m);
        }
        let ty = match s.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or(""),
            _ => "",
        };
        match (ty, s.get("format").and_then(Value::as_str)) {
            ("boolean", _) => Value::Bool(true),
            ("integer", _) => Value::from(1),
            ("number", _) => Value::from(1.5),
            ("string", Some("ipv4")) => Value::from("192.0.2.1"),
            ("string", _) => Value::from("example"),
            ("array", _) => Value::Array(vec![
                s.get("items")
                    .map(|i| self.example(i))
                    .unwrap_or(Value::from("example")),
            ]),
            _ => Value::Object(Map::new()),
        }
    }
}

fn is_null(s: &Value) -> bool {
    s.get("type").and_then(Value::as_str) == Some("null")
}

fn type_is(s: &Value, ty: &str) -> bool {
    match s.get("type") {
        Some(Value::String(t)) => t == ty,
        Some(Value::Array(ts)) => ts.iter().any(|t| t.as_str() == Some(ty)),
        _ => false,
    }
}

/// A doc comment as paragraphs, each on one line.
fn paragraphs(doc: Option<&str>) -> Vec<String> {
    doc.unwrap_or("")
        .split("\n\n")
        .map(|p| p.lines().map(str::trim).collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect()
}

/// The field's doc comment, then the type's, less the sentences that only name the table.
fn merge_docs(field: &[String], ty: &[String]) -> Vec<String> {
    let mut out = field.to_vec();
    for p in ty {
        let kept: Vec<&str> = sentences(p)
            .into_iter()
            .filter(|s| !names_only_the_table(s))
            .collect();
        let p = kept.join(" ");
        if !p.is_empty() && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn sentences(p: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = p.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'.' && (i + 1 == b.len() || b[i + 1] == b' ') {
            out.push(p[start..=i].trim());
            start = i + 1;
        }
    }
    if start < p.len() && !p[start..].trim().is_empty() {
        out.push(p[start..].trim());
    }
    out
}

/// "The `[dhcp]` table.", "The raw `[dhcp]` table.", "`[menu]`.", "The `[ops]` table of
/// `kindling.toml`.", "Every key has a default.": nothing the heading does not say.
pub(super) fn names_only_the_table(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    if s == "Every key has a default" {
        return true;
    }
    let s = s
        .trim_end_matches(" of kindling.toml")
        .trim_end_matches(" of `kindling.toml`")
        .trim_end_matches(" table");
    let s = s
        .trim_start_matches("The ")
        .trim_start_matches("raw ")
        .trim();
    s.starts_with("`[") && s.ends_with("]`") && !s[1..s.len() - 1].contains('`')
}
