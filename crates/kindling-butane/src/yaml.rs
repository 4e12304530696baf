//! A small position-carrying YAML tree built from the event stream of serde-saphyr's parser
//! (`granit-parser`, re-exported by `serde_saphyr`).
//!
//! Scalars keep their raw text and whether they were quoted, so that the translator can resolve
//! them the way Go's `gopkg.in/yaml.v3` (used by Butane) does when decoding into a typed field:
//! `0644` is octal, `yes`/`on` are booleans for boolean fields, and so on.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

/// Maximum nesting depth accepted (Butane configs are at most ~8 levels deep).
pub const MAX_DEPTH: usize = 128;
/// Maximum number of nodes after alias expansion (guards against "billion laughs").
pub const MAX_NODES: usize = 1_000_000;

/// A position: 1-based line and column.
pub type Pos = (usize, usize);

/// A YAML node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub pos: Pos,
    /// What it holds.
    pub kind: Kind,
}

/// The shape of a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `~`, `null`, or an empty value.
    Null,
    /// A scalar with its text (escapes processed) and whether it was plain (unquoted).
    Scalar {
        /// Text.
        text: String,
        /// `true` for plain scalars (subject to type resolution).
        plain: bool,
        /// Explicit core-schema tag suffix (`str`, `int`, ...), if any.
        tag: Option<String>,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with keys in source order.
    Map(Vec<(Key, Node)>),
}

/// A mapping key.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// Key text.
    pub text: String,
    /// Position of the key.
    pub pos: Pos,
}

/// A YAML syntax error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    /// Message.
    pub message: String,
    /// Position.
    pub pos: Option<Pos>,
}

fn pos_of(span: &Span) -> Pos {
    (span.start.line(), span.start.col() + 1)
}

enum Frame {
    Seq(Pos, usize, Vec<Node>),
    Map(Pos, usize, Vec<(Key, Node)>, Option<Key>),
}

/// Parses the first YAML document of `input` into a [`Node`]. An empty document gives `Null`.
pub fn parse(input: &str) -> Result<Node, YamlError> {
    let mut parser = Parser::new_from_str(input);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Node> = std::collections::HashMap::new();
    let mut nodes = 0usize;
    let mut root: Option<Node> = None;
    let mut in_doc = false;
    while let Some(ev) = parser.next_event() {
        let (ev, span) = ev.map_err(|e| YamlError {
            message: e.info().to_string(),
            pos: Some((e.marker().line(), e.marker().col() + 1)),
        })?;
        let pos = pos_of(&span);
        let (node, anchor) = match ev {
            Event::StreamStart => continue,
            Event::StreamEnd => break,
            Event::DocumentStart(..) => {
                in_doc = true;
                continue;
            }
            Event::DocumentEnd => {
                if root.is_some() || in_doc {
                    // yaml.v3's Decoder.Decode reads the first document only.
                    break;
                }
                continue;
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(n) => {
                    nodes = nodes.saturating_add(count(n));
                    if nodes > MAX_NODES {
                        return Err(YamlError {
                            message: "document is too large after alias expansion".into(),
                            pos: Some(pos),
                        });
                    }
                    (
                        Node {
                            pos,
                            kind: n.kind.clone(),
                        },
                        0,
                    )
                }
                None => {
                    return Err(YamlError {
                        message: "unknown anchor".into(),
                        pos: Some(pos),
                    });
                }
            },
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.and_then(|t| t.core_suffix().map(str::to_string));
                let plain = style == ScalarStyle::Plain && tag.as_deref() != Some("str");
                let kind = if plain && matches!(text.as_ref(), "" | "~" | "null" | "Null" | "NULL")
                    || tag.as_deref() == Some("null")
                {
                    Kind::Null
                } else {
                    Kind::Scalar {
                        text: text.into_owned(),
                        plain,
                        tag,
                    }
                };
                (Node { pos, kind }, anchor)
            }
            Event::SequenceStart(_, anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        message: "document is nested too deeply".into(),
                        pos: Some(pos),
                    });
                }
                stack.push(Frame::Seq(pos, anchor, Vec::new()));
                continue;
            }
            Event::MappingStart(_, anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        message: "document is nested too deeply".into(),
                        pos: Some(pos),
                    });
                }
                stack.push(Frame::Map(pos, anchor, Vec::new(), None));
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(p, anchor, items)) => (
                    Node {
                        pos: p,
                        kind: Kind::Seq(items),
                    },
                    anchor,
                ),
                _ => {
                    return Err(YamlError {
                        message: "unbalanced sequence".into(),
                        pos: Some(pos),
                    });
                }
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(p, anchor, items, _)) => (
                    Node {
                        pos: p,
                        kind: Kind::Map(items),
                    },
                    anchor,
                ),
                _ => {
                    return Err(YamlError {
                        message: "unbalanced mapping".into(),
                        pos: Some(pos),
                    });
                }
            },
            _ => continue,
        };
        nodes = nodes.saturating_add(1);
        if nodes > MAX_NODES {
            return Err(YamlError {
                message: "document is too large".into(),
                pos: Some(pos),
            });
        }
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => {
                root = Some(node);
            }
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(_, _, items, pending)) => match pending.take() {
                None => {
                    let text = match node.kind {
                        Kind::Scalar { text, .. } => text,
                        Kind::Null => String::new(),
                        _ => {
                            return Err(YamlError {
                                message: "mapping keys must be scalars".into(),
                                pos: Some(node.pos),
                            });
                        }
                    };
                    if let Some((k, _)) = items.iter().find(|(k, _)| k.text == text) {
                        return Err(YamlError {
                            message: format!(
                                "mapping key \"{}\" already defined at line {}",
                                text, k.pos.0
                            ),
                            pos: Some(node.pos),
                        });
                    }
                    *pending = Some(Key {
                        text,
                        pos: node.pos,
                    });
                }
                Some(key) => items.push((key, node)),
            },
        }
    }
    Ok(root.unwrap_or(Node {
        pos: (1, 1),
        kind: Kind::Null,
    }))
}

fn count(n: &Node) -> usize {
    // Iterative to avoid deep recursion.
    let mut total = 0usize;
    let mut todo = vec![n];
    while let Some(n) = todo.pop() {
        total = total.saturating_add(1);
        match &n.kind {
            Kind::Seq(items) => todo.extend(items.iter()),
            Kind::Map(items) => todo.extend(items.iter().map(|(_, v)| v)),
            _ => {}
        }
    }
    total
}

impl Node {
    /// A short description of the node's YAML type, in yaml.v3's `!!tag` style.
    pub fn tag_name(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "!!null",
            Kind::Seq(_) => "!!seq",
            Kind::Map(_) => "!!map",
            Kind::Scalar { text, plain, tag } => {
                if let Some(t) = tag {
                    return match t.as_str() {
                        "int" => "!!int",
                        "bool" => "!!bool",
                        "float" => "!!float",
                        _ => "!!str",
                    };
                }
                if !*plain {
                    "!!str"
                } else if parse_int(text).is_some() {
                    "!!int"
                } else if matches!(
                    text.as_str(),
                    "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
                ) {
                    "!!bool"
                } else if text.parse::<f64>().is_ok() {
                    "!!float"
                } else {
                    "!!str"
                }
            }
        }
    }
}

/// The value of `key` in a mapping node (the first, if repeated); `None` for other nodes.
pub(crate) fn get<'a>(n: &'a Node, key: &str) -> Option<&'a Node> {
    match &n.kind {
        Kind::Map(items) => items.iter().find(|(k, _)| k.text == key).map(|(_, v)| v),
        _ => None,
    }
}

/// Resolves an integer like yaml.v3 does for plain scalars (`strconv.ParseInt(s, 0, 64)` plus
/// the YAML 1.2 `0o` prefix): decimal, `0x` hex, `0`/`0o` octal, `0b` binary, optional sign and
/// `_` separators.
pub fn parse_int(text: &str) -> Option<i64> {
    let (neg, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest.is_empty() {
        return None;
    }
    let (radix, digits) = if let Some(r) = rest.strip_prefix("0x").or(rest.strip_prefix("0X")) {
        (16, r)
    } else if let Some(r) = rest.strip_prefix("0o").or(rest.strip_prefix("0O")) {
        (8, r)
    } else if let Some(r) = rest.strip_prefix("0b").or(rest.strip_prefix("0B")) {
        (2, r)
    } else if rest.len() > 1 && rest.starts_with('0') {
        (8, &rest[1..])
    } else {
        (10, rest)
    };
    let cleaned: String = digits.chars().filter(|c| *c != '_').collect();
    if cleaned.is_empty() || digits.starts_with('_') || !cleaned.chars().all(|c| c.is_digit(radix))
    {
        return None;
    }
    let v = i128::from_str_radix(&cleaned, radix).ok()?;
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

/// Resolves a boolean the way yaml.v3 does when decoding into a typed `bool` (YAML 1.1 spellings
/// included).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => {
            Some(true)
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n" | "N" => {
            Some(false)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_octal() {
        let n = parse("a:\n  b: 0644\n  c: '0644'\n").unwrap();
        let Kind::Map(items) = &n.kind else { panic!() };
        assert_eq!(items[0].0.pos, (1, 1));
        let Kind::Map(inner) = &items[0].1.kind else {
            panic!()
        };
        assert_eq!(inner[0].1.pos, (2, 6));
        assert_eq!(parse_int("0644"), Some(420));
        assert_eq!(parse_int("0o644"), Some(420));
        assert_eq!(parse_int("0x1A4"), Some(420));
        assert_eq!(parse_int("644"), Some(644));
        assert_eq!(parse_int("08"), None);
        assert_eq!(inner[1].1.tag_name(), "!!str");
    }

    #[test]
    fn duplicate_keys_rejected() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.pos, Some((2, 1)));
        assert!(e.message.contains("already defined"), "{}", e.message);
    }

    #[test]
    fn aliases_expand_and_are_bounded() {
        let n = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        let Kind::Map(items) = &n.kind else { panic!() };
        assert_eq!(items[1].1.kind, items[0].1.kind);
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse(&bomb).is_err());
    }

    #[test]
    fn deep_nesting_rejected() {
        let s = "[".repeat(10_000);
        assert!(parse(&s).is_err());
    }
}
