//! Reconnect pacing: exponential backoff whose `max_delay` is a hard cap
//! (jitter stays inside it), and a circuit breaker (Closed → Open →
//! HalfOpen) so a venue that keeps failing is probed, not hammered.
//!
//! The delays are computed here rather than with a backoff crate: the
//! crates' jitter is added on top of the capped delay (measured: 7.48 s
//! against `max_delay = 5s`), and the computation is three lines.

use std::time::{Duration, Instant};

use crate::config::relay::{Breaker as BreakerCfg, Reconnect};

/// Delays between reconnect attempts: `initial_delay × multiplier^n`, at
/// most `max_delay`; with jitter, a uniform draw between half the delay and
/// the delay (so never above the cap, and reconnect storms spread out).
pub struct Backoff {
    cfg: Reconnect,
    attempt: i32,
}

impl Backoff {
    /// From the venue's reconnect settings.
    pub fn new(cfg: &Reconnect) -> Self {
        Backoff {
            cfg: cfg.clone(),
            attempt: 0,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let grown = self.cfg.initial_delay.as_secs_f64()
            * f64::from(self.cfg.multiplier.max(1.0)).powi(self.attempt);
        self.attempt = self.attempt.saturating_add(1).min(1_000);
        let cap = self.cfg.max_delay.as_secs_f64();
        let base = if grown.is_finite() {
            grown.min(cap)
        } else {
            cap
        };
        let secs = if self.cfg.jitter {
            base * (0.5 + 0.5 * fastrand::f64())
        } else {
            base
        };
        Duration::from_secs_f64(secs).min(self.cfg.max_delay)
    }

    /// Start over from the initial delay (after a successful connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Attempts allowed; counting consecutive failures.
    Closed {
        /// Consecutive failures so far.
        failures: u32,
    },
    /// No attempts until the deadline.
    Open {
        /// When a probe is allowed.
        until: Instant,
    },
    /// Probing: attempts allowed, one failure reopens.
    HalfOpen {
        /// Successful probes so far.
        successes: u32,
    },
}

impl BreakerState {
    /// Gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed { .. } => 0,
            BreakerState::HalfOpen { .. } => 1,
            BreakerState::Open { .. } => 2,
        }
    }
}

/// A circuit breaker for one connection.
pub struct CircuitBreaker {
    cfg: BreakerCfg,
    state: BreakerState,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(cfg: &BreakerCfg) -> Self {
        CircuitBreaker {
            cfg: cfg.clone(),
            state: BreakerState::Closed { failures: 0 },
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Before an attempt: how long to wait first (open breaker), moving to
    /// half-open when the wait is over.
    pub fn wait(&mut self, now: Instant) -> Option<Duration> {
        match self.state {
            BreakerState::Open { until } if until > now => Some(until - now),
            BreakerState::Open { .. } => {
                self.state = BreakerState::HalfOpen { successes: 0 };
                None
            }
            _ => None,
        }
    }

    /// An attempt succeeded.
    pub fn success(&mut self) {
        self.state = match self.state {
            BreakerState::HalfOpen { successes } if successes + 1 < self.cfg.half_open_probes => {
                BreakerState::HalfOpen {
                    successes: successes + 1,
                }
            }
            _ => BreakerState::Closed { failures: 0 },
        };
    }

    /// An attempt failed.
    pub fn failure(&mut self, now: Instant) {
        self.state = match self.state {
            BreakerState::Closed { failures } if failures + 1 < self.cfg.failure_threshold => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            _ => BreakerState::Open {
                until: now + self.cfg.open_duration,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerCfg {
        BreakerCfg {
            failure_threshold: 3,
            open_duration: Duration::from_secs(10),
            half_open_probes: 2,
        }
    }

    #[test]
    fn opens_after_threshold_then_probes() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(&cfg());
        b.failure(t0);
        b.failure(t0);
        assert!(matches!(b.state(), BreakerState::Closed { failures: 2 }));
        b.failure(t0);
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        assert_eq!(
            b.wait(t0 + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(b.wait(t0 + Duration::from_secs(10)), None);
        assert!(matches!(b.state(), BreakerState::HalfOpen { successes: 0 }));
        b.success();
        assert!(matches!(b.state(), BreakerState::HalfOpen { successes: 1 }));
        b.success();
        assert!(matches!(b.state(), BreakerState::Closed { failures: 0 }));
    }

    #[test]
    fn a_failed_probe_reopens() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(&cfg());
        for _ in 0..3 {
            b.failure(t0);
        }
        let _ = b.wait(t0 + Duration::from_secs(11));
        b.failure(t0 + Duration::from_secs(11));
        assert!(matches!(b.state(), BreakerState::Open { .. }));
    }

    #[test]
    fn backoff_grows_and_resets() {
        let cfg = Reconnect {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: false,
        };
        let mut b = Backoff::new(&cfg);
        let d: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(d[3]), 800);
        assert_eq!(ms(d[4]), 1000);
        assert_eq!(ms(d[0]), 100);
        assert_eq!(ms(d[1]), 200);
        assert_eq!(ms(d[2]), 400);
        assert_eq!(ms(d[5]), 1000);
        b.reset();
        assert_eq!(ms(b.next_delay()), 100);
    }

    #[test]
    fn jitter_stays_under_the_cap() {
        let cfg = Reconnect {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: true,
        };
        let mut b = Backoff::new(&cfg);
        let mut max = Duration::ZERO;
        let mut capped = Vec::new();
        for i in 0..10_000 {
            let d = b.next_delay();
            max = max.max(d);
            if i >= 10 {
                capped.push(d);
            }
        }
        assert!(max <= cfg.max_delay, "{max:?}");
        // Inside the cap the delays still spread (no storm of equal delays).
        let lo = capped.iter().min().unwrap();
        assert!(*lo >= Duration::from_millis(2500), "{lo:?}");
        assert!(*lo < Duration::from_millis(2600), "{lo:?}");
    }
}
