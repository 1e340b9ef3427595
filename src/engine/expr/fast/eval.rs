//! Evaluation of fast-path operations with jq's generator semantics.

use std::borrow::Cow;
use std::cmp::Ordering;

use jaq_core::ops::Cmp;

use super::{Lit, Op, Part, Step};
use crate::engine::expr::value::compare;
use crate::engine::expr::{ErrKind, ExprError, Scope, V};
use crate::engine::json::Kind;

/// The output callback.
pub(crate) type Sink<'o, 'a> = &'o mut dyn FnMut(V<'a>) -> Result<(), ExprError>;

/// Run `f`, separating errors raised downstream (by `out`) from errors raised
/// by `f` itself. Returns `Err` for downstream errors (always propagated) and
/// `Ok(inner result)` otherwise.
pub(crate) fn guarded<'a>(
    out: Sink<'_, 'a>,
    f: impl FnOnce(Sink<'_, 'a>) -> Result<(), ExprError>,
) -> Result<Result<(), ExprError>, ExprError> {
    let mut downstream = None;
    let inner = f(&mut |v| {
        out(v).map_err(|e| {
            downstream = Some(e);
            ExprError::stop()
        })
    });
    match downstream {
        Some(e) => Err(e),
        None => Ok(inner),
    }
}

impl Op {
    /// Run on `x`, calling `out` with each output.
    pub(crate) fn run<'a>(
        &'a self,
        x: &V<'a>,
        s: &Scope<'a>,
        out: Sink<'_, 'a>,
    ) -> Result<(), ExprError> {
        match self {
            Op::Id => out(x.clone()),
            Op::Lit(v) => out(lit(v)),
            Op::Var(i) => out(s.vars[*i].clone()),
            Op::Path(base, steps) => match base.as_ref() {
                Op::Id => path(x, steps, x, s, out),
                Op::Var(i) => path(&s.vars[*i], steps, x, s, out),
                other => other.run(x, s, &mut |b| path(&b, steps, x, s, out)),
            },
            Op::Pipe(l, r) => l.run(x, s, &mut |y| r.run(&y, s, out)),
            Op::Comma(l, r) => {
                l.run(x, s, out)?;
                r.run(x, s, out)
            }
            Op::Alt(l, r) => {
                let mut any = false;
                let inner = guarded(out, |out| {
                    l.run(x, s, &mut |v| {
                        if v.truthy() {
                            any = true;
                            out(v)
                        } else {
                            Ok(())
                        }
                    })
                })?;
                if let Err(e) = inner
                    && e.is(ErrKind::Fallback)
                {
                    return Err(e);
                }
                if any { Ok(()) } else { r.run(x, s, out) }
            }
            Op::And(l, r) => l.run(x, s, &mut |a| {
                if !a.truthy() {
                    out(V::Bool(false))
                } else {
                    r.run(x, s, &mut |b| out(V::Bool(b.truthy())))
                }
            }),
            Op::Or(l, r) => l.run(x, s, &mut |a| {
                if a.truthy() {
                    out(V::Bool(true))
                } else {
                    r.run(x, s, &mut |b| out(V::Bool(b.truthy())))
                }
            }),
            Op::Cmp(l, c, r) => r.run(x, s, &mut |b| {
                l.run(x, s, &mut |a| {
                    let ord = compare(&a, &b)?;
                    out(V::Bool(cmp_holds(*c, ord)))
                })
            }),
            Op::Math(l, m, r) => r.run(x, s, &mut |b| {
                l.run(x, s, &mut |a| out(super::single::math1(&a, *m, &b)?))
            }),
            Op::Neg(e) => e.run(x, s, &mut |v| match v {
                V::Num(n) => out(V::Num(negate(&n))),
                _ => Err(ExprError::fallback()),
            }),
            Op::If(branches, otherwise) => if_then(branches, otherwise.as_deref(), x, s, out),
            Op::Interp(parts) => interp(parts, String::new(), x, s, out),
            Op::Try(e) => {
                let inner = guarded(out, |out| e.run(x, s, out))?;
                match inner {
                    Err(e) if e.is(ErrKind::Fallback) => Err(e),
                    _ => Ok(()),
                }
            }
            Op::Call(b, args) => super::builtins::call(*b, args, x, s, out),
        }
    }
}

/// A literal as a value borrowing from the operation (no allocation).
pub(super) fn lit(v: &Lit) -> V<'_> {
    match v {
        Lit::Null => V::Null,
        Lit::Bool(b) => V::Bool(*b),
        Lit::Num(n) => V::Num(Cow::Borrowed(n)),
        Lit::Str(s) => V::Str(Cow::Borrowed(s)),
        Lit::EmptyArr => V::Jq(std::iter::empty().collect()),
        Lit::EmptyObj => V::Jq(super::super::jq::JVal::obj(Default::default())),
    }
}

pub(super) fn cmp_holds(c: Cmp, ord: Ordering) -> bool {
    match c {
        Cmp::Lt => ord == Ordering::Less,
        Cmp::Le => ord != Ordering::Greater,
        Cmp::Gt => ord == Ordering::Greater,
        Cmp::Ge => ord != Ordering::Less,
        Cmp::Eq => ord == Ordering::Equal,
        Cmp::Ne => ord != Ordering::Equal,
    }
}

fn negate(n: &str) -> Cow<'static, str> {
    match n.strip_prefix('-') {
        Some(pos) => Cow::Owned(pos.to_owned()),
        None => Cow::Owned(format!("-{n}")),
    }
}

fn if_then<'a>(
    branches: &'a [(Op, Op)],
    otherwise: Option<&'a Op>,
    x: &V<'a>,
    s: &Scope<'a>,
    out: Sink<'_, 'a>,
) -> Result<(), ExprError> {
    let Some(((cond, then), rest)) = branches.split_first() else {
        return match otherwise {
            Some(e) => e.run(x, s, out),
            None => out(x.clone()),
        };
    };
    cond.run(x, s, &mut |c| {
        if c.truthy() {
            then.run(x, s, out)
        } else {
            if_then(rest, otherwise, x, s, out)
        }
    })
}

fn interp<'a>(
    parts: &'a [Part],
    acc: String,
    x: &V<'a>,
    s: &Scope<'a>,
    out: Sink<'_, 'a>,
) -> Result<(), ExprError> {
    let Some((first, rest)) = parts.split_first() else {
        return out(V::Str(Cow::Owned(acc)));
    };
    match first {
        Part::Text(t) => {
            let mut acc = acc;
            acc.push_str(t);
            interp(rest, acc, x, s, out)
        }
        Part::Op(op) => op.run(x, s, &mut |v| {
            let mut next = acc.clone();
            next.push_str(&v.to_text());
            interp(rest, next, x, s, out)
        }),
    }
}

/// The element range `[start, end)` of `v[from:to]` with jq's rules (negative
/// bounds count from the end, both clamp to the array); arrays only, integer
/// bounds only, anything else asks the interpreter.
fn slice_bounds<'a>(
    v: &V<'a>,
    from: Option<&'a Op>,
    to: Option<&'a Op>,
    input: &V<'a>,
    s: &Scope<'a>,
) -> Result<(usize, usize), ExprError> {
    if v.kind() != Kind::Array {
        return Err(ExprError::fallback());
    }
    let len = super::builtins::array_len(v) as i64;
    let bound = |b: Option<&'a Op>, default: i64| -> Result<usize, ExprError> {
        let i = match b {
            None => default,
            Some(op) => match op.eval1(input, s)? {
                V::Num(n) => n.parse::<i64>().map_err(|_| ExprError::fallback())?,
                _ => return Err(ExprError::fallback()),
            },
        };
        let i = if i < 0 { len + i } else { i };
        Ok(i.clamp(0, len) as usize)
    };
    let (start, end) = (bound(from, 0)?, bound(to, len)?);
    Ok((start, end.max(start)))
}

/// Apply path steps to `v`; dynamic indices are evaluated on `input`.
/// An optional step (`?`) swallows its own failure, not those of later steps.
fn path<'a>(
    v: &V<'a>,
    steps: &'a [(Step, bool)],
    input: &V<'a>,
    s: &Scope<'a>,
    out: Sink<'_, 'a>,
) -> Result<(), ExprError> {
    let Some(((step, optional), rest)) = steps.split_first() else {
        return out(v.clone());
    };
    let fail = |e: ExprError| -> Result<(), ExprError> {
        if *optional && !e.is(ErrKind::Fallback) {
            Ok(())
        } else {
            Err(e)
        }
    };
    match step {
        Step::Key(k) => match v.key(k) {
            Ok(n) => path(&n, rest, input, s, out),
            Err(e) => fail(e),
        },
        Step::Index(i) => match v.index(*i) {
            Ok(n) => path(&n, rest, input, s, out),
            Err(e) => fail(e),
        },
        Step::Iter => match v.kind() {
            Kind::Array | Kind::Object => v.each(&mut |n| path(&n, rest, input, s, out)),
            _ => fail(
                v.each(&mut |_| Ok(()))
                    .err()
                    .unwrap_or_else(ExprError::fallback),
            ),
        },
        Step::IterSlice(from, to) => {
            let (start, end) = match slice_bounds(v, from.as_ref(), to.as_ref(), input, s) {
                Ok(b) => b,
                Err(e) => return fail(e),
            };
            let mut i = 0usize;
            v.each(&mut |n| {
                let at = i;
                i += 1;
                if (start..end).contains(&at) {
                    path(&n, rest, input, s, out)
                } else {
                    Ok(())
                }
            })
        }
        Step::Dyn(op) => op.run(input, s, &mut |k| {
            let n = match &k {
                V::Str(key) => v.key(key),
                V::Num(n) => match n.parse::<i64>() {
                    Ok(i) => v.index(i),
                    Err(_) => Err(ExprError::fallback()),
                },
                _ => Err(ExprError::fallback()),
            };
            match n {
                Ok(n) => path(&n, rest, input, s, out),
                Err(e) => fail(e),
            }
        }),
    }
}
