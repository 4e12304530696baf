//! Reading JSON the way Go's `encoding/json` reads matchbox's structs:
//! field names match case-insensitively, unknown fields are ignored, `null`
//! leaves a field at its zero value, and the last duplicate wins.

use serde_json::{Map, Value};

/// A JSON document that failed to load, with a position when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// JSON, but a field has the wrong type.
    #[error("field {field}: expected {expected}, found {found}")]
    Type {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    /// JSON of the right type, but not one of the values allowed.
    #[error("field {field}: expected one of {expected}, found {found}")]
    Value {
        field: String,
        expected: String,
        found: String,
    },
}

/// Parses bytes into a JSON value, reporting line and column on error.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let message = e.to_string();
        // serde_json appends " at line L column C"; keep the message short.
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        JsonError::Syntax {
            line: e.line(),
            column: e.column(),
            message,
        }
    })
}

/// The JSON type name of a value, as used in error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Looks up `name` in an object case-insensitively; the last match wins.
pub fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .next_back()
}

/// The top level must be an object (Go refuses to unmarshal anything else into a struct).
pub fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, JsonError> {
    v.as_object().ok_or_else(|| JsonError::Type {
        field: what.to_string(),
        expected: "object",
        found: kind(v),
    })
}

/// A string field; absent or `null` gives the empty string.
pub fn string_field(obj: &Map<String, Value>, name: &str, path: &str) -> Result<String, JsonError> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(JsonError::Type {
            field: join(path, name),
            expected: "string",
            found: kind(other),
        }),
    }
}

/// A `[]string` field; `null` elements become empty strings as in Go.
pub fn string_list_field(
    obj: &Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<Vec<String>, JsonError> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Null => Ok(String::new()),
                other => Err(JsonError::Type {
                    field: format!("{}[{i}]", join(path, name)),
                    expected: "string",
                    found: kind(other),
                }),
            })
            .collect(),
        Some(other) => Err(JsonError::Type {
            field: join(path, name),
            expected: "array of strings",
            found: kind(other),
        }),
    }
}

pub(crate) fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}
