//! JSON helpers: Go-compatible serialisation (`kindling_model::gojson`: what Butane's output
//! looks like byte for byte) and a locator that maps field paths of a JSON document to line/column positions.

use serde_json::Value;
use std::collections::HashMap;

pub use kindling_model::gojson::to_go_json;

/// Serialises like Go's `json.MarshalIndent(v, "", "  ")`.
pub fn to_go_json_pretty(v: &Value) -> String {
    kindling_model::gojson::to_go_json_indent(v, "  ")
}

/// Positions of every member key and array element in a JSON text, by dotted path
/// (`storage.files.0.path`). The root is the empty path.
#[derive(Debug, Default, Clone)]
pub struct Locator {
    /// Path -> start of the value.
    map: HashMap<String, (usize, usize)>,
    /// Path -> start of the member key (objects only).
    keys: HashMap<String, (usize, usize)>,
}

impl Locator {
    /// Scans `text` (which should already be valid JSON; scanning stops at the first problem).
    pub fn new(text: &str) -> Locator {
        let mut s = Scanner {
            b: text.as_bytes(),
            i: 0,
            line: 1,
            col: 1,
            map: HashMap::new(),
            keys: HashMap::new(),
        };
        s.ws();
        let pos = (s.line, s.col);
        s.map.insert(String::new(), pos);
        let _ = s.value(String::new(), 0);
        Locator {
            map: s.map,
            keys: s.keys,
        }
    }

    /// Position of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path;
        loop {
            if let Some(pos) = self.map.get(p) {
                return Some(*pos);
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return self.map.get("").copied(),
            }
        }
    }

    /// Position of exactly `path` (its value).
    pub fn exact(&self, path: &str) -> Option<(usize, usize)> {
        self.map.get(path).copied()
    }

    /// Position of the key of member `path`.
    pub fn key(&self, path: &str) -> Option<(usize, usize)> {
        self.keys.get(path).copied()
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    line: usize,
    col: usize,
    map: HashMap<String, (usize, usize)>,
    keys: HashMap<String, (usize, usize)>,
}

fn join(base: &str, part: &str) -> String {
    if base.is_empty() {
        part.to_string()
    } else {
        format!("{base}.{part}")
    }
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.i += 1;
            if c == b'\n' {
                self.line += 1;
                self.col = 1;
            } else if c & 0xC0 != 0x80 {
                self.col += 1;
            }
        }
    }
    /// Where Ignition (vcontext's JSON decoder) reports a value: at its first byte for
    /// scalars, just after the opening delimiter for objects and arrays.
    fn value_pos(&self) -> (usize, usize) {
        match self.peek() {
            Some(b'{' | b'[') => (self.line, self.col + 1),
            _ => (self.line, self.col),
        }
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.bump();
        }
    }
    fn string(&mut self) -> Option<String> {
        let start = self.i;
        self.bump(); // opening quote
        loop {
            match self.peek()? {
                b'\\' => {
                    self.bump();
                    self.bump();
                }
                b'"' => {
                    self.bump();
                    break;
                }
                _ => self.bump(),
            }
        }
        serde_json::from_slice::<String>(self.b.get(start..self.i)?).ok()
    }
    fn value(&mut self, path: String, depth: usize) -> Option<()> {
        if depth > 256 {
            return None;
        }
        self.ws();
        match self.peek()? {
            b'{' => {
                self.bump();
                loop {
                    self.ws();
                    match self.peek()? {
                        b'}' => {
                            self.bump();
                            return Some(());
                        }
                        b',' => self.bump(),
                        b'"' => {
                            let pos = (self.line, self.col);
                            let key = self.string()?;
                            let p = join(&path, &key);
                            self.keys.insert(p.clone(), pos);
                            self.ws();
                            if self.peek()? != b':' {
                                return None;
                            }
                            self.bump();
                            self.ws();
                            let pos = self.value_pos();
                            self.map.insert(p.clone(), pos);
                            self.value(p, depth + 1)?;
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.bump();
                let mut idx = 0usize;
                loop {
                    self.ws();
                    match self.peek()? {
                        b']' => {
                            self.bump();
                            return Some(());
                        }
                        b',' => self.bump(),
                        _ => {
                            let p = join(&path, &idx.to_string());
                            let pos = self.value_pos();
                            self.map.insert(p.clone(), pos);
                            self.value(p, depth + 1)?;
                            idx += 1;
                        }
                    }
                }
            }
            b'"' => {
                self.string()?;
                Some(())
            }
            _ => {
                while matches!(self.peek(), Some(c) if !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                {
                    self.bump();
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locator_positions() {
        let text = "{\n  \"storage\": {\n    \"files\": [\n      {\"path\": \"x\"}\n    ]\n  }\n}";
        let l = Locator::new(text);
        assert_eq!(l.exact("storage"), Some((2, 15)));
        assert_eq!(l.key("storage"), Some((2, 3)));
        assert_eq!(l.exact("storage.files.0"), Some((4, 8)));
        assert_eq!(l.exact("storage.files.0.path"), Some((4, 16)));
        assert_eq!(l.find("storage.files.0.mode"), Some((4, 8)));
    }
}
