//! What the document lists: tables ([`Section`]) and their keys ([`Key`]).

use serde_json::Value;

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

pub(super) fn header(path: &[String], array: bool) -> String {
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
