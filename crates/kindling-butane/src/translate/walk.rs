//! The schema-driven walk from the Butane YAML tree to Ignition JSON: types, versioned
//! fields, defaults, unused-key warnings, and the hand-off of each object's sugar to the module
//! of its Butane section.

use super::ctx::{Ctx, Fields, Sugar, join};
use super::{passwd, resource, storage, systemd, trees};
use crate::schema::{self, Emit, Obj, Ty};
use crate::yaml::{self, Kind, Node, Pos};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Walks the whole config.
pub(super) fn config(ctx: &mut Ctx<'_>, root: &Node) -> Value {
    Value::Object(ctx.walk_obj(root, &schema::CONFIG, "", ""))
}

impl Ctx<'_> {
    fn type_err(&mut self, node: &Node, want: &str, ypath: &str) {
        let shown = match &node.kind {
            Kind::Scalar { text, .. } => format!("{} `{}`", node.tag_name(), text),
            _ => node.tag_name().to_string(),
        };
        self.err(
            format!("cannot unmarshal {shown} into {want}"),
            ypath,
            node.pos,
        );
    }

    fn walk(&mut self, node: &Node, ty: &Ty, ypath: &str, jpath: &str) -> Option<Value> {
        if node.kind == Kind::Null {
            return None;
        }
        match ty {
            Ty::Str => match &node.kind {
                Kind::Scalar { text, .. } => Some(Value::String(text.clone())),
                _ => {
                    self.type_err(node, "string", ypath);
                    None
                }
            },
            Ty::Int => match &node.kind {
                Kind::Scalar {
                    text,
                    plain: true,
                    tag,
                } if tag.as_deref() != Some("str") => match yaml::parse_int(text) {
                    Some(v) => Some(json!(v)),
                    None => {
                        self.type_err(node, "int", ypath);
                        None
                    }
                },
                _ => {
                    self.type_err(node, "int", ypath);
                    None
                }
            },
            Ty::Bool => match &node.kind {
                Kind::Scalar {
                    text, plain: true, ..
                } => match yaml::parse_bool(text) {
                    Some(b) => Some(Value::Bool(b)),
                    None => {
                        self.type_err(node, "bool", ypath);
                        None
                    }
                },
                _ => {
                    self.type_err(node, "bool", ypath);
                    None
                }
            },
            Ty::StrList => match &node.kind {
                Kind::Seq(items) => {
                    let mut out = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let yp = join(ypath, &i.to_string());
                        let jp = join(jpath, &i.to_string());
                        self.origin(&jp, &yp, item.pos);
                        match &item.kind {
                            Kind::Scalar { text, .. } => out.push(Value::String(text.clone())),
                            Kind::Null => out.push(Value::String(String::new())),
                            _ => self.type_err(item, "string", &yp),
                        }
                    }
                    Some(Value::Array(out))
                }
                _ => {
                    self.type_err(node, "[]string", ypath);
                    None
                }
            },
            Ty::Obj(obj) => match &node.kind {
                Kind::Map(_) => Some(Value::Object(self.walk_obj(node, obj, ypath, jpath))),
                _ => {
                    self.type_err(node, obj.name, ypath);
                    None
                }
            },
            Ty::List(obj) => match &node.kind {
                Kind::Seq(items) => {
                    let mut out = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let yp = join(ypath, &i.to_string());
                        let jp = join(jpath, &i.to_string());
                        self.origin(&jp, &yp, item.pos);
                        match &item.kind {
                            Kind::Map(_) | Kind::Null => {
                                out.push(Value::Object(self.walk_obj(item, obj, &yp, &jp)))
                            }
                            _ => self.type_err(item, obj.name, &yp),
                        }
                    }
                    Some(Value::Array(out))
                }
                _ => {
                    self.type_err(node, &format!("[]{}", obj.name), ypath);
                    None
                }
            },
        }
    }

    fn walk_obj(
        &mut self,
        node: &Node,
        obj: &'static Obj,
        ypath: &str,
        jpath: &str,
    ) -> Map<String, Value> {
        let items: &[(yaml::Key, Node)] = match &node.kind {
            Kind::Map(items) => items,
            _ => &[],
        };
        // yaml key -> (value, node, key position)
        let mut vals: HashMap<&'static str, (Option<Value>, Pos)> = HashMap::new();
        for (key, val) in items {
            let yp = join(ypath, &key.text);
            let field = schema::field(obj, &key.text, self.minor).filter(|f| {
                !(self.flatcar && f.json.is_empty() && matches!(f.yaml, "boot_device" | "grub"))
            });
            let Some(field) = field else {
                self.warn(format!("unused key {}", key.text), &yp, key.pos);
                continue;
            };
            let jp = if field.json.is_empty() {
                yp.clone()
            } else {
                join(jpath, field.json)
            };
            if !field.json.is_empty() {
                self.origin(&jp, &yp, key.pos);
            }
            let v = self.walk(val, &field.ty, &yp, &jp);
            vals.insert(field.yaml, (v, key.pos));
        }
        let mut out: Fields = HashMap::new();
        for field in obj.fields {
            if field.json.is_empty() || field.min > self.minor || field.max < self.minor {
                continue;
            }
            let v = vals.get(field.yaml).and_then(|(v, _)| v.clone());
            let v = match (v, field.emit) {
                (Some(Value::Object(m)), _) if m.is_empty() => None,
                (Some(Value::Array(a)), _) if a.is_empty() => None,
                (Some(v), Emit::Val) if is_zero(&v) => None,
                (Some(v), _) => Some(v),
                (None, Emit::Always) => Some(zero(&field.ty)),
                (None, _) => None,
            };
            if let Some(v) = v {
                out.insert(field.json, v);
            }
        }
        let sugar = Sugar {
            vals: &vals,
            ypath,
            jpath,
            pos: node.pos,
        };
        match obj.name {
            "Resource" | "FileContents" => resource::hook_resource(self, &mut out, &sugar, obj),
            "Unit" | "Dropin" => systemd::contents_local(self, &mut out, &sugar),
            "PasswdUser" => passwd::ssh_keys_local(self, &mut out, &sugar),
            "File" | "Directory" => {
                storage::check_mode(self, &out, &sugar, obj.name == "Directory")
            }
            "Filesystem" => systemd::with_mount_unit(self, &out, &sugar),
            "Tree" => trees::request(self, &sugar),
            _ => {}
        }
        // Emit in schema order.
        let mut map = Map::new();
        for field in obj.fields {
            if field.json.is_empty() || field.min > self.minor || field.max < self.minor {
                continue;
            }
            if let Some(v) = out.remove(field.json) {
                map.insert(field.json.to_string(), v);
            }
        }
        map
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Bool(b) => !b,
        _ => false,
    }
}

fn zero(ty: &Ty) -> Value {
    match ty {
        Ty::Str => Value::String(String::new()),
        Ty::Int => json!(0),
        Ty::Bool => Value::Bool(false),
        _ => Value::Null,
    }
}
