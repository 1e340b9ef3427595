//! A timer on wall-clock boundaries, for the periodic top-N (`book_top`)
//! and full-depth (`book_snapshot`) book snapshots: relays running side by
//! side tick at the same instants, so their snapshots share ids.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Ticks on wall-clock multiples of the greatest common divisor of the
/// wanted intervals, so every interval falls on a tick.
#[derive(Debug)]
pub(super) struct TopTimer {
    interval: Interval,
    start: Instant,
    /// Wall-clock milliseconds of the first tick.
    first_ms: i64,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl TopTimer {
    /// A timer whose ticks fall on every one of `intervals`, or `None` when
    /// there is none.
    pub(super) fn every(intervals: impl IntoIterator<Item = Duration>) -> Option<TopTimer> {
        let period = intervals
            .into_iter()
            .map(|i| u64::try_from(i.as_millis()).unwrap_or(u64::MAX).max(1))
            .reduce(gcd)?;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let wait = period - now_ms % period;
        let start = Instant::now() + Duration::from_millis(wait);
        let mut interval = tokio::time::interval_at(start, Duration::from_millis(period));
        // After a stall, resume on the boundaries rather than catch up.
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Some(TopTimer {
            interval,
            start,
            first_ms: i64::try_from(now_ms + wait).unwrap_or(i64::MAX),
        })
    }

    /// Wait for the next boundary; its wall-clock milliseconds.
    pub(super) async fn tick(&mut self) -> i64 {
        let at = self.interval.tick().await;
        self.first_ms + i64::try_from((at - self.start).as_millis()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_divides_every_interval() {
        let t = Duration::from_millis;
        assert!(TopTimer::every([]).is_none());
        assert_eq!(gcd(1500, 1000), 500);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut timer = TopTimer::every([t(1500), t(1000)]).unwrap();
            let a = timer.tick().await;
            let b = timer.tick().await;
            assert_eq!(a % 500, 0, "on a wall-clock boundary");
            assert_eq!(b - a, 500);
        });
    }
}
