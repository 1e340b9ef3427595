//! The values expressions compute with: borrowed from the frame where
//! possible, jaq values where the jq interpreter produced them.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::jq::{JStr, JVal};
use rust_decimal::Decimal;

use super::ExprError;
use crate::engine::json::{Kind, Value};

/// A value during evaluation.
#[derive(Clone, Debug)]
pub enum V<'a> {
    /// `null`
    Null,
    /// A boolean.
    Bool(bool),
    /// A number, as exact decimal text in JSON number syntax.
    Num(Cow<'a, str>),
    /// A string.
    Str(Cow<'a, str>),
    /// An array or object inside a parsed document (frame or context).
    Doc(Value<'a>),
    /// An array or object computed by the jq interpreter.
    Jq(JVal),
}

impl<'a> V<'a> {
    /// Wrap a document value (scalars become `V` scalars).
    pub fn from_doc(v: Value<'a>) -> Self {
        match v.kind() {
            Kind::Null => V::Null,
            Kind::Bool => V::Bool(v.as_bool() == Some(true)),
            Kind::Number => V::Num(Cow::Borrowed(v.number_text().unwrap_or("0"))),
            Kind::String => V::Str(v.as_str().unwrap_or_default()),
            Kind::Array | Kind::Object => V::Doc(v),
        }
    }

    /// The JSON kind.
    pub fn kind(&self) -> Kind {
        match self {
            V::Null => Kind::Null,
            V::Bool(_) => Kind::Bool,
            V::Num(_) => Kind::Number,
            V::Str(_) => Kind::String,
            V::Doc(d) => d.kind(),
            V::Jq(JVal::Arr(_)) => Kind::Array,
            V::Jq(JVal::Obj(_)) => Kind::Object,
            V::Jq(other) => super::jq::val_kind(other),
        }
    }

    /// jq truthiness: everything but `null` and `false`.
    pub fn truthy(&self) -> bool {
        !matches!(self, V::Null | V::Bool(false))
    }

    /// Detach from the frame's lifetime.
    pub fn into_owned(self) -> V<'static> {
        match self {
            V::Null => V::Null,
            V::Bool(b) => V::Bool(b),
            V::Num(n) => V::Num(Cow::Owned(n.into_owned())),
            V::Str(s) => V::Str(Cow::Owned(s.into_owned())),
            V::Doc(d) => V::Jq(super::jq::doc_to_val(d)),
            V::Jq(v) => V::Jq(v),
        }
    }

    /// `.[key]`: `null` stays `null`, a missing key gives `null`.
    pub fn key(&self, key: &str) -> Result<V<'a>, ExprError> {
        match self {
            V::Null => Ok(V::Null),
            V::Doc(d) if d.kind() == Kind::Object => Ok(d.get(key).map_or(V::Null, V::from_doc)),
            V::Jq(JVal::Obj(o)) => {
                let k = JStr::from_str(key);
                Ok(o.get(&k)
                    .map_or(V::Null, |v| super::jq::val_to_v(v.clone())))
            }
            other => Err(ExprError::new(format!(
                "cannot index {} with \"{key}\"",
                other.kind().jq_name()
            ))),
        }
    }

    /// `.[i]`: negative counts from the end; out of range gives `null`.
    pub fn index(&self, i: i64) -> Result<V<'a>, ExprError> {
        match self {
            V::Null => Ok(V::Null),
            V::Doc(d) if d.kind() == Kind::Array => Ok(d.index(i).map_or(V::Null, V::from_doc)),
            V::Jq(JVal::Arr(a)) => {
                let len = a.len() as i64;
                let j = if i < 0 { len + i } else { i };
                Ok(if (0..len).contains(&j) {
                    super::jq::val_to_v(a[j as usize].clone())
                } else {
                    V::Null
                })
            }
            other => Err(ExprError::new(format!(
                "cannot index {} with number",
                other.kind().jq_name()
            ))),
        }
    }

    /// `.[]`: call `f` with each element (array) or member value (object).
    pub fn each(&self, f: &mut dyn FnMut(V<'a>) -> Result<(), ExprError>) -> Result<(), ExprError> {
        // Each element is a step of the evaluation budget (nested
        // iterations over a large frame multiply).
        let f = &mut |v: V<'a>| {
            super::budget::step().map_err(|e| ExprError::new(e.message()))?;
            f(v)
        };
        match self {
            V::Doc(d) if d.kind() == Kind::Array => {
                d.elements().try_for_each(|e| f(V::from_doc(e)))
            }
            V::Doc(d) => d.members().try_for_each(|(_, e)| f(V::from_doc(e))),
            V::Jq(JVal::Arr(a)) => a.iter().try_for_each(|e| f(super::jq::val_to_v(e.clone()))),
            V::Jq(JVal::Obj(o)) => o
                .values()
                .try_for_each(|e| f(super::jq::val_to_v(e.clone()))),
            other => Err(ExprError::new(format!(
                "cannot iterate over {}",
                other.kind().jq_name()
            ))),
        }
    }

    /// Number of elements, members or characters (jq's `length`).
    pub fn length(&self) -> Result<V<'a>, ExprError> {
        Ok(match self {
            V::Null => V::Num(Cow::Borrowed("0")),
            V::Bool(_) => return Err(ExprError::new("boolean has no length")),
            V::Num(n) => V::Num(Cow::Owned(n.trim_start_matches('-').to_owned())),
            V::Str(s) => V::Num(Cow::Owned(s.chars().count().to_string())),
            V::Doc(d) => V::Num(Cow::Owned(d.len().to_string())),
            V::Jq(JVal::Arr(a)) => V::Num(Cow::Owned(a.len().to_string())),
            V::Jq(JVal::Obj(o)) => V::Num(Cow::Owned(o.len().to_string())),
            V::Jq(_) => return Err(ExprError::fallback()),
        })
    }

    /// The value as text, as jq's `tostring` (strings as they are, the rest
    /// as compact JSON).
    pub fn to_text(&self) -> Cow<'a, str> {
        match self {
            V::Str(s) => s.clone(),
            other => Cow::Owned(other.to_json()),
        }
    }

    /// Compact JSON text.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        match self {
            V::Null => out.push_str("null"),
            V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            V::Num(n) => out.push_str(n),
            V::Str(s) => crate::engine::json::write_str(s, &mut out),
            V::Doc(d) => crate::engine::json::write_json(*d, &mut out),
            V::Jq(v) => out.push_str(&v.to_string()),
        }
        out
    }

    /// The number as a decimal, if it is a number that fits.
    pub fn decimal(&self) -> Option<Decimal> {
        match self {
            V::Num(n) => parse_decimal(n),
            _ => None,
        }
    }
}

/// Parse JSON number text (or a numeric string) exactly into a decimal.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    if text.bytes().any(|b| b == b'e' || b == b'E') {
        Decimal::from_scientific(text).ok()
    } else {
        Decimal::from_str_exact(text).ok()
    }
}

fn kind_rank(k: Kind) -> u8 {
    match k {
        Kind::Null => 0,
        Kind::Bool => 1,
        Kind::Number => 2,
        Kind::String => 3,
        Kind::Array => 4,
        Kind::Object => 5,
    }
}

/// Compare two numbers given as text: exactly when both fit a decimal, else
/// as floating point.
pub(super) fn cmp_numbers(a: &str, b: &str) -> Ordering {
    match (parse_decimal(a), parse_decimal(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => {
            let x: f64 = a.parse().unwrap_or(f64::NAN);
            let y: f64 = b.parse().unwrap_or(f64::NAN);
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
    }
}

/// jq's total order, for the kinds the fast path compares natively.
/// Arrays and objects of equal kind ask for the interpreter.
pub(super) fn compare(a: &V<'_>, b: &V<'_>) -> Result<Ordering, ExprError> {
    let (ka, kb) = (a.kind(), b.kind());
    if ka != kb {
        return Ok(kind_rank(ka).cmp(&kind_rank(kb)));
    }
    Ok(match (a, b) {
        (V::Null, V::Null) => Ordering::Equal,
        (V::Bool(x), V::Bool(y)) => x.cmp(y),
        (V::Num(x), V::Num(y)) => cmp_numbers(x, y),
        (V::Str(x), V::Str(y)) => x.as_ref().cmp(y.as_ref()),
        _ => return Err(ExprError::fallback()),
    })
}

/// Build a number value from a decimal result.
pub(super) fn num(d: Decimal) -> V<'static> {
    V::Num(Cow::Owned(d.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::json::Parser;

    #[test]
    fn jq_order_across_kinds() {
        let n = V::Num("1".into());
        let s = V::Str("a".into());
        assert_eq!(compare(&V::Null, &V::Bool(false)).unwrap(), Ordering::Less);
        assert_eq!(compare(&n, &s).unwrap(), Ordering::Less);
        assert_eq!(
            compare(&V::Num("1.0".into()), &V::Num("1".into())).unwrap(),
            Ordering::Equal
        );
        assert_eq!(
            compare(&V::Num("-2".into()), &V::Num("1e0".into())).unwrap(),
            Ordering::Less
        );
    }

    #[test]
    fn navigation_over_documents() {
        let mut p = Parser::new();
        let d = p.parse(r#"{"a":[1,"x",{"b":true}]}"#).unwrap();
        let v = V::from_doc(d);
        let a = v.key("a").unwrap();
        assert!(matches!(a.index(1).unwrap(), V::Str(s) if s == "x"));
        assert!(matches!(
            a.index(-1).unwrap().key("b").unwrap(),
            V::Bool(true)
        ));
        assert!(matches!(v.key("zz").unwrap().key("y").unwrap(), V::Null));
        assert!(a.key("b").is_err());
        let mut n = 0;
        a.each(&mut |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 3);
    }
}
