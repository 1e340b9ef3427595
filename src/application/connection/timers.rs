//! A session's clocks, behind one `next()`: client pings, the periodic
//! check (silence, subscribe acks, pongs, per-instrument liveness, handover
//! readiness), the planned-lifetime deadline, and the wall-clock boundaries
//! of top-N and full-depth book snapshots.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use super::tops::TopTimer;

/// The longest a book waits for its snapshot after a (re)sync: the
/// snapshot timer ticks at least this often.
const RESYNC_SNAPSHOT_WITHIN: Duration = Duration::from_millis(100);

/// What a timer says is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tick {
    /// Send a client ping.
    Ping,
    /// Check silence, acks, pongs, liveness and readiness.
    Check,
    /// The connection's lifetime is ending: hand over.
    Lifetime,
    /// Top-N snapshots for this wall-clock millisecond boundary.
    Tops(i64),
    /// Full-depth snapshots for this boundary.
    Snapshots(i64),
}

/// The clocks of one session.
pub(super) struct Timers {
    ping: Option<Interval>,
    check: Interval,
    lifetime: std::pin::Pin<Box<Sleep>>,
    lifetime_armed: bool,
    tops: Option<TopTimer>,
    snapshots: Option<TopTimer>,
}

/// A point far enough in the future to mean "never".
fn never() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 86_400)
}

impl Timers {
    /// `ping`: the client ping interval, if the venue wants pings; `check`:
    /// how often to check; `lifetime`: when the planned handover starts;
    /// the book snapshot intervals.
    pub(super) fn new(
        ping: Option<Duration>,
        check: Duration,
        lifetime: Option<Duration>,
        tops: impl IntoIterator<Item = Duration>,
        snapshots: impl IntoIterator<Item = Duration>,
    ) -> Timers {
        let mut check = tokio::time::interval(check);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut t = Timers {
            ping: ping.map(|d| tokio::time::interval_at(Instant::now() + d, d)),
            check,
            lifetime: Box::pin(tokio::time::sleep_until(
                lifetime.map_or_else(never, |d| Instant::now() + d),
            )),
            lifetime_armed: lifetime.is_some(),
            tops: None,
            snapshots: None,
        };
        t.set_books(tops, snapshots);
        t
    }

    /// The book snapshot intervals changed (instruments were added or
    /// removed): the top-N and full-depth timers start over with these.
    pub(super) fn set_books(
        &mut self,
        tops: impl IntoIterator<Item = Duration>,
        snapshots: impl IntoIterator<Item = Duration>,
    ) {
        let snapshots: Vec<Duration> = snapshots.into_iter().collect();
        self.tops = TopTimer::every(tops);
        self.snapshots = (!snapshots.is_empty())
            .then(|| TopTimer::every(snapshots.into_iter().chain([RESYNC_SNAPSHOT_WITHIN])))
            .flatten();
    }

    /// Try the planned handover again after `d` (a successor failed).
    pub(super) fn lifetime_in(&mut self, d: Duration) {
        self.lifetime.as_mut().reset(Instant::now() + d);
        self.lifetime_armed = true;
    }

    /// The next thing due.
    pub(super) async fn next(&mut self) -> Tick {
        tokio::select! {
            _ = self.check.tick() => Tick::Check,
            _ = async { self.ping.as_mut().expect("guarded").tick().await }, if self.ping.is_some() => Tick::Ping,
            _ = self.lifetime.as_mut(), if self.lifetime_armed => {
                self.lifetime_armed = false;
                Tick::Lifetime
            }
            b = async { self.tops.as_mut().expect("guarded").tick().await }, if self.tops.is_some() => Tick::Tops(b),
            b = async { self.snapshots.as_mut().expect("guarded").tick().await }, if self.snapshots.is_some() => Tick::Snapshots(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pings_checks_and_the_lifetime_come_due_in_order() {
        let mut t = Timers::new(
            Some(Duration::from_millis(300)),
            Duration::from_millis(200),
            Some(Duration::from_millis(500)),
            [],
            [],
        );
        let mut seen = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(650) {
            let tick = t.next().await;
            seen.push((tick, start.elapsed().as_millis()));
        }
        let kinds: Vec<Tick> = seen.iter().map(|(t, _)| *t).collect();
        assert_eq!(kinds.iter().filter(|t| **t == Tick::Lifetime).count(), 1);
        assert_eq!(kinds.iter().filter(|t| **t == Tick::Ping).count(), 2);
        assert!(kinds.iter().filter(|t| **t == Tick::Check).count() >= 3);
        assert!(seen.contains(&(Tick::Lifetime, 500)), "{seen:?}");
        t.lifetime_in(Duration::from_millis(100));
        let again = Instant::now();
        loop {
            if t.next().await == Tick::Lifetime {
                break;
            }
        }
        assert_eq!(again.elapsed(), Duration::from_millis(100));
    }
}
