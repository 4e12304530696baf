//! JSON written as Go's `encoding/json` writes it, byte for byte: `<`, `>`, `&`, U+2028 and
//! U+2029 escaped, control characters as `\u00XX`, `json.Marshal`'s compact form or
//! `json.MarshalIndent`'s layout (`{}`/`[]` for empty containers, `": "` after keys).
//! Members are written in the value's order: Go sorts map keys, so callers that stand for
//! a Go map sort with [`sort_keys`] first; Go structs keep their field order.
//!
//! Used for the files the management API writes (matchbox's `MarshalIndent(.., "\t")`) and
//! for Butane's Ignition output (`MarshalIndent(.., "  ")` and `Marshal`).

use serde_json::Value;

fn escape_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let b = c as u32 as usize;
                out.push_str("\\u00");
                out.push(HEX[b >> 4] as char);
                out.push(HEX[b & 0xf] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Integers as they are; other numbers as Go's encoding/json writes a float64: the
/// shortest decimal that reads back the same, in plain notation for magnitudes from 1e-6
/// up to 1e21 (`1000000`, not `1000000.0`), else in exponent notation with a sign and
/// no leading zero (`1e+21`, `1e-7`).
fn number_into(out: &mut String, n: &serde_json::Number) {
    if !n.is_f64() {
        out.push_str(&n.to_string());
        return;
    }
    let f = n.as_f64().unwrap_or(0.0);
    let a = f.abs();
    if a == 0.0 || (1e-6..1e21).contains(&a) {
        out.push_str(&format!("{f}"));
    } else {
        let e = format!("{f:e}");
        match e.split_once('e') {
            Some((m, exp)) if !exp.starts_with('-') => {
                out.push_str(m);
                out.push_str("e+");
                out.push_str(exp);
            }
            _ => out.push_str(&e),
        }
    }
}

/// `indent`: `None` for the compact form, else the indent unit and the current depth.
fn write_value(out: &mut String, v: &Value, indent: Option<(&str, usize)>) {
    let deeper = indent.map(|(unit, d)| (unit, d + 1));
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => number_into(out, n),
        Value::String(s) => escape_into(out, s),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, deeper);
                write_value(out, item, deeper);
            }
            newline(out, indent);
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, deeper);
                escape_into(out, k);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_value(out, item, deeper);
            }
            newline(out, indent);
            out.push('}');
        }
    }
}

fn newline(out: &mut String, indent: Option<(&str, usize)>) {
    if let Some((unit, depth)) = indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(unit);
        }
    }
}

/// Go's `json.Marshal`: compact.
pub fn to_go_json(v: &Value) -> String {
    let mut s = String::new();
    write_value(&mut s, v, None);
    s
}

/// Go's `json.MarshalIndent(v, "", unit)`: `"  "` for Butane, `"\t"` for matchbox's files.
pub fn to_go_json_indent(v: &Value, unit: &str) -> String {
    let mut s = String::new();
    write_value(&mut s, v, Some((unit, 0)));
    s
}

/// Sorts the keys of every object, at every depth: how Go writes a `map[string]any`
/// (the workspace's serde_json keeps insertion order).
pub fn sort_keys(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.sort_keys();
            for item in map.values_mut() {
                sort_keys(item);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_go_writes_a_float64() {
        let v: Value = serde_json::from_str(
            "[1e6, 1.5, 3, -2, 0.0, 1e21, 1e-7, 1.25e-10, 123456789.125, -1e300]",
        )
        .unwrap();
        assert_eq!(
            to_go_json(&v),
            "[1000000,1.5,3,-2,0,1e+21,1e-7,1.25e-10,123456789.125,-1e+300]"
        );
    }

    #[test]
    fn go_escaping_and_indent() {
        let v: Value =
            serde_json::from_str(r#"{"a":"x && y <z>\u0001","b":[1,{}],"c":[]}"#).unwrap();
        assert_eq!(
            to_go_json(&v),
            r#"{"a":"x \u0026\u0026 y \u003cz\u003e\u0001","b":[1,{}],"c":[]}"#
        );
        assert_eq!(
            to_go_json_indent(&v, "  "),
            "{\n  \"a\": \"x \\u0026\\u0026 y \\u003cz\\u003e\\u0001\",\n  \"b\": [\n    1,\n    {}\n  ],\n  \"c\": []\n}"
        );
        assert_eq!(
            to_go_json_indent(&serde_json::json!({"k": {"n": [1]}}), "\t"),
            "{\n\t\"k\": {\n\t\t\"n\": [\n\t\t\t1\n\t\t]\n\t}\n}"
        );
    }

    #[test]
    fn keys_sorted_at_every_depth() {
        let mut v: Value =
            serde_json::from_str(r#"{"b":{"z":1,"a":[{"y":1,"x":2}]},"a":0}"#).unwrap();
        sort_keys(&mut v);
        assert_eq!(to_go_json(&v), r#"{"a":0,"b":{"a":[{"x":2,"y":1}],"z":1}}"#);
    }
}
