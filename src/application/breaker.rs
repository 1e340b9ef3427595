//! Reconnect pacing: exponential backoff with jitter (the `backon` crate's
//! exponential builder, used as a plain iterator of delays) and a circuit
//! breaker (Closed → Open → HalfOpen) so a venue that keeps failing is
//! probed, not hammered.

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::config::relay::{Breaker as BreakerCfg, Reconnect};

/// Delays between reconnect attempts.
pub struct Backoff {
    builder: ExponentialBuilder,
    delays: backon::ExponentialBackoff,
}

impl Backoff {
    /// From the venue's reconnect settings.
    pub fn new(cfg: &Reconnect) -> Self {
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(cfg.initial_delay)
            .with_max_delay(cfg.max_delay)
            .with_factor(cfg.multiplier)
            .without_max_times();
        if cfg.jitter {
            builder = builder.with_jitter();
        }
        Backoff {
            delays: builder.build(),
            builder,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(Duration::from_secs(1))
    }

    /// Start over from the initial delay (after a successful connection).
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
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
        assert_eq!(ms(d[0]), 100);
        assert_eq!(ms(d[1]), 200);
        assert_eq!(ms(d[2]), 400);
        assert_eq!(ms(d[5]), 1000);
        b.reset();
        assert_eq!(ms(b.next_delay()), 100);
    }
}
