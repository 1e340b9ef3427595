//! Mapping expressions: jq text compiled twice, once into the native fast
//! path where the expression fits its subset, always into `jaq`.
//!
//! Users write jq. When a venue file loads, each expression is parsed with
//! jaq's parser; if every construct in it belongs to the fast subset (paths,
//! literals, comparisons, `and`/`or`/`not`, `if`, `//`, `select`, string
//! interpolation, a few string and number built-ins, decimal arithmetic) it is
//! compiled into an [`fast::Op`] tree that runs directly on the parsed frame,
//! borrowing from it. Everything else runs in the jaq interpreter. Both forms
//! must give the same result, numbers included (both compute with exact
//! decimals, see `jq::num`): the unit tests below run both on the same
//! expressions, and `tests/it/fast_path_agreement.rs` runs every shipped
//! venue's [`crate::engine::mapper::Mapper`] twice (once with the fast path
//! switched off, [`interpreter_only`]) over recorded, generated and damaged
//! frames. [`eval_stats`] counts which path answered each evaluation.

pub mod budget;
mod fast;
mod guard;
mod jq;
mod stats;
mod value;

use std::borrow::Cow;
use std::cell::OnceCell;

use jq::JVal;
use stats::Ended;

pub use jq::JqCompileError;
pub use stats::{EvalStats, InterpreterOnly, eval_stats, interpreter_only};
pub use value::{V, parse_decimal};

/// The variables every expression may use. Each is `null` where it does not
/// apply (for example `$request_id` outside subscribe templates).
pub const VARS: [&str; 10] = [
    "$frame",
    "$ctx",
    "$market",
    "$venue",
    "$instrument",
    "$request_id",
    "$counter",
    "$now_ms",
    "$connect_id",
    "$memo",
];

/// Index of a variable in [`VARS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Var {
    /// The whole frame (`$frame`), for expressions whose input is an item.
    Frame = 0,
    /// The per-connection context entry selected by the frame (`$ctx`).
    Ctx = 1,
    /// The market of the connection (`$market`).
    Market = 2,
    /// The venue id (`$venue`).
    Venue = 3,
    /// The instrument (`$instrument`) in symbol rules and templates.
    Instrument = 4,
    /// A per-connection request counter (`$request_id`) in templates.
    RequestId = 5,
    /// The heartbeat counter (`$counter`).
    Counter = 6,
    /// Wall-clock milliseconds (`$now_ms`), injected in templates only.
    NowMs = 7,
    /// A random connection id (`$connect_id`) in URL templates.
    ConnectId = 8,
    /// The value remembered for a book level row (`$memo`, see
    /// `[routes.level_memory]`), in level expressions.
    Memo = 9,
}

/// Upper bound on the outputs of one expression on one input: keeps a
/// runaway generator from flooding the relay.
pub const MAX_OUTPUTS: usize = 100_000;

/// Why an expression failed on an input. Small (16 bytes) and allocation
/// free except for real errors, since it travels through every evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError(Repr);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    /// A jq runtime error.
    Error(Box<str>),
    /// The fast path met a case it does not handle: rerun in jaq.
    Fallback,
    /// The consumer wants no more outputs (not an error).
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrKind {
    Error,
    Fallback,
    Stop,
}

impl ExprError {
    /// A runtime error with a message (cut to a few hundred bytes: it may
    /// quote a value of the frame).
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        let message = message.into();
        let short = crate::domain::text::clip(&message).into_owned();
        ExprError(Repr::Error(short.into_boxed_str()))
    }

    pub(crate) fn fallback() -> Self {
        ExprError(Repr::Fallback)
    }

    pub(crate) fn stop() -> Self {
        ExprError(Repr::Stop)
    }

    fn is(&self, kind: ErrKind) -> bool {
        let k = match self.0 {
            Repr::Error(_) => ErrKind::Error,
            Repr::Fallback => ErrKind::Fallback,
            Repr::Stop => ErrKind::Stop,
        };
        k == kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        match &self.0 {
            Repr::Error(m) => m,
            Repr::Fallback => "fallback",
            Repr::Stop => "stop",
        }
    }
}

impl std::fmt::Display for ExprError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ExprError {}

/// The variable values for one evaluation.
#[derive(Clone)]
pub struct Scope<'a> {
    vars: [V<'a>; VARS.len()],
    jq: OnceCell<Vec<JVal>>,
}

impl<'a> Scope<'a> {
    /// A scope with every variable `null`.
    pub fn new() -> Self {
        Scope {
            vars: std::array::from_fn(|_| V::Null),
            jq: OnceCell::new(),
        }
    }

    /// Set a variable.
    pub fn set(&mut self, var: Var, value: V<'a>) -> &mut Self {
        // Variables already converted for the interpreter stay converted:
        // only the one set is converted again (a level scope that sets
        // `$memo` must not convert `$frame` once per level).
        if let Some(converted) = self.jq.get_mut() {
            converted[var as usize] = jq::v_to_val(&value);
        }
        self.vars[var as usize] = value;
        self
    }

    /// Read a variable.
    pub fn get(&self, var: Var) -> &V<'a> {
        &self.vars[var as usize]
    }

    /// The variables as jaq values, converted once per scope.
    fn jq_vars(&self) -> &[JVal] {
        self.jq
            .get_or_init(|| self.vars.iter().map(jq::v_to_val).collect())
    }
}

impl Default for Scope<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// A compiled expression.
#[derive(Clone)]
pub struct Expr {
    src: String,
    fast: Option<fast::Op>,
    /// The fast form always yields exactly one value: use `eval1`.
    single: bool,
    jq: jq::JqFilter,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expr")
            .field("src", &self.src)
            .field("fast", &self.fast.is_some())
            .finish()
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.src == other.src
    }
}

impl Expr {
    /// Compile an expression. Errors carry byte offsets into `src`.
    pub fn compile(src: &str) -> Result<Expr, Vec<JqCompileError>> {
        let jq = jq::compile(src)?;
        guard::check(src)?;
        let fast = fast::compile(src);
        let single = fast.as_ref().is_some_and(fast::Op::is_single);
        Ok(Expr {
            src: src.to_owned(),
            fast,
            single,
            jq,
        })
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.src
    }

    /// Whether the expression runs on the native fast path.
    pub fn is_fast(&self) -> bool {
        self.fast.is_some()
    }

    /// Run on `input`, calling `out` for each output. `out` may return
    /// [`ExprError`]s of its own; they are passed through.
    pub fn run<'a>(
        &'a self,
        input: &V<'a>,
        scope: &Scope<'a>,
        out: &mut dyn FnMut(V<'a>) -> Result<(), ExprError>,
    ) -> Result<(), ExprError> {
        let _budget = budget::enter();
        let Some(op) = self.fast_form() else {
            stats::count(Ended::Interpreted);
            return self.run_jq(input, scope, out);
        };
        if self.single {
            return match op.eval1(input, scope) {
                Ok(v) => {
                    stats::count(Ended::Fast);
                    out(v)
                }
                // A case the fast path does not handle, or an error: the
                // interpreter answers (an error's wording is the
                // interpreter's, so both paths fail with the same text).
                Err(_) => {
                    stats::count(Ended::Fallback);
                    self.run_jq(input, scope, out)
                }
            };
        }
        let mut emitted = 0usize;
        let mut from_out = false;
        let result = op.run(input, scope, &mut |v| {
            emitted += 1;
            from_out = true;
            if emitted > MAX_OUTPUTS {
                return Err(ExprError::new(format!("more than {MAX_OUTPUTS} outputs")));
            }
            budget::step().map_err(|e| ExprError::new(e.message()))?;
            out(v)?;
            from_out = false;
            Ok(())
        });
        match result {
            // The consumer's own errors (and the output limits) pass through.
            Err(_) if !from_out => {
                // Rerun in the interpreter, skipping what was already emitted.
                stats::count(Ended::Fallback);
                let mut skip = emitted;
                self.run_jq(input, scope, &mut |v| {
                    if skip > 0 {
                        skip -= 1;
                        Ok(())
                    } else {
                        out(v)
                    }
                })
            }
            other => {
                stats::count(Ended::Fast);
                other
            }
        }
    }

    /// The fast form, unless there is none or the fast path is switched off
    /// on this thread ([`interpreter_only`]).
    #[inline]
    fn fast_form(&self) -> Option<&fast::Op> {
        self.fast.as_ref().filter(|_| stats::fast_path_on())
    }

    /// Run in the jq interpreter only (for tests comparing both forms).
    pub fn run_jq<'a>(
        &'a self,
        input: &V<'a>,
        scope: &Scope<'a>,
        out: &mut dyn FnMut(V<'a>) -> Result<(), ExprError>,
    ) -> Result<(), ExprError> {
        jq::run(&self.jq, input, scope, MAX_OUTPUTS, out)
    }

    /// The first output, or `None` when there is none.
    pub fn first<'a>(
        &'a self,
        input: &V<'a>,
        scope: &Scope<'a>,
    ) -> Result<Option<V<'a>>, ExprError> {
        let mut jq_only = false;
        if self.single
            && let Some(op) = self.fast_form()
        {
            match op.eval1(input, scope) {
                Ok(v) => {
                    stats::count(Ended::Fast);
                    return Ok(Some(v));
                }
                // As in `run`: the interpreter answers, errors included.
                Err(_) => {
                    stats::count(Ended::Fallback);
                    jq_only = true;
                }
            }
        }
        let mut first = None;
        let mut keep = |v| {
            first = Some(v);
            Err(ExprError::stop())
        };
        let r = if jq_only {
            let _budget = budget::enter();
            self.run_jq(input, scope, &mut keep)
        } else {
            self.run(input, scope, &mut keep)
        };
        match r {
            Ok(()) => Ok(first),
            Err(e) if e.is(ErrKind::Stop) => Ok(first),
            Err(e) => Err(e),
        }
    }

    /// Whether the first output is truthy. An error or no output is `false`
    /// (conditions on frames of another shape simply do not match).
    pub fn test<'a>(&'a self, input: &V<'a>, scope: &Scope<'a>) -> bool {
        // An error is `false` whatever its wording: no need to ask the
        // interpreter for it.
        if self.single
            && let Some(op) = self.fast_form()
        {
            match op.eval1(input, scope) {
                Ok(v) => {
                    stats::count(Ended::Fast);
                    return v.truthy();
                }
                Err(e) if !e.is(ErrKind::Fallback) => {
                    stats::count(Ended::Fast);
                    return false;
                }
                Err(_) => {}
            }
        }
        matches!(self.first(input, scope), Ok(Some(v)) if v.truthy())
    }

    /// Collect all outputs (convenience for rare paths and tests).
    pub fn collect<'a>(
        &'a self,
        input: &V<'a>,
        scope: &Scope<'a>,
    ) -> Result<Vec<V<'a>>, ExprError> {
        let mut all = Vec::new();
        self.run(input, scope, &mut |v| {
            all.push(v);
            Ok(())
        })?;
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::json::Parser;

    fn outputs(expr: &Expr, input: &str, jq_only: bool) -> Result<Vec<String>, String> {
        let mut p = Parser::new();
        let doc = p.parse(input).unwrap();
        let frame = V::from_doc(doc);
        let mut scope = Scope::new();
        scope.set(Var::Frame, frame.clone());
        scope.set(Var::Market, V::Str("spot".into()));
        let mut out = Vec::new();
        let mut sink = |v: V<'_>| {
            out.push(normalize(&v));
            Ok(())
        };
        let r = if jq_only {
            expr.run_jq(&frame, &scope, &mut sink)
        } else {
            expr.run(&frame, &scope, &mut sink)
        };
        r.map(|()| out).map_err(|e| e.to_string())
    }

    /// Compare numbers by value, the rest by JSON text.
    fn normalize(v: &V<'_>) -> String {
        match v {
            V::Num(n) => {
                parse_decimal(n).map_or_else(|| n.to_string(), |d| d.normalize().to_string())
            }
            other => other.to_json(),
        }
    }

    #[test]
    fn fast_and_jq_agree() {
        let frame = r#"{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"BTCUSDT","p":"0.35280000","q":"58","m":true,"T":1633998523963,"b":[["1","2"],["3","0"]],"n":null,"x":-1.5},"arr":[1,2,3],"k":"a\"b"}"#;
        let cases = [
            ".data.p",
            ".data.m",
            "if .data.m then \"sell\" else \"buy\" end",
            ".data.b[] | select(.[1] != \"0\") | .[0]",
            ".data.e == \"aggTrade\" and (.stream | endswith(\"@aggTrade\"))",
            ".data.missing // .data.s",
            ".data.n // \"dflt\"",
            "\"\\(.data.s)-\\(.data.T)\"",
            ".data.s | ascii_downcase",
            ".data.x | abs",
            "-.data.x",
            ".data.T > 1000",
            ".arr[-1]",
            ".arr[]",
            ".arr | length",
            ".k | length",
            ".data | has(\"e\")",
            ".data | has(\"zz\")",
            ".data.p | tonumber",
            ".data.T | tostring",
            ".data.e | ltrimstr(\"agg\")",
            ".data.e | rtrimstr(\"Trade\")",
            "$frame.data.s",
            "$market",
            ".stream | startswith(\"btc\")",
            ".data.p? // 0",
            ".arr[.arr[0]]",
            "first(.arr[])",
            ".data.q * 2",
            "(.arr[] | select(. > 1)), \"x\"",
            ".data | type",
            "[.arr[] | . * 2]",
            ".data.b | map(.[0])",
            ".nope.deeper",
            "try error(\"x\")",
            ".data.s as $s | $s",
            ".stream | contains(\"@agg\")",
            ".arr | contains([1])",
            ".stream | split(\"@\")",
            ".stream | split(\"@\") | .[0] | ascii_upcase",
            ".stream | split(\"@\") | .[5]",
            ".stream | split(\"btc\") | length",
            ".stream | split(\"\")",
            ".data.s | split(\".\") | .[-1]",
            ".data.T | split(\".\")",
            "(.nope // [])[]",
            ".arr[1:][]",
            ".arr[:-1][]",
            ".arr[-2:][]",
            ".arr[1:length - 2][]",
            ".arr[5:9][]",
            ".arr[2:1][]",
            ".arr[-9:1][]",
            ".data.b[0:1][] | .[0]",
            "[.arr[1:2][]]",
            ".arr[.arr[0]:][]",
            ".data.s[1:][]",
            ".arr[0.5:][]",
            "(.arr // [])[]",
            ".nope // {}",
            "({} | length), ([] | length)",
            "[] == [], {} == {}",
            ".nope // [] | type",
        ];
        for src in cases {
            let e = Expr::compile(src).unwrap_or_else(|err| panic!("{src}: {err:?}"));
            let fast = outputs(&e, frame, false);
            let jq = outputs(&e, frame, true);
            assert_eq!(fast, jq, "expression `{src}` (fast path: {})", e.is_fast());
        }
    }

    /// Outputs as exact JSON text (no normalisation), or the error.
    fn exact(expr: &Expr, input: &str, jq_only: bool) -> Result<Vec<String>, String> {
        let mut p = Parser::new();
        let frame = V::from_doc(p.parse(input).unwrap());
        let scope = Scope::new();
        let mut out = Vec::new();
        let mut sink = |v: V<'_>| {
            out.push(v.to_json());
            Ok(())
        };
        let r = if jq_only {
            expr.run_jq(&frame, &scope, &mut sink)
        } else {
            expr.run(&frame, &scope, &mut sink)
        };
        r.map(|()| out).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_agree_exactly_on_both_paths() {
        let frame = r#"{"a":1,"p":"0.1","q":"0.2","x":0.1,"y":0.2,"px":"30236.123456789","sz":"0.000123456789012",
            "big":12345678901234567890,"huge":123456789012345678901234567890123,"e":1e-8,"f":"1.50",
            "s53":9007199254740993,"ms":"1652459224818","neg":"-0.00000001","sci":"2E+3","t":1652459224818.5}"#;
        let cases = [
            ("0.1 + 0.2", Some("0.3")),
            (".x + .y", Some("0.3")),
            ("(.p | tonumber) + (.q | tonumber)", Some("0.3")),
            (".a / 3", Some("0.3333333333333333333333333333")),
            ("2 / 3", Some("0.6666666666666666666666666667")),
            (
                "(.px | tonumber) * (.sz | tonumber)",
                Some("3.732854714145583672002468"),
            ),
            (".x * .y", Some("0.02")),
            ("(.ms | tonumber) / 1000", Some("1652459224.818")),
            (".t * 1000", Some("1652459224818500.0")),
            (".big + 1", Some("12345678901234567891")),
            (".big * 1000", Some("12345678901234567890000")),
            (".s53 + 0", Some("9007199254740993")),
            (".s53", Some("9007199254740993")),
            (".f | tonumber", None),
            (".ms | tonumber", Some("1652459224818")),
            (".neg | tonumber", None),
            (".sci | tonumber", None),
            (".e * 3", None),
            (".huge", None),
            (".huge + 1", None),
            (".big > 12345678901234567889", Some("true")),
            ("(.f | tonumber) == 1.5", Some("true")),
            (".x - .y", Some("-0.1")),
            ("-(.px | tonumber)", None),
            (".a / 0", None),
        ];
        for (src, want) in cases {
            let e = Expr::compile(src).unwrap_or_else(|err| panic!("{src}: {err:?}"));
            let fast = exact(&e, frame, false);
            let jq = exact(&e, frame, true);
            assert_eq!(fast, jq, "`{src}` (fast form: {})", e.is_fast());
            if let Some(w) = want {
                assert_eq!(fast, Ok(vec![w.to_owned()]), "`{src}`");
            }
        }
    }

    #[test]
    fn evaluations_are_counted_by_the_path_that_answered() {
        let frame = r#"{"a":"1.5","huge":123456789012345678901234567890123,"o":{"k":1}}"#;
        let count = |src: &str, jq_only: bool| {
            let e = Expr::compile(src).unwrap();
            let before = eval_stats();
            let _mode = jq_only.then(interpreter_only);
            let _ = exact(&e, frame, false);
            eval_stats().since(&before)
        };
        let s = |fast, fallbacks, interpreted| EvalStats {
            fast,
            fallbacks,
            interpreted,
        };
        assert_eq!(count(".a", false), s(1, 0, 0));
        assert_eq!(count(".huge + 1", false), s(0, 1, 0), "beyond a decimal");
        assert_eq!(
            count(".o.k.x", false),
            s(0, 1, 0),
            "errors are worded by jq"
        );
        assert_eq!(count(".o | keys", false), s(0, 0, 1), "no fast form");
        assert_eq!(count(".a", true), s(0, 0, 1), "fast path switched off");
        assert_eq!(count(".a", false), s(1, 0, 0), "and back on");
    }

    #[test]
    fn errors_agree_in_kind() {
        let frame = r#"{"a":5,"s":"x"}"#;
        for src in [".a.b", ".s[0]", ".a[]", ".s | ascii_downcase | .x"] {
            let e = Expr::compile(src).unwrap();
            assert!(e.is_fast(), "{src}");
            assert!(outputs(&e, frame, false).is_err(), "{src} fast should fail");
            assert!(outputs(&e, frame, true).is_err(), "{src} jq should fail");
        }
    }

    #[test]
    fn optional_steps_swallow_only_their_own_errors() {
        let e = Expr::compile(".a?.b").unwrap();
        assert!(outputs(&e, r#"[1]"#, false).unwrap().is_empty());
        assert!(outputs(&e, r#"{"a":5}"#, false).is_err());
        assert!(outputs(&e, r#"{"a":5}"#, true).is_err());
    }

    #[test]
    fn first_and_test() {
        let mut p = Parser::new();
        let v = V::from_doc(p.parse(r#"{"a":[1,2]}"#).unwrap());
        let s = Scope::new();
        let e = Expr::compile(".a[]").unwrap();
        assert!(matches!(e.first(&v, &s).unwrap(), Some(V::Num(n)) if n == "1"));
        assert!(Expr::compile(".a | length == 2").unwrap().test(&v, &s));
        assert!(
            !Expr::compile(".a.b == 1").unwrap().test(&v, &s),
            "errors do not match"
        );
    }
}
