//! Full-depth book snapshots (`book_snapshot` on a subscription): the
//! session's timer and the step that publishes what is due (the keeper side
//! is `application::books::snapshots`).

use std::time::Duration;

use super::End;
use super::session::Session;
use super::tops::TopTimer;
use crate::domain::Timestamp;

/// The longest a book waits for its snapshot after a (re)sync: the timer
/// ticks at least this often.
const RESYNC_SNAPSHOT_WITHIN: Duration = Duration::from_millis(100);

impl<'c> Session<'c> {
    /// Start maintaining the books that want snapshots; their timer.
    pub(super) fn start_snapshots(&mut self) -> Option<TopTimer> {
        for (instrument, every) in &self.conn.plan.book_snapshots {
            self.books
                .keep_snapshot(&self.venue.book, instrument, *every);
        }
        if self.conn.plan.book_snapshots.is_empty() {
            return None;
        }
        let intervals = self.conn.plan.book_snapshots.values().copied();
        TopTimer::every(intervals.chain([RESYNC_SNAPSHOT_WITHIN]))
    }

    /// Publish the snapshots due at `boundary_ms`. Nothing while this
    /// session is a successor holding its book events back: its books are
    /// ahead of what is published.
    pub(super) async fn publish_snapshots(&mut self, boundary_ms: i64) -> Option<End<'c>> {
        if self.holding {
            return None;
        }
        let mut due = std::mem::take(&mut self.events);
        due.clear();
        let venue = self.venue.clone();
        self.books.snapshots(
            &self.conn.venue_id,
            &venue.book,
            boundary_ms,
            Timestamp::now(),
            &mut due,
        );
        let received = std::time::Instant::now();
        let mut end = None;
        for ev in due.drain(..) {
            if end.is_none() {
                end = self.publish(ev, received).await;
            }
        }
        self.events = due;
        end
    }
}
