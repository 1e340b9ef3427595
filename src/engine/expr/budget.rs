//! The evaluation budget: what one frame's mapping may spend, on the fast
//! path and in the jq interpreter alike.
//!
//! The load-time guard ([`super::guard`]) refuses expressions that can loop
//! without end, but a bounded expression can still be enormous
//! (`[range(100000) as $a | range(100000) as $b | $a]` is 10¹⁰ steps, and
//! `reduce range(40) as $i ("x"; . + .)` a terabyte string). So every
//! evaluation counts what it does against the frame's budget:
//!
//! - **steps**: iterating an element, an arithmetic or comparison operation,
//!   an output;
//! - **bytes**: every string built (concatenation, repetition, `tostring`);
//! - **elements**: every array element and object member built;
//! - **string size**: no single string may exceed the limit.
//!
//! When a limit is passed the evaluation fails with a budget error, the
//! frame fails (counted as a mapping failure) and the next frame maps with
//! a fresh budget. A hostile mapping costs one frame, never the process.
//!
//! The budget lives in a thread-local: mappings run synchronously on the
//! connection's thread, never across an `.await`, and reading a
//! thread-local costs about a nanosecond.

use std::cell::Cell;

/// What the budget allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Evaluation steps.
    pub steps: u64,
    /// Bytes of strings built.
    pub bytes: u64,
    /// Array elements and object members built.
    pub elements: u64,
    /// Largest single string, in bytes.
    pub max_string: u64,
}

impl Limits {
    /// The budget for one frame of `frame_bytes`: a floor every frame gets,
    /// growing with the frame (a 5 MB frame of 100,000 trades legitimately
    /// does 100,000 times the work of a frame with one).
    pub fn for_frame(frame_bytes: usize) -> Limits {
        let n = frame_bytes as u64;
        Limits {
            steps: 1_000_000 + 64 * n,
            bytes: (4 << 20) + 4 * n,
            elements: 200_000 + n / 2,
            max_string: (1 << 20) + 2 * n,
        }
    }
}

/// Which limit an evaluation passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// Too many steps.
    Steps,
    /// Too many bytes of strings built.
    Bytes,
    /// Too many array elements or object members built.
    Elements,
    /// A string above the size limit.
    StringSize,
}

impl Exceeded {
    /// The error message.
    pub fn message(self) -> &'static str {
        match self {
            Exceeded::Steps => {
                "evaluation budget exceeded: too many steps for one frame (a runaway generator?)"
            }
            Exceeded::Bytes => {
                "evaluation budget exceeded: too many bytes of strings built for one frame"
            }
            Exceeded::Elements => {
                "evaluation budget exceeded: too many array elements or object members built for one frame"
            }
            Exceeded::StringSize => "evaluation budget exceeded: a string above the size limit",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// Whether a budget is in force (a frame, or one evaluation).
    active: bool,
    steps: u64,
    bytes: u64,
    elements: u64,
    max_string: u64,
    exceeded: Option<Exceeded>,
}

impl State {
    const IDLE: State = State {
        active: false,
        steps: 0,
        bytes: 0,
        elements: 0,
        max_string: 0,
        exceeded: None,
    };

    fn new(l: Limits) -> State {
        State {
            active: true,
            steps: l.steps,
            bytes: l.bytes,
            elements: l.elements,
            max_string: l.max_string,
            exceeded: None,
        }
    }
}

thread_local! {
    static STATE: Cell<State> = const { Cell::new(State::IDLE) };
}

/// The budget in force until it is dropped.
#[must_use = "the budget ends when the guard is dropped"]
#[derive(Debug)]
pub struct Guard {
    /// Whether this guard started the budget (an inner one leaves it).
    owner: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.owner {
            STATE.with(|s| s.set(State::IDLE));
        }
    }
}

/// Start a frame's budget (replacing any in force).
pub fn frame(limits: Limits) -> Guard {
    STATE.with(|s| s.set(State::new(limits)));
    Guard { owner: true }
}

/// Make sure a budget is in force: the frame's when one is, else a budget
/// for this evaluation alone (templates, symbol rules, tests).
pub fn enter() -> Guard {
    let active = STATE.with(|s| s.get().active);
    if active {
        Guard { owner: false }
    } else {
        frame(Limits::for_frame(0))
    }
}

fn spend(f: impl FnOnce(&mut State) -> Option<Exceeded>) -> Result<(), Exceeded> {
    STATE.with(|s| {
        let mut st = s.get();
        if !st.active {
            return Ok(());
        }
        if let Some(e) = st.exceeded {
            return Err(e);
        }
        let r = f(&mut st);
        st.exceeded = r;
        s.set(st);
        r.map_or(Ok(()), Err)
    })
}

/// Spend `n` steps.
#[inline]
pub fn steps(n: u64) -> Result<(), Exceeded> {
    spend(|s| match s.steps.checked_sub(n) {
        Some(left) => {
            s.steps = left;
            None
        }
        None => Some(Exceeded::Steps),
    })
}

/// Spend one step.
#[inline]
pub fn step() -> Result<(), Exceeded> {
    steps(1)
}

/// Build a string of `len` bytes.
pub fn string(len: usize) -> Result<(), Exceeded> {
    let len = len as u64;
    spend(|s| {
        if len > s.max_string {
            return Some(Exceeded::StringSize);
        }
        match s.bytes.checked_sub(len) {
            Some(left) => {
                s.bytes = left;
                None
            }
            None => Some(Exceeded::Bytes),
        }
    })
}

/// Build `n` array elements or object members.
pub fn elements(n: usize) -> Result<(), Exceeded> {
    let n = n as u64;
    spend(|s| match s.elements.checked_sub(n) {
        Some(left) => {
            s.elements = left;
            None
        }
        None => Some(Exceeded::Elements),
    })
}

/// Whether the budget in force was exceeded (the evaluation must fail even
/// if the expression caught the error).
pub fn exceeded() -> Option<Exceeded> {
    STATE.with(|s| s.get().exceeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_budget_runs_out_and_stays_out() {
        let _g = frame(Limits {
            steps: 10,
            bytes: 100,
            elements: 5,
            max_string: 50,
        });
        assert!(steps(10).is_ok());
        assert_eq!(step(), Err(Exceeded::Steps));
        // Once exceeded, everything fails until the next frame.
        assert_eq!(elements(1), Err(Exceeded::Steps));
        assert_eq!(exceeded(), Some(Exceeded::Steps));
        let _g = frame(Limits::for_frame(0));
        assert_eq!(exceeded(), None);
        assert!(step().is_ok());
    }

    #[test]
    fn strings_are_limited_in_size_and_in_total() {
        let _g = frame(Limits {
            steps: 10,
            bytes: 100,
            elements: 5,
            max_string: 60,
        });
        assert_eq!(string(61), Err(Exceeded::StringSize));
        let _g = frame(Limits {
            steps: 10,
            bytes: 100,
            elements: 5,
            max_string: 60,
        });
        assert!(string(60).is_ok());
        assert_eq!(string(60), Err(Exceeded::Bytes));
    }

    #[test]
    fn an_inner_guard_keeps_the_frame_budget() {
        let _g = frame(Limits {
            steps: 3,
            bytes: 1,
            elements: 1,
            max_string: 1,
        });
        {
            let _inner = enter();
            assert!(steps(3).is_ok());
        }
        assert_eq!(step(), Err(Exceeded::Steps), "the same budget");
        drop(_g);
        let _solo = enter();
        assert!(steps(1000).is_ok(), "a fresh budget of its own");
    }
}
