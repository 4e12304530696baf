//! Small helpers to write TOML text by hand (keys with aligned comments).

/// A TOML basic string.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML array of strings.
pub fn strings(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| string(s)).collect::<Vec<_>>().join(", ")
    )
}

/// Text safe inside a `#` comment (one line, no control characters).
pub fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Lines of `key = value  # comment`, comments aligned.
#[derive(Default)]
pub struct Block {
    rows: Vec<(String, Option<String>)>,
}

impl Block {
    pub fn key(&mut self, k: &str, v: String, comment: Option<String>) {
        self.rows.push((format!("{k} = {v}"), comment));
    }

    pub fn raw(&mut self, line: String) {
        self.rows.push((line, None));
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self, out: &mut String) {
        let width = self
            .rows
            .iter()
            .filter(|(_, c)| c.is_some())
            .map(|(k, _)| k.chars().count())
            .filter(|w| *w <= 48)
            .max()
            .unwrap_or(0);
        for (k, c) in &self.rows {
            match c {
                Some(c) => {
                    let pad = width.saturating_sub(k.chars().count());
                    out.push_str(&format!("{k}{}  # {}\n", " ".repeat(pad), comment_text(c)));
                }
                None => {
                    out.push_str(k);
                    out.push('\n');
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_through_toml() {
        for s in [
            "plain",
            "quote\"back\\slash",
            "tab\tnew\nline",
            "\u{1}ctl",
            "日本語",
        ] {
            let doc = format!("k = {}\n", string(s));
            let v: toml::Table = toml::from_str(&doc).unwrap();
            assert_eq!(v["k"].as_str(), Some(s), "{doc}");
        }
        let v: toml::Table =
            toml::from_str(&format!("k = {}\n", strings(&["a".into(), "b\"".into()]))).unwrap();
        assert_eq!(v["k"].as_array().unwrap().len(), 2);
    }
}
