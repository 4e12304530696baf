//! `kindling config-doc` (hidden): prints docs/configuration.md, generated so that it
//! cannot drift from the code. Every table and key comes from the JSON Schema of
//! [`Config`] (schemars: the serde attributes, the doc comments, the `Default` values),
//! the flags and environment variables from the clap definitions in main.rs, and the
//! prose around them from the template `config_doc.md` beside this file.
//!
//! `tests/config_doc.rs` fails when docs/configuration.md differs from this output; the
//! unit tests below build a TOML file with every key of every table the document lists and
//! parse it with the real deserializer.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;
use serde_json::{Map, Value};

use crate::Cli;
use crate::config::Config;

/// The prose around the generated parts: `{{flags}}`, `{{other_env}}` and `{{keys}}` are
/// replaced.
const TEMPLATE: &str = include_str!("config_doc.md");

/// The command that writes docs/configuration.md.
pub const REGENERATE: &str = "cargo run -q -p kindling -- config-doc > docs/configuration.md";

/// Which keys a flag of `kindling serve` (or a global flag) overrides, by clap argument id.
const FLAG_KEYS: &[(&str, &[&str])] = &[
    ("data_dir", &["data_dir"]),
    ("state_dir", &["ops.state_dir"]),
    ("cache_dir", &["cache.dir"]),
    ("http_listen", &["http.listen"]),
    ("admin_listen", &["admin.listen"]),
    ("assets_dir", &["http.assets_dir"]),
    ("log_format", &["log.format"]),
    ("log", &["log.level"]),
    ("no_watch", &["reload.watch"]),
    ("dhcp_interfaces", &["dhcp.interfaces", "dhcp.enabled"]),
    ("tftp", &["tftp.enabled"]),
    ("tftp_listen", &["tftp.listen", "tftp.enabled"]),
];

pub fn run() -> Result<ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(render().as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The whole of docs/configuration.md.
pub fn render() -> String {
    let cli = Cli::command();
    let sections = sections();
    TEMPLATE
        .replace("{{regenerate}}", REGENERATE)
        .replace("{{flags}}", &flags_md(&cli))
        .replace("{{other_env}}", &other_env_md(&cli))
        .replace("{{keys}}", &keys_md(&sections, &cli))
}

/// One table of the file as the document lists it.
#[derive(Debug, Clone)]
pub struct Section {
    /// The TOML path of the table (`["dhcp", "rate_limit"]`; `<name>` for a key of a map of
    /// tables); empty for the top-level keys.
    pub path: Vec<String>,
    /// The same with a real key in place of each `<name>`, for the sample file.
    #[cfg_attr(not(test), allow(dead_code))]
    pub sample_path: Vec<String>,
    /// An element of an array of tables (`[[dhcp.rules]]`).
    pub array: bool,
    /// Paragraphs describing the table.
    pub text: Vec<String>,
    pub keys: Vec<Key>,
}

impl Section {
    /// `[http]`, `[[dhcp.rules]]`, or "" for the top level.
    pub fn header(&self) -> String {
        header(&self.path, self.array)
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn sample_header(&self) -> String {
        header(&self.sample_path, self.array)
    }

    /// `http.listen` for a key of this table.
    pub fn key_path(&self, key: &str) -> String {
        let mut p = self.path.clone();
        p.push(key.to_string());
        p.join(".")
    }
}

fn header(path: &[String], array: bool) -> String {
    match (path.is_empty(), array) {
        (true, _) => String::new(),
        (false, true) => format!("[[{}]]", path.join(".")),
        (false, false) => format!("[{}]", path.join(".")),
    }
}

/// One key of a table.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    /// Its type, in words.
    pub ty: String,
    pub default: DefaultValue,
    /// A value the deserializer accepts (the default where there is one); `None` for a
    /// table that has a section of its own.
    #[cfg_attr(not(test), allow(dead_code))]
    pub sample: Option<Value>,
    /// The doc comment, one paragraph per element.
    pub doc: Vec<String>,
}

/// What a key is when the file leaves it out.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultValue {
    Value(Value),
    /// `None` in Rust: no value (the doc comment says what that means).
    Unset,
    /// No default: the key must be given.
    Required,
    /// A table with a section of its own (its header).
    Table(String),
}

/// The configuration's JSON Schema, as JSON.
fn schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("a schema is JSON")
}

/// Every table of the configuration, depth first in declaration order, the top-level keys
/// first.
pub fn sections() -> Vec<Section> {
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
fn names_only_the_table(s: &str) -> bool {
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

/// A TOML value as written in a file (inline).
pub fn toml_value(v: &Value) -> String {
    match toml::Value::try_from(v) {
        Ok(t) => t.to_string(),
        Err(_) => v.to_string(),
    }
}

/// Markdown code span.
fn code(s: &str) -> String {
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

/// Text for a Markdown table cell: `|` escaped, and `<` outside code spans (else
/// `<data-dir>` would be taken for an HTML tag).
fn cell(s: &str) -> String {
    s.replace('\n', " ")
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                part.replace('|', "\\|")
            } else {
                part.replace('|', "\\|").replace('<', "&lt;")
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

/// Flags (with their value) by clap argument id, for the keys they override.
fn flag_of(cli: &clap::Command, id: &str) -> Option<(String, Option<String>)> {
    let serve = cli.find_subcommand("serve")?;
    let arg = cli
        .get_arguments()
        .chain(serve.get_arguments())
        .find(|a| a.get_id().as_str() == id)?;
    Some((
        format!("--{}", arg.get_long()?),
        arg.get_env().map(|e| e.to_string_lossy().into_owned()),
    ))
}

fn keys_md(sections: &[Section], cli: &clap::Command) -> String {
    let mut out = String::new();
    for s in sections {
        let title = if s.path.is_empty() {
            "Top-level keys".to_string()
        } else {
            code(&s.header())
        };
        let _ = writeln!(out, "### {title}\n");
        for p in &s.text {
            let _ = writeln!(out, "{p}\n");
        }
        let _ = writeln!(out, "| key | type | default | description |");
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        for k in &s.keys {
            let default = match &k.default {
                DefaultValue::Value(v) => code(&toml_value(v)),
                DefaultValue::Unset => "unset".into(),
                DefaultValue::Required => "required".into(),
                DefaultValue::Table(h) => format!("see {}", code(h)),
            };
            let mut doc = k.doc.join(" ");
            let key_path = s.key_path(&k.name);
            let flags: Vec<String> = FLAG_KEYS
                .iter()
                .filter(|(_, keys)| keys.contains(&key_path.as_str()))
                .filter_map(|(id, _)| flag_of(cli, id))
                .map(|(flag, env)| match env {
                    Some(env) => format!("{}, {}", code(&flag), code(&env)),
                    None => code(&flag),
                })
                .collect();
            if !flags.is_empty() {
                let _ = write!(doc, " Flag: {}.", flags.join("; "));
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                code(&k.name),
                cell(&k.ty),
                cell(&default),
                cell(doc.trim())
            );
        }
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// The help of an argument, on one line.
fn help(a: &clap::Arg) -> String {
    let h = a
        .get_long_help()
        .or(a.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    h.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `--http-listen HTTP_LISTEN`, `--tftp`.
fn flag_usage(a: &clap::Arg) -> Option<String> {
    let long = a.get_long()?;
    let takes_value = a.get_num_args().is_none_or(|n| n.takes_values())
        && !matches!(
            a.get_action(),
            clap::ArgAction::SetTrue | clap::ArgAction::SetFalse | clap::ArgAction::Count
        );
    if !takes_value {
        return Some(format!("--{long}"));
    }
    let value = a
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| a.get_id().as_str().to_uppercase());
    Some(format!("--{long} {value}"))
}

fn is_builtin(a: &clap::Arg) -> bool {
    matches!(a.get_id().as_str(), "help" | "version")
}

fn flags_md(cli: &clap::Command) -> String {
    let serve = cli.find_subcommand("serve").expect("kindling serve exists");
    let mut out = String::new();
    let _ = writeln!(out, "| flag | environment | sets | meaning |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    let globals = cli.get_arguments().filter(|a| a.is_global_set());
    let serve_args = serve.get_arguments().filter(|a| !a.is_global_set());
    for a in globals.chain(serve_args) {
        if is_builtin(a) {
            continue;
        }
        let Some(flag) = flag_usage(a) else { continue };
        let env = a
            .get_env()
            .map(|e| code(&e.to_string_lossy()))
            .unwrap_or_default();
        let keys = FLAG_KEYS
            .iter()
            .find(|(id, _)| *id == a.get_id().as_str())
            .map(|(_, keys)| keys.iter().map(|k| code(k)).collect::<Vec<_>>().join(", "))
            .unwrap_or_else(|| "".into());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            code(&flag),
            env,
            keys,
            cell(&help(a))
        );
    }
    out.trim_end().to_string()
}

/// The environment variables of the other commands.
fn other_env_md(cli: &clap::Command) -> String {
    fn walk(cmd: &clap::Command, name: &str, rows: &mut Vec<(String, String, String, String)>) {
        for a in cmd.get_arguments() {
            if let (Some(env), Some(flag)) = (a.get_env(), flag_usage(a)) {
                rows.push((
                    env.to_string_lossy().into_owned(),
                    flag,
                    name.to_string(),
                    help(a),
                ));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "serve" || sub.is_hide_set() {
                continue;
            }
            let n = if name.is_empty() {
                format!("kindling {}", sub.get_name())
            } else {
                format!("{name} {}", sub.get_name())
            };
            walk(sub, &n, rows);
        }
    }
    let mut rows = Vec::new();
    for sub in cli.get_subcommands() {
        if sub.get_name() == "serve" || sub.is_hide_set() {
            continue;
        }
        walk(sub, &format!("kindling {}", sub.get_name()), &mut rows);
    }
    // The same variable on several commands (`kindling fcos pull`, `status`): one row.
    let mut merged: Vec<(String, String, Vec<String>, String)> = Vec::new();
    for (env, flag, cmd, help) in rows {
        match merged.iter_mut().find(|m| m.0 == env && m.1 == flag) {
            Some(m) => {
                if !m.2.contains(&cmd) {
                    m.2.push(cmd)
                }
                if m.3.is_empty() {
                    m.3 = help;
                }
            }
            None => merged.push((env, flag, vec![cmd], help)),
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "| environment | flag | commands | meaning |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for (env, flag, cmds, help) in merged {
        let cmds: Vec<String> = cmds.iter().map(|c| code(c)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            code(&env),
            code(&flag),
            cmds.join(", "),
            cell(&help)
        );
    }
    out.trim_end().to_string()
}

/// A configuration file with every key of every table the document lists (one element in
/// each array of tables, one name in each map of tables), at its default where it has one.
#[cfg(test)]
pub fn sample_toml(sections: &[Section]) -> String {
    let mut out = String::new();
    for s in sections {
        if !s.path.is_empty() {
            let _ = writeln!(out, "\n{}", s.sample_header());
        }
        for k in &s.keys {
            if let Some(v) = &k.sample {
                let _ = writeln!(out, "{} = {}", k.name, toml_value(v));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key the document lists, in every table, is accepted by the real
    /// deserializer (which denies unknown keys): the document cannot list a key that does
    /// not exist, nor put one in the wrong table.
    #[test]
    fn every_listed_key_is_accepted() {
        let sections = sections();
        let text = sample_toml(&sections);
        let parsed: Result<Config, _> = toml::from_str(&text);
        if let Err(e) = parsed {
            panic!("the sample file built from the document is refused: {e}\n{text}");
        }
        // Every table of the configuration is there.
        let headers: Vec<String> = sections.iter().map(Section::header).collect();
        for h in [
            "",
            "[http]",
            "[admin]",
            "[log]",
            "[reload]",
            "[dhcp]",
            "[dhcp.rate_limit]",
            "[[dhcp.rules]]",
            "[tftp]",
            "[fcos]",
            "[menu]",
            "[[menu.entries]]",
            "[menu.entries.arch.<arch>]",
            "[menu.entries.arch.<arch>.sums]",
            "[menu.entries.arch.<arch>.files.<name>]",
            "[[menu.machines]]",
            "[cache]",
            "[ops]",
        ] {
            assert!(
                headers.iter().any(|x| x == h),
                "{h} missing from {headers:?}"
            );
        }
        // And a key that does not exist is refused (the check above means something).
        let bad = text.replacen("\n[http]\n", "\n[http]\nlisen = 1\n", 1);
        assert!(toml::from_str::<Config>(&bad).is_err());
    }

    /// The defaults listed are the ones in force: a file that spells out every listed
    /// default gives the same configuration as an empty file.
    #[test]
    fn listed_defaults_are_the_defaults() {
        let sections = sections();
        let mut text = String::new();
        for s in sections
            .iter()
            .filter(|s| !s.array && !s.path.iter().any(|p| p.starts_with('<')))
        {
            if !s.path.is_empty() {
                let _ = writeln!(text, "\n{}", s.header());
            }
            for k in &s.keys {
                if let DefaultValue::Value(v) = &k.default {
                    let _ = writeln!(text, "{} = {}", k.name, toml_value(v));
                }
            }
        }
        let spelled: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            serde_json::to_value(&spelled).unwrap(),
            serde_json::to_value(Config::default()).unwrap(),
            "\n{text}"
        );
    }

    /// Every key has a doc comment, and every section says what it is.
    #[test]
    fn every_key_is_described() {
        let mut missing = Vec::new();
        for s in sections() {
            if s.text.is_empty() {
                missing.push(s.header());
            }
            for k in &s.keys {
                if k.doc.is_empty() {
                    missing.push(s.key_path(&k.name));
                }
            }
        }
        assert!(missing.is_empty(), "no doc comment: {missing:?}");
    }

    /// The keys a flag is said to set exist, and so do the flags.
    #[test]
    fn flag_keys_exist() {
        let cli = Cli::command();
        let sections = sections();
        let keys: Vec<String> = sections
            .iter()
            .flat_map(|s| s.keys.iter().map(|k| s.key_path(&k.name)))
            .collect();
        for (id, ks) in FLAG_KEYS {
            assert!(flag_of(&cli, id).is_some(), "no flag {id}");
            for k in *ks {
                assert!(keys.iter().any(|x| x == k), "no key {k} (flag {id})");
            }
        }
    }

    /// Every TOML example in the prose is a valid configuration.
    #[test]
    fn template_examples_parse() {
        let mut n = 0;
        for block in TEMPLATE.split("```toml\n").skip(1) {
            let body = block.split("```").next().unwrap_or("");
            let cfg: Config = toml::from_str(body).unwrap_or_else(|e| panic!("{e}\n{body}"));
            let findings = cfg.check(&crate::config::Overrides::default());
            assert!(findings.errors.is_empty(), "{:?}\n{body}", findings.errors);
            n += 1;
        }
        assert!(n >= 1);
    }

    #[test]
    fn table_names_are_recognised() {
        assert!(names_only_the_table("The raw `[dhcp]` table."));
        assert!(names_only_the_table("`[menu]`."));
        assert!(names_only_the_table(
            "The `[ops]` table of `kindling.toml`."
        ));
        assert!(names_only_the_table("Every key has a default."));
        assert!(!names_only_the_table("One `[[dhcp.rules]]` entry."));
        assert!(!names_only_the_table(
            "The `[admin]` table: where it listens."
        ));
    }
}
