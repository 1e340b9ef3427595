//! jq syntax tree → fast-path operations, or `None` when the expression
//! uses anything outside the fast subset.

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Term};
use jaq_core::path::{Opt, Part as PathPart};

use super::{Builtin, Lit, Op, Part, Step};
use crate::engine::expr::VARS;

/// Parse `src` and compile it to the fast path if it fits the subset.
pub(crate) fn compile(src: &str) -> Option<Op> {
    let term = jaq_core::load::parse(src, |p| p.term())?;
    op(&term)
}

fn boxed(t: &Term<&str>) -> Option<Box<Op>> {
    op(t).map(Box::new)
}

fn op(t: &Term<&str>) -> Option<Op> {
    Some(match t {
        Term::Id => Op::Id,
        Term::Num(n) => Op::Lit(Lit::Num((*n).into())),
        Term::Str(None, parts) => string(parts)?,
        Term::Arr(None) => Op::Lit(Lit::EmptyArr),
        Term::Obj(entries) if entries.is_empty() => Op::Lit(Lit::EmptyObj),
        Term::Var(name) => Op::Var(VARS.iter().position(|v| v == name)?),
        Term::Neg(x) => Op::Neg(boxed(x)?),
        Term::TryCatch(x, None) => Op::Try(boxed(x)?),
        Term::IfThenElse(branches, otherwise) => Op::If(
            branches
                .iter()
                .map(|(c, t)| Some((op(c)?, op(t)?)))
                .collect::<Option<_>>()?,
            match otherwise {
                Some(e) => Some(boxed(e)?),
                None => None,
            },
        ),
        Term::BinOp(l, bop, r) => {
            let (l, r) = (boxed(l)?, boxed(r)?);
            match bop {
                BinaryOp::Pipe(None) => Op::Pipe(l, r),
                BinaryOp::Comma => Op::Comma(l, r),
                BinaryOp::Alt => Op::Alt(l, r),
                BinaryOp::And => Op::And(l, r),
                BinaryOp::Or => Op::Or(l, r),
                BinaryOp::Cmp(c) => Op::Cmp(l, *c, r),
                BinaryOp::Math(m) => Op::Math(l, *m, r),
                _ => return None,
            }
        }
        Term::Call(name, args) => call(name, args)?,
        Term::Path(base, path) => {
            let mut steps = Vec::with_capacity(path.0.len());
            let mut parts = path.0.iter().peekable();
            while let Some((part, opt)) = parts.next() {
                let optional = matches!(opt, Opt::Optional);
                // `.[a:b][]` (neither step optional): iterate the slice.
                if let (PathPart::Range(from, to), false) = (part, optional)
                    && (from.is_some() || to.is_some())
                    && matches!(
                        parts.peek(),
                        Some((PathPart::Range(None, None), Opt::Essential))
                    )
                {
                    parts.next();
                    let bound = |t: &Option<Term<&str>>| -> Option<Option<Op>> {
                        match t {
                            None => Some(None),
                            Some(t) => op(t).filter(Op::is_single).map(Some),
                        }
                    };
                    steps.push((Step::IterSlice(bound(from)?, bound(to)?), false));
                    continue;
                }
                steps.push((step(part)?, optional));
            }
            Op::Path(boxed(base)?, steps)
        }
        _ => return None,
    })
}

fn string(parts: &[StrPart<&str, Term<&str>>]) -> Option<Op> {
    let mut out: Vec<Part> = Vec::new();
    for p in parts {
        match p {
            StrPart::Str(s) => push_text(&mut out, s),
            StrPart::Char(c) => push_text(&mut out, c.encode_utf8(&mut [0; 4])),
            StrPart::Term(t) => out.push(Part::Op(op(t)?)),
        }
    }
    Some(match out.as_slice() {
        [] => Op::Lit(Lit::Str("".into())),
        [Part::Text(s)] => Op::Lit(Lit::Str(s.as_str().into())),
        _ => Op::Interp(out),
    })
}

fn push_text(out: &mut Vec<Part>, s: &str) {
    match out.last_mut() {
        Some(Part::Text(t)) => t.push_str(s),
        _ => out.push(Part::Text(s.to_owned())),
    }
}

fn literal_index(t: &Term<&str>) -> Option<i64> {
    match t {
        Term::Num(n) => n.parse().ok(),
        Term::Neg(x) => literal_index(x).map(|i| -i),
        _ => None,
    }
}

fn step(part: &PathPart<Term<&str>>) -> Option<Step> {
    Some(match part {
        PathPart::Range(None, None) => Step::Iter,
        PathPart::Range(..) => return None,
        PathPart::Index(Term::Str(None, parts))
            if parts.iter().all(|p| !matches!(p, StrPart::Term(_))) =>
        {
            let mut key = String::new();
            for p in parts {
                match p {
                    StrPart::Str(s) => key.push_str(s),
                    StrPart::Char(c) => key.push(*c),
                    StrPart::Term(_) => unreachable!(),
                }
            }
            Step::Key(key.into())
        }
        PathPart::Index(t) => match literal_index(t) {
            Some(i) => Step::Index(i),
            None => Step::Dyn(op(t)?),
        },
    })
}

fn call(name: &str, args: &[Term<&str>]) -> Option<Op> {
    use Builtin::*;
    let lit = |v: Lit| Some(Op::Lit(v));
    let builtin = match (name, args.len()) {
        ("true", 0) => return lit(Lit::Bool(true)),
        ("false", 0) => return lit(Lit::Bool(false)),
        ("null", 0) => return lit(Lit::Null),
        ("first", 0) => return Some(Op::Path(Box::new(Op::Id), vec![(Step::Index(0), false)])),
        ("last", 0) => return Some(Op::Path(Box::new(Op::Id), vec![(Step::Index(-1), false)])),
        ("empty", 0) => Empty,
        ("not", 0) => Not,
        ("length", 0) => Length,
        ("tostring", 0) => ToString,
        ("tojson", 0) => ToJson,
        ("tonumber", 0) => ToNumber,
        ("ascii_downcase", 0) => AsciiDowncase,
        ("ascii_upcase", 0) => AsciiUpcase,
        ("type", 0) => Type,
        ("abs", 0) => Abs,
        ("select", 1) => Select,
        ("has", 1) => Has,
        ("startswith", 1) => StartsWith,
        ("endswith", 1) => EndsWith,
        ("ltrimstr", 1) => LtrimStr,
        ("rtrimstr", 1) => RtrimStr,
        ("contains", 1) => Contains,
        ("split", 1) => Split,
        ("first", 1) => First,
        _ => return None,
    };
    let args = args.iter().map(op).collect::<Option<Vec<_>>>()?;
    Some(Op::Call(builtin, args))
}

#[cfg(test)]
mod tests {
    use super::compile;

    #[test]
    fn the_fast_subset() {
        for src in [
            ".",
            ".data.p",
            ".[0]",
            ".[-1]",
            ".data[]",
            ".b[] | select(.[1] != \"0\")",
            "if .m then \"sell\" else \"buy\" end",
            ".a // .b",
            "\"\\(.a)-\\(.b)\"",
            ".a == \"x\" and (.b | not)",
            "$frame.arg.instId",
            "$ctx.symbol",
            ".a?",
            "try .a",
            ".x | ascii_downcase",
            "-.a",
            ".a * 2",
            "has(\"e\")",
            "$frame.ch | split(\".\") | .[1]",
            "(.contents.bids // [])[]",
            ".[1:length - 2][] | .b // empty | .[]",
            ".a[2:][]",
            ".a[:-1][]",
            ".a // {}",
            "first(.a[])",
            ".[\"key with space\"]",
            "$ctx[.[0] | tostring]",
            "true",
            "null",
            "\"lit\"",
        ] {
            assert!(compile(src).is_some(), "expected fast: {src}");
        }
    }

    #[test]
    fn outside_the_subset() {
        for src in [
            "[.a]",
            "{a: .b}",
            "{a: 1}",
            "map(.a)",
            ".a as $x | $x",
            "reduce .[] as $x (0; . + $x)",
            ".[1:]",
            "def f: 1; f",
            "@json \"\\(.)\"",
            "..",
            "try .a catch 1",
            "$__loc__",
            ".a |= 1",
            "test(\"x\")",
        ] {
            assert!(compile(src).is_none(), "expected jq fallback: {src}");
        }
    }
}
