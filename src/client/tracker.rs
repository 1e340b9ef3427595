//! The consumer's book, as a pure state machine: reset it from a snapshot,
//! then feed it the instrument's events in stream order. It skips the book
//! events the snapshot already contains, applies the ones that follow, and
//! turns stale when the stream shows that something is missing. No I/O
//! (the async side is [`super::BookFeed`]).

use rust_decimal::Decimal;

use crate::domain::{
    BookKind, BookSnapshot, BookUpdate, Event, Level, Payload, RelayMark, SequenceCheck,
    SequenceRule, StatusState, Timestamp,
};
use crate::engine::book::LocalBook;

/// Whether the book can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// Consistent with the relay's book and following the live stream.
    Synced,
    /// Known to be wrong or incomplete since the given point (a gap, a
    /// disconnect, a missing event): waiting for a snapshot.
    Stale,
    /// Reset from a snapshot, replaying the stream up to its end.
    Resyncing,
}

impl SyncState {
    /// `synced`, `stale` or `resyncing`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Synced => "synced",
            SyncState::Stale => "stale",
            SyncState::Resyncing => "resyncing",
        }
    }
}

/// Where the book stands in the instrument's `l2_orderbook` stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Position {
    /// The last venue update id applied (venues with a sequence rule).
    UpdateId(i64),
    /// The relay mark of the last book event applied (venues without one).
    Mark(RelayMark),
}

/// What an event did to the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A delta was applied: this many levels changed.
    Applied(usize),
    /// A snapshot replaced the book.
    Reset,
    /// Already contained in the book (or older): skipped.
    Contained,
    /// The book turned stale, for this reason.
    Stale(String),
    /// Nothing for the book (another data type, a status about a past
    /// state, book events while stale).
    Ignored,
}

/// Counters of what the tracker saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Deltas applied.
    pub applied: u64,
    /// Levels changed by them.
    pub levels: u64,
    /// Book events skipped as already contained.
    pub contained: u64,
    /// Resets from a snapshot.
    pub resets: u64,
    /// Times the book turned stale.
    pub stale: u64,
    /// Book events dropped while stale.
    pub dropped_stale: u64,
}

/// One instrument's book, positioned in its stream.
#[derive(Debug, Clone)]
pub struct BookTracker {
    book: LocalBook,
    /// Levels per side to keep (the relay's cap).
    depth: Option<usize>,
    rule: Option<SequenceRule>,
    position: Option<Position>,
    /// The next delta is the first after a reset: checked leniently (the
    /// relay checked the venue's own first-delta rule).
    first_after_reset: bool,
    /// The relay's receive time of the snapshot the book was reset to: a
    /// status event older than it is about a state already replaced.
    base_time: Timestamp,
    /// The exchange (else receive) time of the last change.
    last_change: Option<Timestamp>,
    state: SyncState,
    reason: Option<String>,
    /// The receive time of what made the book stale: only a snapshot taken
    /// after it can repair the book.
    stale_since: Option<Timestamp>,
    stats: TrackerStats,
}

impl BookTracker {
    /// A book reset from an `l2_snapshot`, in the `Resyncing` state until
    /// [`BookTracker::caught_up`].
    pub fn from_snapshot(snap: &BookSnapshot, receive_time: Timestamp) -> Self {
        let mut t = BookTracker {
            book: LocalBook::new(),
            depth: None,
            rule: None,
            position: None,
            first_after_reset: true,
            base_time: receive_time,
            last_change: None,
            state: SyncState::Resyncing,
            reason: None,
            stale_since: None,
            stats: TrackerStats::default(),
        };
        t.reset_to(snap, receive_time);
        t
    }

    /// Reset to an `l2_snapshot` (a rejoin), `Resyncing` until caught up.
    pub fn reset_to(&mut self, snap: &BookSnapshot, receive_time: Timestamp) {
        self.depth = snap.depth;
        self.rule = snap.sequence;
        self.reset(&snap.book, receive_time);
        self.state = SyncState::Resyncing;
    }

    fn reset(&mut self, u: &BookUpdate, time: Timestamp) {
        self.book = LocalBook::new();
        self.book.apply(u, self.depth);
        self.position = position(u);
        self.first_after_reset = true;
        self.base_time = time;
        self.last_change = Some(time);
        // Replaying toward the end of the stream stays `Resyncing`.
        if self.state != SyncState::Resyncing {
            self.state = SyncState::Synced;
        }
        self.reason = None;
        self.stale_since = None;
        self.stats.resets += 1;
    }

    /// The replay reached the end of the stream: a `Resyncing` book is now
    /// `Synced`. Returns whether the state changed.
    pub fn caught_up(&mut self) -> bool {
        let was = self.state == SyncState::Resyncing;
        if was {
            self.state = SyncState::Synced;
        }
        was
    }

    /// When what made the book stale was received by the relay (`None`
    /// when not stale, or stale for a reason outside the stream). A
    /// snapshot the relay took before it cannot repair the book.
    pub fn stale_since(&self) -> Option<Timestamp> {
        self.stale_since
    }

    /// Mark the book stale from outside (e.g. the stream stopped).
    pub fn mark_stale(&mut self, reason: String) -> Verdict {
        self.state = SyncState::Stale;
        self.stats.stale += 1;
        self.reason = Some(reason.clone());
        Verdict::Stale(reason)
    }

    /// Feed the next event of the instrument's stream (any data type).
    pub fn on_event(&mut self, ev: &Event) -> Verdict {
        match &ev.payload {
            Payload::Book(u) => self.on_book(u, ev),
            Payload::Status(s) => match s.state {
                StatusState::Gap | StatusState::Disconnected | StatusState::Unsubscribed
                    if self.state != SyncState::Stale && ev.receive_time > self.base_time =>
                {
                    let what = s.state.as_str();
                    self.stale_since = Some(ev.receive_time);
                    self.mark_stale(format!("relay reported `{what}`: {}", s.reason))
                }
                _ => Verdict::Ignored,
            },
            _ => Verdict::Ignored,
        }
    }

    fn on_book(&mut self, u: &BookUpdate, ev: &Event) -> Verdict {
        if self.contains(u) {
            self.stats.contained += 1;
            return Verdict::Contained;
        }
        if u.kind == BookKind::Snapshot {
            self.reset(u, ev.receive_time);
            return Verdict::Reset;
        }
        if self.state == SyncState::Stale {
            self.stats.dropped_stale += 1;
            return Verdict::Ignored;
        }
        if let Err(reason) = self.follows(u) {
            self.stale_since = Some(ev.receive_time);
            return self.mark_stale(reason);
        }
        self.book.apply(u, self.depth);
        if let Some(p) = position(u) {
            self.position = Some(p);
        }
        self.first_after_reset = false;
        self.last_change = Some(ev.exchange_time.unwrap_or(ev.receive_time));
        let n = u.bids.len() + u.asks.len();
        self.stats.applied += 1;
        self.stats.levels += n as u64;
        Verdict::Applied(n)
    }

    /// Whether the book already contains `u` (or `u` is older than it).
    fn contains(&self, u: &BookUpdate) -> bool {
        match (self.position, u.mark, u.last_update_id) {
            (Some(Position::Mark(have)), Some(m), _) => m <= have,
            (Some(Position::UpdateId(have)), _, Some(id)) => id <= have,
            _ => false,
        }
    }

    /// Whether delta `u` (not contained) continues the book; why not.
    fn follows(&self, u: &BookUpdate) -> Result<(), String> {
        match self.position {
            None => Ok(()),
            Some(Position::Mark(have)) => match u.mark {
                Some(m) if m.epoch == have.epoch && m.seq == have.seq + 1 => Ok(()),
                Some(m) => Err(format!(
                    "missing book events: have mark {}-{}, got {}-{}",
                    have.epoch, have.seq, m.epoch, m.seq
                )),
                None => Err("a book event without a relay mark".into()),
            },
            Some(Position::UpdateId(have)) => {
                if self.first_after_reset {
                    return first_follows(self.rule, have, u);
                }
                match self.rule.map(|r| r.check(Some(have), u)) {
                    None | Some(SequenceCheck::Ok | SequenceCheck::Stale) => Ok(()),
                    Some(SequenceCheck::Gap(reason)) => Err(reason),
                }
            }
        }
    }

    /// The book.
    pub fn book(&self) -> &LocalBook {
        &self.book
    }

    /// The state.
    pub fn state(&self) -> SyncState {
        self.state
    }

    /// Why the book is stale (when it is).
    pub fn stale_reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Where the book stands.
    pub fn position(&self) -> Option<Position> {
        self.position
    }

    /// When the book last changed (exchange time of the last delta, else the
    /// relay's receive time).
    pub fn last_change(&self) -> Option<Timestamp> {
        self.last_change
    }

    /// Counters.
    pub fn stats(&self) -> &TrackerStats {
        &self.stats
    }

    /// The best bid and ask.
    pub fn best(&self) -> (Option<Level>, Option<Level>) {
        (
            self.book.bids().next().copied(),
            self.book.asks().next().copied(),
        )
    }

    /// Best ask minus best bid.
    pub fn spread(&self) -> Option<Decimal> {
        match self.best() {
            (Some(b), Some(a)) => Some(a.price - b.price),
            _ => None,
        }
    }
}

fn position(u: &BookUpdate) -> Option<Position> {
    match (u.mark, u.last_update_id) {
        (Some(m), _) => Some(Position::Mark(m)),
        (None, Some(id)) => Some(Position::UpdateId(id)),
        (None, None) => None,
    }
}

/// The first delta after a reset to update id `have`: it may overlap the
/// snapshot (a venue's first-delta rule), but must not start after it.
fn first_follows(rule: Option<SequenceRule>, have: i64, u: &BookUpdate) -> Result<(), String> {
    let late = u.first_update_id.is_some_and(|f| f > have + 1)
        || u.prev_update_id.is_some_and(|p| p > have)
        || (rule == Some(SequenceRule::Step) && u.last_update_id.is_some_and(|l| l > have + 1));
    if late {
        Err(format!(
            "missing book events after update id {have}: got first {:?} last {:?} prev {:?}",
            u.first_update_id, u.last_update_id, u.prev_update_id
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::{EventId, Instrument, Status};

    fn lv(p: i64, q: i64) -> Level {
        Level {
            price: p.into(),
            quantity: q.into(),
        }
    }

    fn ev(payload: Payload, t: i64) -> Event {
        Event {
            venue: Arc::from("v"),
            instrument: Arc::new(Instrument::new("X", "A/B")),
            exchange_time: None,
            receive_time: Timestamp(t),
            id: EventId("id".into()),
            payload,
        }
    }

    fn upd(kind: BookKind, bids: Vec<Level>, ids: (Option<i64>, Option<i64>)) -> BookUpdate {
        BookUpdate {
            kind,
            bids,
            asks: vec![],
            first_update_id: ids.0,
            last_update_id: ids.1,
            prev_update_id: None,
            checksum: None,
            mark: None,
        }
    }

    fn marked(kind: BookKind, bids: Vec<Level>, epoch: i64, seq: i64) -> Event {
        let mut u = upd(kind, bids, (None, None));
        u.mark = Some(RelayMark { epoch, seq });
        ev(Payload::Book(u), 10)
    }

    fn snapshot(u: BookUpdate, rule: Option<SequenceRule>) -> BookSnapshot {
        BookSnapshot {
            book: u,
            sequence: rule,
            depth: None,
        }
    }

    #[test]
    fn sequenced_joins_skip_contained_deltas_and_apply_the_rest() {
        let s = snapshot(
            upd(BookKind::Snapshot, vec![lv(10, 1)], (None, Some(100))),
            Some(SequenceRule::Contiguous),
        );
        let mut t = BookTracker::from_snapshot(&s, Timestamp(5));
        assert_eq!(t.state(), SyncState::Resyncing);
        let d = |f, l, p| {
            ev(
                Payload::Book(upd(BookKind::Delta, vec![lv(p, 2)], (Some(f), Some(l)))),
                9,
            )
        };
        assert_eq!(t.on_event(&d(95, 99, 9)), Verdict::Contained);
        assert_eq!(
            t.on_event(&d(99, 103, 9)),
            Verdict::Applied(1),
            "spans the snapshot"
        );
        assert_eq!(t.on_event(&d(104, 104, 8)), Verdict::Applied(1));
        assert!(t.caught_up());
        assert_eq!(t.state(), SyncState::Synced);
        assert!(
            matches!(t.on_event(&d(106, 107, 7)), Verdict::Stale(_)),
            "105 missing"
        );
        assert_eq!(t.on_event(&d(108, 108, 7)), Verdict::Ignored);
        // The venue's snapshot in the stream recovers it.
        let snap = ev(
            Payload::Book(upd(BookKind::Snapshot, vec![lv(5, 1)], (None, Some(200)))),
            20,
        );
        assert_eq!(t.on_event(&snap), Verdict::Reset);
        assert_eq!(t.state(), SyncState::Synced);
        assert_eq!(t.book().len(), (1, 0));
        assert_eq!(t.position(), Some(Position::UpdateId(200)));
    }

    #[test]
    fn a_first_delta_starting_after_the_snapshot_is_a_gap() {
        let s = snapshot(
            upd(BookKind::Snapshot, vec![], (None, Some(100))),
            Some(SequenceRule::Step),
        );
        let mut t = BookTracker::from_snapshot(&s, Timestamp(5));
        let d = ev(
            Payload::Book(upd(BookKind::Delta, vec![], (None, Some(102)))),
            9,
        );
        assert!(matches!(t.on_event(&d), Verdict::Stale(_)));
    }

    #[test]
    fn marks_place_every_event_and_show_holes() {
        let mut first = upd(BookKind::Snapshot, vec![lv(10, 1)], (None, None));
        first.mark = Some(RelayMark { epoch: 7, seq: 3 });
        let mut t = BookTracker::from_snapshot(&snapshot(first, None), Timestamp(5));
        assert_eq!(
            t.on_event(&marked(BookKind::Snapshot, vec![], 7, 0)),
            Verdict::Contained
        );
        assert_eq!(
            t.on_event(&marked(BookKind::Delta, vec![], 7, 3)),
            Verdict::Contained
        );
        assert_eq!(
            t.on_event(&marked(BookKind::Delta, vec![], 6, 9)),
            Verdict::Contained
        );
        assert_eq!(
            t.on_event(&marked(BookKind::Delta, vec![lv(11, 1)], 7, 4)),
            Verdict::Applied(1)
        );
        assert!(matches!(
            t.on_event(&marked(BookKind::Delta, vec![], 7, 6)),
            Verdict::Stale(_)
        ));
        // A later epoch starts with a snapshot.
        assert_eq!(
            t.on_event(&marked(BookKind::Snapshot, vec![lv(1, 1)], 8, 0)),
            Verdict::Reset
        );
        assert_eq!(
            t.on_event(&marked(BookKind::Delta, vec![lv(2, 1)], 8, 1)),
            Verdict::Applied(1)
        );
        assert_eq!(t.book().len(), (2, 0));
        // A delta of a later epoch without its snapshot: something is missing.
        assert!(matches!(
            t.on_event(&marked(BookKind::Delta, vec![], 9, 1)),
            Verdict::Stale(_)
        ));
    }

    #[test]
    fn status_events_turn_the_book_stale_unless_they_are_older_than_it() {
        let s = snapshot(upd(BookKind::Snapshot, vec![], (None, Some(1))), None);
        let mut t = BookTracker::from_snapshot(&s, Timestamp(100));
        let status = |state, at| {
            ev(
                Payload::Status(Status {
                    state,
                    reason: "r".into(),
                }),
                at,
            )
        };
        assert_eq!(t.on_event(&status(StatusState::Gap, 50)), Verdict::Ignored);
        assert_eq!(
            t.on_event(&status(StatusState::Resubscribed, 150)),
            Verdict::Ignored
        );
        assert!(matches!(
            t.on_event(&status(StatusState::Disconnected, 150)),
            Verdict::Stale(_)
        ));
        assert_eq!(t.state(), SyncState::Stale);
        assert!(t.stale_reason().unwrap().contains("disconnected"));
        // Only a snapshot taken after the disconnect can repair it.
        assert_eq!(t.stale_since(), Some(Timestamp(150)));
        t.reset_to(&s, Timestamp(160));
        assert_eq!(t.stale_since(), None);
    }

    #[test]
    fn the_relays_depth_cap_is_applied() {
        let mut s = snapshot(
            upd(
                BookKind::Snapshot,
                vec![lv(10, 1), lv(9, 1)],
                (None, Some(1)),
            ),
            Some(SequenceRule::Increasing),
        );
        s.depth = Some(2);
        let mut t = BookTracker::from_snapshot(&s, Timestamp(1));
        t.on_event(&ev(
            Payload::Book(upd(BookKind::Delta, vec![lv(11, 1)], (None, Some(2)))),
            2,
        ));
        let prices: Vec<_> = t.book().bids().map(|l| l.price).collect();
        assert_eq!(prices, [11.into(), 10.into()] as [Decimal; 2]);
        assert_eq!(t.spread(), None);
    }
}
