//! Which evaluator ran: counts of evaluations per path, and a switch that
//! sends every evaluation to the interpreter.
//!
//! Each [`super::Expr`] evaluation is counted once, by how it ended:
//! - **fast**: the native fast path gave the answer (a value or an error);
//! - **fallback**: the fast path met a case it does not handle at run time
//!   and the jq interpreter gave the answer (these cost the interpreter's
//!   price on an expression the venue author expected to be fast);
//! - **interpreted**: the expression has no fast form (or the fast path is
//!   switched off), so the interpreter ran from the start.
//!
//! Like the evaluation budget, the counts and the switch live in a
//! thread-local: evaluations run synchronously on the connection's thread,
//! and bumping a thread-local cell costs about a nanosecond. The mapper
//! reads the counts before and after each frame and keeps the difference,
//! so a connection can report its own fallbacks
//! (`mdrelay_interpreter_fallbacks_total`).

use std::cell::Cell;

/// Evaluations counted by how they ended (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalStats {
    /// Answered by the fast path.
    pub fast: u64,
    /// Started on the fast path, answered by the interpreter.
    pub fallbacks: u64,
    /// Run in the interpreter from the start.
    pub interpreted: u64,
}

impl EvalStats {
    /// All evaluations.
    pub fn total(&self) -> u64 {
        self.fast + self.fallbacks + self.interpreted
    }

    /// `self - earlier`, field by field (counts only grow).
    pub fn since(&self, earlier: &EvalStats) -> EvalStats {
        EvalStats {
            fast: self.fast.wrapping_sub(earlier.fast),
            fallbacks: self.fallbacks.wrapping_sub(earlier.fallbacks),
            interpreted: self.interpreted.wrapping_sub(earlier.interpreted),
        }
    }

    /// Add `other` field by field.
    pub fn add(&mut self, other: &EvalStats) {
        self.fast += other.fast;
        self.fallbacks += other.fallbacks;
        self.interpreted += other.interpreted;
    }
}

thread_local! {
    static STATS: Cell<EvalStats> = const { Cell::new(EvalStats { fast: 0, fallbacks: 0, interpreted: 0 }) };
    static FAST_PATH: Cell<bool> = const { Cell::new(true) };
}

/// How one evaluation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    Fast,
    Fallback,
    Interpreted,
}

/// Count one evaluation.
#[inline]
pub(super) fn count(how: Ended) {
    STATS.with(|s| {
        let mut st = s.get();
        match how {
            Ended::Fast => st.fast += 1,
            Ended::Fallback => st.fallbacks += 1,
            Ended::Interpreted => st.interpreted += 1,
        }
        s.set(st);
    });
}

/// The running totals of this thread (they only grow: compare two readings
/// with [`EvalStats::since`]).
pub fn eval_stats() -> EvalStats {
    STATS.with(Cell::get)
}

/// Whether the fast path may run on this thread now.
#[inline]
pub(super) fn fast_path_on() -> bool {
    FAST_PATH.with(Cell::get)
}

/// While the returned guard lives, every evaluation on this thread runs in
/// the jq interpreter, as if no expression had a fast form. For tests and
/// tools that compare both evaluators (the relay never turns it on).
#[must_use = "the interpreter-only mode ends when the guard is dropped"]
pub fn interpreter_only() -> InterpreterOnly {
    let previous = FAST_PATH.with(|f| f.replace(false));
    InterpreterOnly { previous }
}

/// The guard of [`interpreter_only`]: restores the previous mode on drop.
#[derive(Debug)]
pub struct InterpreterOnly {
    previous: bool,
}

impl Drop for InterpreterOnly {
    fn drop(&mut self) {
        FAST_PATH.with(|f| f.set(self.previous));
    }
}
