//! The native fast path: a small tree of operations compiled from jq's syntax
//! tree, evaluated directly on [`V`](super::V) values with jq's semantics.
//!
//! Every operation is a generator (zero or more outputs, delivered to a
//! callback) exactly as in jq, so `select`, `.[]` and `,` compose the same
//! way. Cases whose jq semantics the fast path does not reproduce (array
//! arithmetic, comparing objects, ...) return a *fallback* signal at run
//! time and the expression is rerun in jaq.

mod builtins;
mod compile;
mod eval;
mod single;

pub(crate) use compile::compile;

/// A compiled fast-path operation.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// `.`
    Id,
    /// A literal (`1`, `"a"`, `true`, `null`).
    Lit(Lit),
    /// `$name`: index into [`super::VARS`].
    Var(usize),
    /// `base` followed by path steps; the bool marks an optional step (`?`).
    Path(Box<Op>, Vec<(Step, bool)>),
    /// `l | r`
    Pipe(Box<Op>, Box<Op>),
    /// `l, r`
    Comma(Box<Op>, Box<Op>),
    /// `l // r`
    Alt(Box<Op>, Box<Op>),
    /// `l and r`
    And(Box<Op>, Box<Op>),
    /// `l or r`
    Or(Box<Op>, Box<Op>),
    /// `l <op> r` for a comparison.
    Cmp(Box<Op>, jaq_core::ops::Cmp, Box<Op>),
    /// `l <op> r` for arithmetic (decimal, exact).
    Math(Box<Op>, jaq_core::ops::Math, Box<Op>),
    /// `-x`
    Neg(Box<Op>),
    /// `if c then t elif ... else e end`
    If(Vec<(Op, Op)>, Option<Box<Op>>),
    /// A string with interpolations.
    Interp(Vec<Part>),
    /// `try f` / `f?`: stop silently at the first error of `f`.
    Try(Box<Op>),
    /// A built-in filter with its arguments.
    Call(Builtin, Vec<Op>),
}

/// A literal value (kept `Send + Sync`, unlike [`V`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lit {
    Null,
    Bool(bool),
    Num(Box<str>),
    Str(Box<str>),
    /// `[]`, as in `(.bids // [])[]`.
    EmptyArr,
    /// `{}`, as in `.a // {}`.
    EmptyObj,
}

/// One step of a path.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// `.key`
    Key(Box<str>),
    /// `.[n]`
    Index(i64),
    /// `.[f]` with `f` evaluated on the path's input.
    Dyn(Op),
    /// `.[]`
    Iter,
    /// `.[from:to][]`: the elements of an array slice, without building it.
    /// The bounds are single-valued and evaluated on the path's input.
    IterSlice(Option<Op>, Option<Op>),
}

/// A piece of an interpolated string.
#[derive(Clone, Debug)]
pub(crate) enum Part {
    /// Literal text.
    Text(String),
    /// `\(f)`
    Op(Op),
}

/// The built-ins the fast path implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Builtin {
    Empty,
    Not,
    Length,
    ToString,
    ToJson,
    ToNumber,
    AsciiDowncase,
    AsciiUpcase,
    Type,
    Abs,
    Select,
    Has,
    StartsWith,
    EndsWith,
    LtrimStr,
    RtrimStr,
    Contains,
    Split,
    First,
}
