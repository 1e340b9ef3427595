//! The built-in filters of the fast path, with jq's semantics.

use std::borrow::Cow;

use super::eval::{Sink, guarded};
use super::{Builtin, Op};
use crate::engine::expr::{ErrKind, ExprError, Scope, V};
use crate::engine::json::Kind;

pub(super) fn call<'a>(
    b: Builtin,
    args: &'a [Op],
    x: &V<'a>,
    s: &Scope<'a>,
    out: Sink<'_, 'a>,
) -> Result<(), ExprError> {
    use Builtin::*;
    match b {
        Empty => Ok(()),
        Not => out(V::Bool(!x.truthy())),
        Length => out(x.length()?),
        ToString => out(V::Str(x.to_text())),
        ToJson => out(V::Str(Cow::Owned(x.to_json()))),
        ToNumber => out(to_number(x)?),
        AsciiDowncase => out(V::Str(Cow::Owned(
            string(x, "ascii_downcase")?.to_ascii_lowercase(),
        ))),
        AsciiUpcase => out(V::Str(Cow::Owned(
            string(x, "ascii_upcase")?.to_ascii_uppercase(),
        ))),
        Type => out(V::Str(Cow::Borrowed(x.kind().jq_name()))),
        Abs => out(abs(x)?),
        Select => args[0].run(x, s, &mut |c| {
            if c.truthy() { out(x.clone()) } else { Ok(()) }
        }),
        Has => args[0].run(x, s, &mut |k| out(V::Bool(has(x, &k)?))),
        StartsWith => args[0].run(x, s, &mut |p| {
            out(V::Bool(
                string(x, "startswith")?.starts_with(string(&p, "startswith")?),
            ))
        }),
        EndsWith => args[0].run(x, s, &mut |p| {
            out(V::Bool(
                string(x, "endswith")?.ends_with(string(&p, "endswith")?),
            ))
        }),
        Contains => args[0].run(x, s, &mut |p| out(V::Bool(contains(x, &p)?))),
        Split => args[0].run(x, s, &mut |p| out(split(x, &p)?)),
        LtrimStr => args[0].run(x, s, &mut |p| out(trim(x, &p, true))),
        RtrimStr => args[0].run(x, s, &mut |p| out(trim(x, &p, false))),
        First => {
            let mut first = None;
            let inner = guarded(
                &mut |v| {
                    first = Some(v);
                    Err(ExprError::stop())
                },
                |sink| args[0].run(x, s, sink),
            );
            match inner {
                Err(e) if e.is(ErrKind::Stop) => {}
                Err(e) => return Err(e),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(())) => {}
            }
            match first {
                Some(v) => out(v),
                None => Ok(()),
            }
        }
    }
}

/// A single-valued built-in, without the generator callback.
pub(super) fn call1<'a>(
    b: Builtin,
    args: &'a [Op],
    x: &V<'a>,
    s: &Scope<'a>,
) -> Result<V<'a>, ExprError> {
    use Builtin::*;
    Ok(match b {
        Not => V::Bool(!x.truthy()),
        Length => x.length()?,
        ToString => V::Str(x.to_text()),
        ToJson => V::Str(Cow::Owned(x.to_json())),
        ToNumber => to_number(x)?,
        AsciiDowncase => V::Str(Cow::Owned(
            string(x, "ascii_downcase")?.to_ascii_lowercase(),
        )),
        AsciiUpcase => V::Str(Cow::Owned(string(x, "ascii_upcase")?.to_ascii_uppercase())),
        Type => V::Str(Cow::Borrowed(x.kind().jq_name())),
        Abs => abs(x)?,
        Has => V::Bool(has(x, &args[0].eval1(x, s)?)?),
        StartsWith => {
            let p = args[0].eval1(x, s)?;
            V::Bool(string(x, "startswith")?.starts_with(string(&p, "startswith")?))
        }
        EndsWith => {
            let p = args[0].eval1(x, s)?;
            V::Bool(string(x, "endswith")?.ends_with(string(&p, "endswith")?))
        }
        Contains => V::Bool(contains(x, &args[0].eval1(x, s)?)?),
        Split => split(x, &args[0].eval1(x, s)?)?,
        LtrimStr => trim(x, &args[0].eval1(x, s)?, true),
        RtrimStr => trim(x, &args[0].eval1(x, s)?, false),
        Empty | Select | First => return Err(ExprError::fallback()),
    })
}

/// `split($sep)` of a string by a non-empty string: the parts as an array.
/// An empty input or separator (where jq implementations differ) and other
/// kinds ask the interpreter.
fn split<'a>(x: &V<'a>, sep: &V<'a>) -> Result<V<'a>, ExprError> {
    match (x, sep) {
        (V::Str(s), V::Str(sep)) if !s.is_empty() && !sep.is_empty() => Ok(V::Jq(
            s.split(sep.as_ref())
                .map(crate::engine::expr::jq::JVal::str)
                .collect(),
        )),
        _ => Err(ExprError::fallback()),
    }
}

/// jq's `contains` for strings (substring); other kinds ask the interpreter.
fn contains(x: &V<'_>, p: &V<'_>) -> Result<bool, ExprError> {
    match (x, p) {
        (V::Str(a), V::Str(b)) => Ok(a.contains(b.as_ref())),
        _ => Err(ExprError::fallback()),
    }
}

fn string<'v>(v: &'v V<'_>, what: &str) -> Result<&'v str, ExprError> {
    match v {
        V::Str(s) => Ok(s),
        other => Err(ExprError::new(format!(
            "{what} needs a string, got {}",
            other.kind().jq_name()
        ))),
    }
}

fn trim<'a>(x: &V<'a>, p: &V<'a>, left: bool) -> V<'a> {
    if let (V::Str(s), V::Str(p)) = (x, p) {
        let cut = if left {
            s.strip_prefix(p.as_ref())
        } else {
            s.strip_suffix(p.as_ref())
        };
        if let Some(rest) = cut {
            return V::Str(match s {
                Cow::Borrowed(b) => Cow::Borrowed(if left {
                    &b[b.len() - rest.len()..]
                } else {
                    &b[..rest.len()]
                }),
                Cow::Owned(_) => Cow::Owned(rest.to_owned()),
            });
        }
    }
    x.clone()
}

fn abs<'a>(x: &V<'a>) -> Result<V<'a>, ExprError> {
    Ok(match x {
        V::Num(n) => match n.strip_prefix('-') {
            Some(pos) => V::Num(Cow::Owned(pos.to_owned())),
            None => x.clone(),
        },
        V::Null | V::Bool(_) => return Err(ExprError::fallback()),
        other => other.clone(),
    })
}

fn has(x: &V<'_>, k: &V<'_>) -> Result<bool, ExprError> {
    if let (V::Doc(d), V::Str(key)) = (x, k)
        && d.kind() == Kind::Object
    {
        return Ok(d.get(key).is_some());
    }
    match (x.kind(), k) {
        (Kind::Object, V::Str(key)) => {
            Ok(!matches!(x.key(key)?, V::Null) || has_null_member(x, key))
        }
        (Kind::Array, V::Num(n)) => {
            let i: i64 = n.parse().map_err(|_| ExprError::fallback())?;
            Ok(i >= 0 && (i as usize) < array_len(x))
        }
        _ => Err(ExprError::fallback()),
    }
}

fn has_null_member(x: &V<'_>, key: &str) -> bool {
    match x {
        V::Doc(d) => d.get(key).is_some(),
        _ => false,
    }
}

/// Elements of an array value (0 for anything else).
pub(super) fn array_len(x: &V<'_>) -> usize {
    match x {
        V::Doc(d) => d.len(),
        V::Jq(crate::engine::expr::jq::JVal::Arr(a)) => a.len(),
        _ => 0,
    }
}

fn to_number<'a>(x: &V<'a>) -> Result<V<'a>, ExprError> {
    match x {
        V::Num(_) => Ok(x.clone()),
        V::Str(s) if is_json_number(s) => Ok(V::Num(s.clone())),
        _ => Err(ExprError::fallback()),
    }
}

/// Whether `s` is a number in JSON syntax.
pub(crate) fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}
