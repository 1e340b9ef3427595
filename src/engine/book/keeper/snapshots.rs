//! Full-depth book snapshots (`l2_snapshot`, a subscription's
//! `book_snapshot`) and the relay marks that position an unsequenced book's
//! events.
//!
//! A snapshot says exactly where it sits in the instrument's `l2_orderbook`
//! stream, so that a consumer joining late can tell, for every later delta,
//! whether the snapshot already contains it:
//! - venues with a `[book] sequence` rule whose events carry update ids: the
//!   last venue update id applied (ids are the venue's, so they mean the
//!   same on every connection and in every relay);
//! - other books: the relay's [`RelayMark`] of the last book event published.
//!   Every published book event of such a book is stamped with a mark (and
//!   its id keyed by it), at the moment it is queued. Which of the two is
//!   decided at each snapshot the book starts from.
//!
//! One is due when the book is (re)synchronized (the first snapshot after
//! the start, a gap or a new connection, including a handover's successor)
//! and then on wall-clock multiples of the interval while the book changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::{BookKeeper, State};
use crate::domain::{
    BookKind, BookSnapshot, BookUpdate, DataType, Event, EventId, Instrument, Payload, RelayMark,
    Timestamp,
};
use crate::engine::book::LocalBook;
use crate::engine::venue::BookRules;

/// The last epoch handed out in this process: epochs only grow, across
/// sessions, handovers and relays sharing the process.
static LAST_EPOCH: AtomicI64 = AtomicI64::new(0);

/// A new epoch: `now` in microseconds, or one more than the last epoch if
/// that is not later.
fn next_epoch(now: Timestamp) -> i64 {
    let us = now.0 / 1_000;
    let prev = LAST_EPOCH
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(us.max(last + 1))
        })
        .unwrap_or(0);
    us.max(prev + 1)
}

/// Snapshot state of one instrument.
#[derive(Debug)]
pub(super) struct Snap {
    every_ms: i64,
    /// The venue has a sequence rule.
    sequenced: bool,
    /// The current epoch is positioned by venue update ids (a sequence rule,
    /// and ids in the events); else by relay marks.
    by_ids: bool,
    /// The book changed since the last snapshot.
    changed: bool,
    /// Not synchronized since the start or the last gap.
    fresh: bool,
    /// A snapshot is due at the next tick, whatever the interval.
    due: bool,
    /// The instrument (known from its first update).
    instrument: Option<Arc<Instrument>>,
    /// The mark of the last book event published (when not `by_ids`).
    mark: Option<RelayMark>,
}

impl Snap {
    /// A book event was applied to the local book.
    pub(super) fn applied(&mut self, instrument: &Arc<Instrument>, kind: BookKind) {
        self.changed = true;
        if kind == BookKind::Snapshot && self.fresh {
            self.fresh = false;
            self.due = true;
        }
        if self.instrument.is_none() {
            self.instrument = Some(instrument.clone());
        }
    }

    /// The book was dropped (a gap): the next snapshot of it starts over.
    pub(super) fn reset(&mut self) {
        self.fresh = true;
        self.due = false;
        self.mark = None;
        self.by_ids = false;
    }
}

impl BookKeeper {
    /// Maintain the instrument's full book and offer it as `l2_snapshot`s
    /// every `every` (see [`BookKeeper::snapshots`]); unless its events are
    /// positioned by update ids, also stamp them with relay marks
    /// ([`BookKeeper::stamp`]).
    pub fn keep_snapshot(&mut self, rules: &BookRules, instrument: &str, every: Duration) {
        let b = self.entry(rules, instrument);
        b.local.get_or_insert_with(LocalBook::new);
        b.snap = Some(Snap {
            every_ms: i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1),
            sequenced: rules.sequence.is_some(),
            by_ids: false,
            changed: false,
            fresh: true,
            due: false,
            instrument: None,
            mark: None,
        });
    }

    /// Whether any instrument wants snapshots.
    pub fn has_snapshots(&self) -> bool {
        self.books.values().any(|b| b.snap.is_some())
    }

    /// A book event is being published: stamp its relay mark (and key its
    /// id by it) unless its book is positioned by venue update ids. A
    /// snapshot, or the first event of the instrument in this session,
    /// starts a new epoch, positioned by ids when the venue has a sequence
    /// rule and the event carries an update id, else by marks.
    pub fn stamp(&mut self, ev: &mut Event) {
        let key = ev.instrument.venue_instrument.as_str();
        let Some(snap) = self.books.get_mut(key).and_then(|b| b.snap.as_mut()) else {
            return;
        };
        let Payload::Book(u) = &mut ev.payload else {
            return;
        };
        let start = u.kind == BookKind::Snapshot || (snap.mark.is_none() && !snap.by_ids);
        if start {
            snap.by_ids = snap.sequenced && u.last_update_id.is_some();
            snap.mark = None;
        }
        if snap.by_ids {
            return;
        }
        let mark = match snap.mark {
            Some(m) => RelayMark {
                epoch: m.epoch,
                seq: m.seq + 1,
            },
            None => RelayMark {
                epoch: next_epoch(ev.receive_time),
                seq: 0,
            },
        };
        u.mark = Some(mark);
        snap.mark = Some(mark);
        ev.id = EventId::with_key(&ev.venue, DataType::L2Orderbook, key, 40, |s| {
            push_mark(s, mark)
        });
    }

    /// The snapshots due at wall-clock time `boundary_ms` (a multiple of the
    /// timer period): each live book just (re)synchronized, and each live
    /// book changed since its last snapshot whose interval divides the
    /// boundary. A book that cannot be positioned yet (no update id, no
    /// mark) waits. Ids are keyed by the position, so relays holding the same
    /// book state publish the same id.
    pub fn snapshots(
        &mut self,
        venue: &Arc<str>,
        rules: &BookRules,
        boundary_ms: i64,
        now: Timestamp,
        out: &mut Vec<Event>,
    ) {
        for (key, b) in &mut self.books {
            let (Some(snap), Some(local), State::Live) = (&mut b.snap, &b.local, &b.state) else {
                continue;
            };
            // A book built without a snapshot since the start or a gap is
            // not the venue's: never published.
            let periodic = !snap.fresh && snap.changed && boundary_ms % snap.every_ms == 0;
            if !(snap.due || periodic) {
                continue;
            }
            let Some(instrument) = snap.instrument.clone() else {
                continue;
            };
            let (last, mark) = if snap.by_ids {
                (b.last, None)
            } else {
                (None, snap.mark)
            };
            let id = match (last, mark) {
                (Some(last), _) => {
                    EventId::new(venue, DataType::L2Snapshot, key, &last.to_string())
                }
                (None, Some(m)) => {
                    EventId::with_key(venue, DataType::L2Snapshot, key, 40, |s| push_mark(s, m))
                }
                (None, None) => continue,
            };
            snap.changed = false;
            snap.due = false;
            let (bids, asks) = local.top(usize::MAX);
            out.push(Event {
                id,
                venue: venue.clone(),
                instrument,
                exchange_time: None,
                receive_time: now,
                payload: Payload::BookSnapshot(Box::new(BookSnapshot {
                    book: BookUpdate {
                        kind: BookKind::Snapshot,
                        bids,
                        asks,
                        first_update_id: None,
                        last_update_id: last,
                        prev_update_id: None,
                        checksum: None,
                        mark,
                    },
                    sequence: rules.sequence,
                    depth: rules.depth,
                })),
            });
        }
    }
}

/// `m<epoch>-<seq>`: an id key from a mark.
fn push_mark(s: &mut String, m: RelayMark) {
    let mut buf = itoa::Buffer::new();
    s.push('m');
    s.push_str(buf.format(m.epoch));
    s.push('-');
    s.push_str(buf.format(m.seq));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Level;
    use crate::engine::book::SequenceRule;
    use crate::engine::venue::BookRules;

    fn book(kind: BookKind, price: i64, id: Option<i64>) -> Event {
        Event {
            venue: Arc::from("v"),
            instrument: Arc::new(Instrument::new("X", "A/B")),
            exchange_time: None,
            receive_time: Timestamp(1_700_000_000_000_000_000),
            id: EventId("v:l2_orderbook:X:h".into()),
            payload: Payload::Book(BookUpdate {
                kind,
                bids: vec![Level {
                    price: price.into(),
                    quantity: 1.into(),
                }],
                asks: vec![],
                first_update_id: id,
                last_update_id: id,
                prev_update_id: id.map(|i| i - 1),
                checksum: None,
                mark: None,
            }),
        }
    }

    /// Run events through the keeper as a session does (apply, then stamp
    /// what is published); returns the published events.
    fn feed(k: &mut BookKeeper, rules: &BookRules, evs: Vec<Event>) -> Vec<Event> {
        let mut out = Vec::new();
        let mut steps = Vec::new();
        for ev in evs {
            k.on_update(rules, ev, &mut steps);
        }
        for s in steps {
            if let super::super::Step::Publish(mut ev) = s {
                k.stamp(&mut ev);
                out.push(ev);
            }
        }
        out
    }

    fn snapshot_of(ev: &Event) -> &BookSnapshot {
        match &ev.payload {
            Payload::BookSnapshot(s) => s,
            _ => panic!("not a snapshot"),
        }
    }

    #[test]
    fn unsequenced_books_are_marked_and_snapshots_positioned_by_the_marks() {
        let rules = BookRules::default();
        let venue: Arc<str> = Arc::from("v");
        let mut k = BookKeeper::new();
        k.keep_snapshot(&rules, "X", Duration::from_secs(10));
        assert!(k.has_snapshots());
        let published = feed(
            &mut k,
            &rules,
            vec![
                book(BookKind::Snapshot, 10, None),
                book(BookKind::Delta, 11, None),
                book(BookKind::Delta, 12, None),
            ],
        );
        let marks: Vec<RelayMark> = published
            .iter()
            .map(|e| match &e.payload {
                Payload::Book(u) => u.mark.unwrap(),
                _ => unreachable!(),
            })
            .collect();
        let epoch = marks[0].epoch;
        assert_eq!(marks.iter().map(|m| m.seq).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(marks.iter().all(|m| m.epoch == epoch));
        assert_eq!(published[2].id.0, format!("v:l2_orderbook:X:m{epoch}-2"));
        // Due right after the sync, whatever the boundary.
        let mut out = Vec::new();
        k.snapshots(&venue, &rules, 1_234, Timestamp(0), &mut out);
        assert_eq!(out.len(), 1);
        let s = snapshot_of(&out[0]);
        assert_eq!(s.book.mark, Some(marks[2]));
        assert_eq!(s.book.bids.len(), 3);
        assert_eq!(s.sequence, None);
        assert_eq!(out[0].id.0, format!("v:l2_snapshot:X:m{epoch}-2"));
        // Unchanged: nothing at the next boundary.
        k.snapshots(&venue, &rules, 10_000, Timestamp(0), &mut out);
        assert_eq!(out.len(), 1);
        // A new venue snapshot starts a later epoch.
        let again = feed(&mut k, &rules, vec![book(BookKind::Snapshot, 9, None)]);
        let Payload::Book(u) = &again[0].payload else {
            unreachable!()
        };
        assert!(u.mark.unwrap().epoch > epoch);
        assert_eq!(u.mark.unwrap().seq, 0);
        k.snapshots(&venue, &rules, 15_000, Timestamp(0), &mut out);
        assert_eq!(out.len(), 1, "changed, but not on its interval");
        k.snapshots(&venue, &rules, 20_000, Timestamp(0), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(snapshot_of(&out[1]).book.bids.len(), 1);
    }

    #[test]
    fn sequenced_snapshots_carry_the_last_update_id_and_the_rule() {
        let rules = BookRules {
            sequence: Some(SequenceRule::PrevMatches),
            depth: Some(50),
            ..Default::default()
        };
        let venue: Arc<str> = Arc::from("v");
        let mut k = BookKeeper::new();
        k.keep_snapshot(&rules, "X", Duration::from_secs(1));
        let published = feed(
            &mut k,
            &rules,
            vec![
                book(BookKind::Snapshot, 10, Some(100)),
                book(BookKind::Delta, 11, Some(101)),
            ],
        );
        assert_eq!(published[1].id.0, "v:l2_orderbook:X:h", "ids untouched");
        let mut out = Vec::new();
        k.snapshots(&venue, &rules, 500, Timestamp(0), &mut out);
        let s = snapshot_of(&out[0]);
        assert_eq!(
            (s.book.last_update_id, s.book.mark, s.sequence, s.depth),
            (Some(101), None, Some(SequenceRule::PrevMatches), Some(50))
        );
        assert_eq!(out[0].id.0, "v:l2_snapshot:X:101");
        // A gap: nothing until the book is synchronized again, then at once.
        feed(&mut k, &rules, vec![book(BookKind::Delta, 12, Some(105))]);
        k.snapshots(&venue, &rules, 1_000, Timestamp(0), &mut out);
        assert_eq!(out.len(), 1, "resyncing");
        feed(
            &mut k,
            &rules,
            vec![book(BookKind::Snapshot, 20, Some(200))],
        );
        k.snapshots(&venue, &rules, 1_100, Timestamp(0), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(snapshot_of(&out[1]).book.last_update_id, Some(200));
    }

    #[test]
    fn a_sequenced_book_without_ids_is_marked_and_an_unsynced_one_never_published() {
        let rules = BookRules {
            sequence: Some(SequenceRule::PrevMatches),
            ..Default::default()
        };
        let venue: Arc<str> = Arc::from("v");
        let mut k = BookKeeper::new();
        k.keep_snapshot(&rules, "X", Duration::from_secs(1));
        feed(&mut k, &rules, vec![book(BookKind::Delta, 11, None)]);
        let mut out = Vec::new();
        k.snapshots(&venue, &rules, 1_000, Timestamp(0), &mut out);
        assert!(out.is_empty(), "deltas without a snapshot are not a book");
        let published = feed(&mut k, &rules, vec![book(BookKind::Snapshot, 10, None)]);
        let Payload::Book(u) = &published[0].payload else {
            unreachable!()
        };
        assert_eq!(u.mark.map(|m| m.seq), Some(0));
        k.snapshots(&venue, &rules, 1_100, Timestamp(0), &mut out);
        assert_eq!(snapshot_of(&out[0]).book.mark, u.mark);
    }

    #[test]
    fn epochs_only_grow() {
        let t = Timestamp(5_000_000);
        let a = next_epoch(t);
        let b = next_epoch(t);
        assert!(b > a);
    }
}
