//! Static limits on venue expressions: a mapping must finish on every frame.
//!
//! jq can loop forever (`repeat`, `while`, `until`, `recurse(f)`, a
//! recursive `def`) or build huge values from a tiny input
//! (`[range(1e12)]`). The interpreter cannot be interrupted mid-evaluation,
//! so such expressions are refused when the venue file loads, with the
//! reason and position. What remains is bounded by the input: a frame is at
//! most `max_frame_bytes`, every generator stops after
//! [`MAX_OUTPUTS`](super::MAX_OUTPUTS) outputs (the frame then fails and is
//! counted), and `..` walks a finite document.

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Pattern, Term};

use super::jq::JqCompileError;

/// Largest literal bound `range` accepts.
pub(super) const MAX_RANGE: f64 = 100_000.0;

/// Filters that iterate without a bound of their own.
const UNBOUNDED: [&str; 4] = ["repeat", "while", "until", "recurse"];

/// Check `src`; the errors carry byte offsets into it.
pub(crate) fn check(src: &str) -> Result<(), Vec<JqCompileError>> {
    // Expressions the parser refuses are reported by the compiler instead.
    let Some(term) = jaq_core::load::parse(src, |p| p.term()) else {
        return Ok(());
    };
    let mut g = Guard {
        src,
        defining: Vec::new(),
        errors: Vec::new(),
    };
    g.term(&term);
    if g.errors.is_empty() {
        Ok(())
    } else {
        Err(g.errors)
    }
}

struct Guard<'s> {
    src: &'s str,
    defining: Vec<&'s str>,
    errors: Vec<JqCompileError>,
}

impl<'s> Guard<'s> {
    fn fail(&mut self, at: &'s str, message: String) {
        let base = self.src.as_ptr() as usize;
        let p = at.as_ptr() as usize;
        let offset = if p >= base && p <= base + self.src.len() {
            p - base
        } else {
            0
        };
        self.errors.push(JqCompileError { offset, message });
    }

    fn def(&mut self, d: &jaq_core::load::parse::Def<&'s str, Term<&'s str>>) {
        self.defining.push(d.name);
        self.term(&d.body);
        self.defining.pop();
    }

    fn term(&mut self, t: &Term<&'s str>) {
        match t {
            Term::Id | Term::Recurse | Term::Num(_) | Term::Var(_) | Term::Break(_) => {}
            Term::Str(_, parts) => {
                for p in parts {
                    if let StrPart::Term(t) = p {
                        self.term(t);
                    }
                }
            }
            Term::Arr(x) => {
                if let Some(x) = x {
                    self.term(x);
                }
            }
            Term::Obj(kvs) => {
                for (k, v) in kvs {
                    self.term(k);
                    if let Some(v) = v {
                        self.term(v);
                    }
                }
            }
            Term::Neg(x) | Term::Label(_, x) => self.term(x),
            Term::BinOp(l, op, r) => {
                self.term(l);
                if let BinaryOp::Pipe(Some(p)) = op {
                    self.pattern(p);
                }
                self.term(r);
            }
            Term::Fold(_, x, p, args) => {
                self.term(x);
                self.pattern(p);
                for a in args {
                    self.term(a);
                }
            }
            Term::TryCatch(x, c) => {
                self.term(x);
                if let Some(c) = c {
                    self.term(c);
                }
            }
            Term::IfThenElse(branches, otherwise) => {
                for (c, b) in branches {
                    self.term(c);
                    self.term(b);
                }
                if let Some(o) = otherwise {
                    self.term(o);
                }
            }
            Term::Def(defs, body) => {
                for d in defs {
                    self.def(d);
                }
                self.term(body);
            }
            Term::Call(name, args) => {
                self.call(name, args);
                for a in args {
                    self.term(a);
                }
            }
            Term::Path(base, path) => {
                self.term(base);
                for (part, _) in &path.0 {
                    match part {
                        jaq_core::path::Part::Index(i) => self.term(i),
                        jaq_core::path::Part::Range(a, b) => {
                            for x in [a, b].into_iter().flatten() {
                                self.term(x);
                            }
                        }
                    }
                }
            }
        }
    }

    fn pattern(&mut self, p: &Pattern<&'s str>) {
        match p {
            Pattern::Var(_) => {}
            Pattern::Arr(ps) => ps.iter().for_each(|p| self.pattern(p)),
            Pattern::Obj(kvs) => {
                for (k, v) in kvs {
                    self.term(k);
                    self.pattern(v);
                }
            }
        }
    }

    fn call(&mut self, name: &'s str, args: &[Term<&'s str>]) {
        if self.defining.contains(&name) {
            self.fail(
                name,
                format!("`{name}` calls itself: recursive definitions are not allowed in venue mappings (a mapping must finish on every frame)"),
            );
        } else if UNBOUNDED.contains(&name) && !(name == "recurse" && args.is_empty()) {
            self.fail(
                name,
                format!("`{name}` can loop without end and is not allowed in venue mappings; use `..`, `limit` or `first`"),
            );
        } else if name == "range" {
            let bounded = args.len() <= 2
                && args.iter().all(|a| {
                    matches!(a, Term::Num(n) if n.parse::<f64>().is_ok_and(|v| v.abs() <= MAX_RANGE))
                });
            if !bounded {
                self.fail(
                    name,
                    format!("`range` takes one or two number literals up to {MAX_RANGE} in venue mappings"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbounded_expressions_are_refused_with_a_reason() {
        for (code, why) in [
            ("repeat(.)", "can loop"),
            ("last(range(1e18))", "`range` takes"),
            ("[range(0; 10; 0)]", "`range` takes"),
            ("range(.n)", "`range` takes"),
            ("def f: f; f", "calls itself"),
            ("def f(g): g | f(g); f(.)", "calls itself"),
            ("[.[] | until(false; .)]", "can loop"),
            ("recurse(. + 1)", "can loop"),
            ("while(true; .)", "can loop"),
        ] {
            let errs = check(code).expect_err(code);
            assert!(
                errs.iter().any(|e| e.message.contains(why)),
                "{code}: {errs:?}"
            );
        }
    }

    #[test]
    fn ordinary_mappings_pass() {
        for code in [
            ".data[] | select(.s == \"BTC\")",
            "def coin: if . == \"XBT\" then \"BTC\" else . end; split(\"/\") | map(coin) | join(\"/\")",
            "[..] | length",
            "range(10)",
            "first(range(5; 100))",
            "reduce .[] as $x (0; . + $x)",
            "limit(3; .[])",
        ] {
            assert!(check(code).is_ok(), "{code}");
        }
    }
}
