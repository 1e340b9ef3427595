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
mod tests;
