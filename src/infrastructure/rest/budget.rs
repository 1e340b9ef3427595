//! A venue's REST budget: a token bucket of `requests` per `per`, and a
//! pause after the venue said it was asked too often.

use std::time::Duration;

use std::sync::Mutex;
use tokio::time::Instant;

/// `[rest]` of a venue file, compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSettings {
    /// Most requests in any window of `per`.
    pub requests: u32,
    /// The window.
    pub per: Duration,
    /// How long to pause after a 429/418 that carries no readable
    /// `Retry-After`.
    pub throttled_wait: Duration,
}

impl Default for BudgetSettings {
    /// 10 requests per second, 5 s after an unexplained 429.
    fn default() -> Self {
        BudgetSettings {
            requests: 10,
            per: Duration::from_secs(1),
            throttled_wait: Duration::from_secs(5),
        }
    }
}

#[derive(Debug)]
struct State {
    settings: BudgetSettings,
    /// Tokens left (fractional: they refill continuously).
    tokens: f64,
    refilled: Instant,
    /// No request before this (set by a throttled answer).
    paused_until: Instant,
}

/// One venue's REST budget, shared by all its requests (snapshots,
/// bootstrap, reference data) and kept across reloads.
#[derive(Debug)]
pub struct Budget {
    state: Mutex<State>,
}

impl Budget {
    /// A full budget.
    pub fn new(settings: BudgetSettings) -> Self {
        let now = Instant::now();
        Budget {
            state: Mutex::new(State {
                settings,
                tokens: f64::from(settings.requests),
                refilled: now,
                paused_until: now,
            }),
        }
    }

    /// Change the rate (a reload); the pause and the tokens used stay.
    pub fn set(&self, settings: BudgetSettings) {
        let mut s = self.lock();
        s.settings = settings;
        s.tokens = s.tokens.min(f64::from(settings.requests));
    }

    /// The state (never held across an await; a panic while holding it
    /// leaves consistent numbers, so a poisoned lock is used as is).
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wait until a request may be made, and take its token.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.lock();
                let now = Instant::now();
                s.refill(now);
                if now < s.paused_until {
                    s.paused_until - now
                } else if s.tokens >= 1.0 {
                    s.tokens -= 1.0;
                    return;
                } else {
                    s.time_per_token().mul_f64(1.0 - s.tokens)
                }
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// The venue answered 429/418: no request before `retry_after` (or the
    /// venue's `throttled_wait` when it gave none) has passed. Returns the
    /// wait applied.
    pub fn throttled(&self, retry_after: Option<Duration>) -> Duration {
        let mut s = self.lock();
        let wait = retry_after.unwrap_or(s.settings.throttled_wait);
        let until = Instant::now() + wait;
        s.paused_until = s.paused_until.max(until);
        // The venue's view of our rate is fuller than ours: start empty.
        s.tokens = 0.0;
        s.refilled = s.paused_until;
        wait
    }

    /// How long until the pause ends (zero when not paused).
    pub fn paused_for(&self) -> Duration {
        let s = self.lock();
        s.paused_until.saturating_duration_since(Instant::now())
    }
}

impl State {
    fn time_per_token(&self) -> Duration {
        self.settings.per / self.settings.requests.max(1)
    }

    fn refill(&mut self, now: Instant) {
        if now <= self.refilled {
            return;
        }
        let elapsed = now - self.refilled;
        let per = self.settings.per.as_secs_f64().max(1e-9);
        let cap = f64::from(self.settings.requests.max(1));
        self.tokens = (self.tokens + elapsed.as_secs_f64() / per * cap).min(cap);
        self.refilled = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(requests: u32, per: Duration) -> BudgetSettings {
        BudgetSettings {
            requests,
            per,
            throttled_wait: Duration::from_secs(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_beyond_the_budget_waits_for_refills() {
        let b = Budget::new(settings(2, Duration::from_secs(1)));
        let t0 = Instant::now();
        for _ in 0..6 {
            b.acquire().await;
        }
        // 2 at once, then one per 500 ms.
        let took = t0.elapsed();
        assert!(took >= Duration::from_secs(2), "{took:?}");
        assert!(took < Duration::from_millis(2100), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_answer_pauses_every_request_for_its_wait() {
        let b = Budget::new(settings(100, Duration::from_secs(1)));
        b.acquire().await;
        assert_eq!(
            b.throttled(Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        let t0 = Instant::now();
        b.acquire().await;
        assert!(t0.elapsed() >= Duration::from_secs(2));
        // A shorter later wait does not shorten the pause already set.
        b.throttled(Some(Duration::from_secs(3)));
        b.throttled(Some(Duration::from_secs(1)));
        let t1 = Instant::now();
        b.acquire().await;
        assert!(t1.elapsed() >= Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_after_pauses_for_the_configured_wait() {
        let b = Budget::new(settings(100, Duration::from_secs(1)));
        assert_eq!(b.throttled(None), Duration::from_secs(5));
        assert_eq!(b.paused_for(), Duration::from_secs(5));
    }
}
