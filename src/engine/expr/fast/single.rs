//! Single-valued evaluation: most mapping expressions (`.data.p`,
//! `if .m then "sell" else "buy" end`, `"a\(.a)"`) always yield exactly one
//! value. For those, [`Op::eval1`] computes it directly, without the
//! generator callbacks of [`Op::run`].

use std::borrow::Cow;

use jaq_core::ops::Math;

use super::{Builtin, Op, Part, Step};
use crate::engine::expr::value::{compare, num, parse_decimal};
use crate::engine::expr::{ErrKind, ExprError, Scope, V};

impl Op {
    /// Whether the operation always yields exactly one output (or an error).
    pub(crate) fn is_single(&self) -> bool {
        match self {
            Op::Id | Op::Lit(_) | Op::Var(_) => true,
            Op::Path(base, steps) => {
                base.is_single()
                    && steps.iter().all(|(step, optional)| {
                        !optional
                            && match step {
                                Step::Key(_) | Step::Index(_) => true,
                                Step::Dyn(op) => op.is_single(),
                                Step::Iter | Step::IterSlice(..) => false,
                            }
                    })
            }
            Op::Pipe(l, r) | Op::Alt(l, r) | Op::And(l, r) | Op::Or(l, r) => {
                l.is_single() && r.is_single()
            }
            Op::Cmp(l, _, r) | Op::Math(l, _, r) => l.is_single() && r.is_single(),
            Op::Neg(e) => e.is_single(),
            Op::If(branches, otherwise) => {
                branches.iter().all(|(c, t)| c.is_single() && t.is_single())
                    && otherwise.as_ref().is_none_or(|e| e.is_single())
            }
            Op::Interp(parts) => parts.iter().all(|p| match p {
                Part::Text(_) => true,
                Part::Op(op) => op.is_single(),
            }),
            Op::Comma(..) | Op::Try(_) => false,
            Op::Call(b, args) => {
                use Builtin::*;
                match b {
                    Empty | Select | First => false,
                    Not | Length | ToString | ToJson | ToNumber | AsciiDowncase | AsciiUpcase
                    | Type | Abs => true,
                    Has | StartsWith | EndsWith | LtrimStr | RtrimStr | Contains | Split => {
                        args[0].is_single()
                    }
                }
            }
        }
    }

    /// Evaluate a single-valued operation (see [`Op::is_single`]).
    pub(crate) fn eval1<'a>(&'a self, x: &V<'a>, s: &Scope<'a>) -> Result<V<'a>, ExprError> {
        match self {
            Op::Id => Ok(x.clone()),
            Op::Lit(v) => Ok(super::eval::lit(v)),
            Op::Var(i) => Ok(s.vars[*i].clone()),
            Op::Path(base, steps) => {
                // The most common shape, `.key` on an object of the frame.
                if let (Op::Id, [(Step::Key(k), _)], V::Doc(d)) =
                    (base.as_ref(), steps.as_slice(), x)
                    && d.kind() == crate::engine::json::Kind::Object
                {
                    return Ok(d.get(k).map_or(V::Null, V::from_doc));
                }
                let mut v = match base.as_ref() {
                    Op::Id => x.clone(),
                    Op::Var(i) => s.vars[*i].clone(),
                    other => other.eval1(x, s)?,
                };
                for (step, _) in steps {
                    v = match step {
                        Step::Key(k) => v.key(k)?,
                        Step::Index(i) => v.index(*i)?,
                        Step::Dyn(op) => match op.eval1(x, s)? {
                            V::Str(key) => v.key(&key)?,
                            V::Num(n) => v.index(n.parse().map_err(|_| ExprError::fallback())?)?,
                            _ => return Err(ExprError::fallback()),
                        },
                        Step::Iter | Step::IterSlice(..) => unreachable!("not single"),
                    };
                }
                Ok(v)
            }
            Op::Pipe(l, r) => r.eval1(&l.eval1(x, s)?, s),
            Op::Alt(l, r) => match l.eval1(x, s) {
                Ok(v) if v.truthy() => Ok(v),
                Err(e) if e.is(ErrKind::Fallback) => Err(e),
                _ => r.eval1(x, s),
            },
            Op::And(l, r) => Ok(V::Bool(l.eval1(x, s)?.truthy() && r.eval1(x, s)?.truthy())),
            Op::Or(l, r) => Ok(V::Bool(l.eval1(x, s)?.truthy() || r.eval1(x, s)?.truthy())),
            Op::Cmp(l, c, r) => {
                let b = r.eval1(x, s)?;
                let a = l.eval1(x, s)?;
                let ord = compare(&a, &b)?;
                Ok(V::Bool(super::eval::cmp_holds(*c, ord)))
            }
            Op::Math(l, m, r) => {
                let b = r.eval1(x, s)?;
                let a = l.eval1(x, s)?;
                math1(&a, *m, &b)
            }
            Op::Neg(e) => match e.eval1(x, s)? {
                V::Num(n) => Ok(V::Num(match n.strip_prefix('-') {
                    Some(pos) => Cow::Owned(pos.to_owned()),
                    None => Cow::Owned(format!("-{n}")),
                })),
                _ => Err(ExprError::fallback()),
            },
            Op::If(branches, otherwise) => {
                for (c, t) in branches {
                    if c.eval1(x, s)?.truthy() {
                        return t.eval1(x, s);
                    }
                }
                match otherwise {
                    Some(e) => e.eval1(x, s),
                    None => Ok(x.clone()),
                }
            }
            Op::Interp(parts) => {
                let mut out = String::new();
                for p in parts {
                    match p {
                        Part::Text(t) => out.push_str(t),
                        Part::Op(op) => match op.eval1(x, s)? {
                            V::Str(t) => out.push_str(&t),
                            V::Num(n) => out.push_str(&n),
                            other => out.push_str(&other.to_text()),
                        },
                    }
                }
                Ok(V::Str(Cow::Owned(out)))
            }
            Op::Call(b, args) => super::builtins::call1(*b, args, x, s),
            Op::Comma(..) | Op::Try(_) => unreachable!("not single"),
        }
    }
}

pub(super) fn math1<'a>(a: &V<'a>, m: Math, b: &V<'a>) -> Result<V<'a>, ExprError> {
    match (a, m, b) {
        (V::Null, Math::Add, other) | (other, Math::Add, V::Null) => Ok(other.clone()),
        (V::Str(x), Math::Add, V::Str(y)) => Ok(V::Str(Cow::Owned(format!("{x}{y}")))),
        (V::Num(x), _, V::Num(y)) => {
            let (Some(x), Some(y)) = (parse_decimal(x), parse_decimal(y)) else {
                return Err(ExprError::fallback());
            };
            let r = match m {
                Math::Add => x.checked_add(y),
                Math::Sub => x.checked_sub(y),
                Math::Mul => x.checked_mul(y),
                Math::Div if y.is_zero() => {
                    return Err(ExprError::new("cannot divide a number by zero"));
                }
                Math::Div => x.checked_div(y),
                Math::Rem => None,
            };
            r.map(num).ok_or_else(ExprError::fallback)
        }
        _ => Err(ExprError::fallback()),
    }
}
