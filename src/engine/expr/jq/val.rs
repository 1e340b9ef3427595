//! The interpreter's value type: JSON values with exact decimal numbers,
//! whose operations spend the evaluation budget (see
//! [`crate::engine::expr::budget`]).
//!
//! jaq runs on any value type implementing its `ValT` traits
//! (`valt.rs`); owning the type is what lets every step of an evaluation —
//! `+`, `.[]`, `[...]`, `{...}` — count against the budget and compute
//! numbers exactly.

use std::cmp::Ordering;
use std::fmt;
use std::rc::Rc;

use bytes::Bytes;

use super::num::Num;
use crate::engine::json::{Kind, Value};

/// A string: UTF-8 bytes, cheap to clone and to slice.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JStr(pub Bytes);

impl JStr {
    /// From text.
    pub fn from_str(s: &str) -> JStr {
        JStr(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// The text (lossy when the bytes are not UTF-8, e.g. `@base64d`).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

impl fmt::Debug for JStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text(), f)
    }
}

/// An object: members in insertion order.
pub(super) type Map = indexmap::IndexMap<JStr, JVal, foldhash::fast::RandomState>;

/// A value in the jq interpreter.
#[derive(Clone, Debug, Default)]
pub enum JVal {
    /// `null`
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Num(Num),
    /// A string.
    Str(JStr),
    /// An array.
    Arr(Rc<Vec<JVal>>),
    /// An object.
    Obj(Rc<Map>),
}

impl JVal {
    /// A string value.
    pub fn str(s: &str) -> JVal {
        JVal::Str(JStr::from_str(s))
    }

    /// An array value.
    pub fn arr(v: Vec<JVal>) -> JVal {
        JVal::Arr(Rc::new(v))
    }

    /// An object value.
    pub fn obj(m: Map) -> JVal {
        JVal::Obj(Rc::new(m))
    }

    /// The JSON kind.
    pub fn kind(&self) -> Kind {
        match self {
            JVal::Null => Kind::Null,
            JVal::Bool(_) => Kind::Bool,
            JVal::Num(_) => Kind::Number,
            JVal::Str(_) => Kind::String,
            JVal::Arr(_) => Kind::Array,
            JVal::Obj(_) => Kind::Object,
        }
    }

    /// Compact JSON text.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    /// Append compact JSON text to `out`.
    pub fn write_json(&self, out: &mut String) {
        match self {
            JVal::Null => out.push_str("null"),
            JVal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            JVal::Num(n) => n.write(out),
            JVal::Str(s) => crate::engine::json::write_str(&s.text(), out),
            JVal::Arr(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            JVal::Obj(o) => {
                out.push('{');
                for (i, (k, v)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    crate::engine::json::write_str(&k.text(), out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// A parsed document value (deep copy).
    pub fn from_doc(d: Value<'_>) -> JVal {
        match d.kind() {
            Kind::Null => JVal::Null,
            Kind::Bool => JVal::Bool(d.as_bool() == Some(true)),
            Kind::Number => JVal::Num(Num::parse(d.number_text().unwrap_or("0"))),
            Kind::String => JVal::str(&d.as_str().unwrap_or_default()),
            Kind::Array => JVal::arr(d.elements().map(JVal::from_doc).collect()),
            Kind::Object => JVal::obj(
                d.members()
                    .map(|(k, v)| (JStr::from_str(&k), JVal::from_doc(v)))
                    .collect(),
            ),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            JVal::Null => 0,
            JVal::Bool(false) => 1,
            JVal::Bool(true) => 2,
            JVal::Num(_) => 3,
            JVal::Str(_) => 4,
            JVal::Arr(_) => 5,
            JVal::Obj(_) => 6,
        }
    }
}

impl fmt::Display for JVal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl PartialEq for JVal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for JVal {}

impl PartialOrd for JVal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for JVal {
    /// jq's order: null < false < true < numbers < strings < arrays <
    /// objects; arrays element by element; objects by their sorted keys,
    /// then their values in key order.
    fn cmp(&self, other: &Self) -> Ordering {
        // Comparisons are steps too (sorting a large array is work), but
        // cannot fail: the budget records the excess and the evaluation
        // fails at its next fallible step.
        let _ = crate::engine::expr::budget::step();
        match (self, other) {
            (JVal::Num(x), JVal::Num(y)) => x.cmp(y),
            (JVal::Str(x), JVal::Str(y)) => x.cmp(y),
            (JVal::Arr(x), JVal::Arr(y)) => x.iter().cmp(y.iter()),
            (JVal::Obj(x), JVal::Obj(y)) => {
                let mut kx: Vec<&JStr> = x.keys().collect();
                let mut ky: Vec<&JStr> = y.keys().collect();
                kx.sort();
                ky.sort();
                kx.cmp(&ky)
                    .then_with(|| kx.iter().map(|k| &x[*k]).cmp(ky.iter().map(|k| &y[*k])))
            }
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::json::Parser;

    #[test]
    fn documents_become_values_and_back_to_json() {
        let text = r#"{"a":[1,"x\"y",{"b":true}],"n":0.10,"z":null}"#;
        let mut p = Parser::new();
        let v = JVal::from_doc(p.parse(text).unwrap());
        assert_eq!(v.to_json(), text);
    }

    #[test]
    fn order_follows_jq() {
        let n = |s: &str| JVal::Num(Num::parse(s));
        let mut vals = [
            JVal::obj(Map::default()),
            JVal::arr(vec![n("1")]),
            JVal::str("a"),
            n("2"),
            n("1.0"),
            JVal::Bool(true),
            JVal::Bool(false),
            JVal::Null,
        ];
        vals.sort();
        let json: Vec<String> = vals.iter().map(JVal::to_json).collect();
        assert_eq!(
            json,
            ["null", "false", "true", "1.0", "2", "\"a\"", "[1]", "{}"]
        );
        assert_eq!(n("1.0"), n("1"));
    }
}
