//! Log hygiene for inputs the relay does not control: at most one line per
//! cause per interval (with a count of what was left out), and offending
//! values cut to a few hundred bytes wherever they are quoted.
//!
//! A venue that sends a million bad frames then writes a handful of lines,
//! not a million, and a 5 MB value never becomes a 5 MB log line.

use std::time::{Duration, Instant};

pub use crate::domain::text::{CLIP, clip, truncate};

/// Allows one log line per cause per interval, counting the rest.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    causes: Vec<Cause>,
}

#[derive(Debug)]
struct Cause {
    name: &'static str,
    last: Instant,
    suppressed: u64,
}

impl LogLimiter {
    /// A limiter allowing one line per cause every `interval`.
    pub fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            causes: Vec::new(),
        }
    }

    /// Whether a line for `cause` may be written now: `Some(n)` with the
    /// number of lines left out since the last one, or `None` (count it).
    pub fn allow(&mut self, cause: &'static str) -> Option<u64> {
        self.allow_at(cause, Instant::now())
    }

    fn allow_at(&mut self, cause: &'static str, now: Instant) -> Option<u64> {
        // A handful of causes per owner: a linear search beats hashing.
        match self.causes.iter_mut().find(|c| c.name == cause) {
            None => {
                self.causes.push(Cause {
                    name: cause,
                    last: now,
                    suppressed: 0,
                });
                Some(0)
            }
            Some(c) if now.duration_since(c.last) >= self.interval => {
                c.last = now;
                Some(std::mem::take(&mut c.suppressed))
            }
            Some(c) => {
                c.suppressed += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_cause_per_interval_with_the_count_left_out() {
        let mut l = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.allow_at("a", t0), Some(0));
        assert_eq!(l.allow_at("b", t0), Some(0), "causes are separate");
        for _ in 0..1000 {
            assert_eq!(l.allow_at("a", t0 + Duration::from_secs(1)), None);
        }
        assert_eq!(l.allow_at("a", t0 + Duration::from_secs(10)), Some(1000));
        assert_eq!(l.allow_at("a", t0 + Duration::from_secs(11)), None);
    }
}
