//! The planned, overlapping reconnect ("handover").
//!
//! Before a venue's maximum connection lifetime runs out (and when a reload
//! changes the connection settings), the old session opens a successor
//! connection and keeps streaming while the successor connects and
//! subscribes. Both sockets then carry the same market data for a moment:
//!
//! - trades, tickers, funding and liquidations are published from both.
//!   Their ids are deterministic, so JetStream's duplicate window stores each
//!   once and nothing received by either socket is lost;
//! - order-book events of the successor are held back ([`Gate`]) until the
//!   old session has stopped, because two interleaved delta streams would
//!   corrupt a consumer's book. The old session then reports, per
//!   instrument, the last book update id it published ([`Published`]), and
//!   the successor releases its held events so that the book stream
//!   continues without a hole and without a repeat:
//!   - with a `[book] sequence` rule (ids comparable across connections),
//!     events the old session already covered (`last_update_id <=` its last)
//!     are dropped, here and afterwards, until the successor passes it;
//!   - without one, the successor's events are released from its latest
//!     snapshot on, with ids marked as the handover's so that JetStream does
//!     not drop the deltas the old session also sent: a consumer resets to
//!     that snapshot and replays them.
//!
//! The successor is ready to take over once it has received market data and
//! holds a book snapshot for every book instrument (or after
//! [`READY_FALLBACK`] of data without one).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use crate::domain::{BookKind, Event, EventId, Payload};

/// Longest the successor waits for book snapshots after its first data
/// frame before taking over anyway.
pub const READY_FALLBACK: Duration = Duration::from_secs(10);

/// After a failed successor, the wait before the next attempt.
pub const RETRY: Duration = Duration::from_secs(5);

/// When the successor is ready, the old session first reads what its socket
/// already holds (frames the venue sent it before the successor existed
/// could otherwise be lost with it): until no frame comes for
/// [`DRAIN_IDLE`], at most [`DRAIN_MAX`].
pub const DRAIN_IDLE: Duration = Duration::from_millis(20);
/// See [`DRAIN_IDLE`].
pub const DRAIN_MAX: Duration = Duration::from_millis(250);

/// Most book events the successor holds per connection; beyond it the
/// oldest are dropped and their instruments resynced after the takeover.
const MAX_HELD: usize = 100_000;

/// What the old session published last, per venue instrument: the last
/// book update id, or `None` when its book events carry none.
pub type Published = foldhash::HashMap<String, Option<i64>>;

/// Record a published book event (old-session side).
pub fn record(published: &mut Published, ev: &Event) {
    let Payload::Book(b) = &ev.payload else {
        return;
    };
    let id = b.last_update_id;
    match published.get_mut(ev.instrument.venue_instrument.as_str()) {
        Some(v) => *v = id.or(*v),
        None => {
            published.insert(ev.instrument.venue_instrument.clone(), id);
        }
    }
}

/// The successor's book events held until the old session has stopped,
/// and, after the takeover, the update ids still to be passed.
#[derive(Debug, Default)]
pub struct Gate {
    held: VecDeque<Event>,
    /// Instruments with a snapshot among the held events (checked after
    /// every frame of the successor, so kept rather than searched).
    snapshots: HashSet<String>,
    /// Instruments whose oldest held events were dropped (buffer full).
    overflowed: Vec<String>,
    /// After the takeover (sequenced venues): per instrument, the old
    /// session's last update id; events up to it are dropped.
    covered: HashMap<String, i64>,
}

/// The outcome of the takeover for the successor.
#[derive(Debug, Default)]
pub struct Release {
    /// Book events to publish now, in order.
    pub events: Vec<Event>,
    /// Instruments to resync (their held events could not be used).
    pub resync: Vec<String>,
    /// Held events not released (the old session covered them, or they
    /// could not continue the book).
    pub dropped: u64,
}

impl Gate {
    /// An empty gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hold a book event until the takeover. Returns whether the oldest
    /// held event was dropped to make room.
    pub fn hold(&mut self, ev: Event) -> bool {
        let mut overflow = false;
        if self.held.len() >= MAX_HELD
            && let Some(old) = self.held.pop_front()
        {
            overflow = true;
            let name = old.instrument.venue_instrument.clone();
            if !self.overflowed.contains(&name) {
                self.overflowed.push(name);
            }
        }
        if is_snapshot(&ev) && !self.snapshots.contains(&ev.instrument.venue_instrument) {
            self.snapshots
                .insert(ev.instrument.venue_instrument.clone());
        }
        self.held.push_back(ev);
        overflow
    }

    /// Whether a book snapshot is held for `instrument`.
    pub fn has_snapshot(&self, instrument: &str) -> bool {
        self.snapshots.contains(instrument)
    }

    /// Number of held events.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The old session stopped after publishing `published`: release the
    /// held events. `sequenced`: the venue declares a `[book] sequence` rule,
    /// so update ids are comparable across connections. `mark` tags the ids
    /// of events the old session may also have sent (unsequenced venues).
    pub fn release(&mut self, published: &Published, sequenced: bool, mark: &str) -> Release {
        let mut out = self.release_held(published, sequenced, mark);
        out.dropped = out.dropped.saturating_sub(out.events.len() as u64);
        out
    }

    fn release_held(&mut self, published: &Published, sequenced: bool, mark: &str) -> Release {
        let held = std::mem::take(&mut self.held);
        let total = held.len() as u64;
        self.snapshots.clear();
        let mut out = Release {
            resync: std::mem::take(&mut self.overflowed),
            dropped: total,
            ..Release::default()
        };
        if sequenced {
            for (name, id) in published {
                if let Some(id) = id {
                    self.covered.insert(name.clone(), *id);
                }
            }
            out.events = held
                .into_iter()
                .filter(|e| !out.resync.contains(&e.instrument.venue_instrument))
                .filter(|e| self.admit(e))
                .collect();
            return out;
        }
        // Unsequenced: from each instrument's latest held snapshot on.
        let mut start: HashMap<&str, usize> = HashMap::new();
        for (i, e) in held.iter().enumerate() {
            if is_snapshot(e) {
                start.insert(e.instrument.venue_instrument.as_str(), i);
            }
        }
        let mut keep = vec![false; held.len()];
        let mut no_base: Vec<String> = Vec::new();
        for (i, e) in held.iter().enumerate() {
            let name = e.instrument.venue_instrument.as_str();
            if out.resync.iter().any(|r| r == name) {
                continue;
            }
            match start.get(name) {
                Some(&s) => keep[i] = i >= s,
                // Deltas without a base: usable only when the old session
                // published nothing for the instrument.
                None if !published.contains_key(name) => keep[i] = true,
                None => {
                    if !no_base.iter().any(|n| n == name) {
                        no_base.push(name.to_owned());
                    }
                }
            }
        }
        out.resync.extend(no_base);
        out.events = held
            .into_iter()
            .zip(keep)
            .filter_map(|(mut e, k)| {
                if !k {
                    return None;
                }
                if published.contains_key(e.instrument.venue_instrument.as_str()) {
                    e.id = EventId(format!("{}~{mark}", e.id.as_str()));
                }
                Some(e)
            })
            .collect();
        out
    }

    /// After the takeover: whether a book event may be published (it is not
    /// covered by what the old session published).
    pub fn admit(&mut self, ev: &Event) -> bool {
        if self.covered.is_empty() {
            return true;
        }
        let name = ev.instrument.venue_instrument.as_str();
        let Some(&covered) = self.covered.get(name) else {
            return true;
        };
        let id = match &ev.payload {
            Payload::Book(b) => b.last_update_id,
            _ => None,
        };
        match id {
            Some(id) if id <= covered => false,
            _ => {
                self.covered.remove(name);
                true
            }
        }
    }
}

fn is_snapshot(e: &Event) -> bool {
    matches!(&e.payload, Payload::Book(b) if b.kind == BookKind::Snapshot)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::{BookUpdate, Instrument, Timestamp};

    fn book(inst: &str, kind: BookKind, id: Option<i64>) -> Event {
        let key = match id {
            Some(i) => format!("{kind:?}:{i}"),
            None => format!("{kind:?}:h"),
        };
        Event {
            venue: Arc::from("v"),
            instrument: Arc::new(Instrument::new(inst, "A/B")),
            exchange_time: None,
            receive_time: Timestamp(0),
            id: EventId::new("v", crate::domain::DataType::L2Orderbook, inst, &key),
            payload: Payload::Book(BookUpdate {
                kind,
                bids: vec![],
                asks: vec![],
                first_update_id: id,
                last_update_id: id,
                prev_update_id: None,
                checksum: None,
                mark: None,
            }),
        }
    }

    fn ids(evs: &[Event]) -> Vec<String> {
        evs.iter()
            .map(|e| match &e.payload {
                Payload::Book(b) => format!(
                    "{}:{:?}:{}",
                    e.instrument.venue_instrument,
                    b.kind,
                    b.last_update_id.map_or("-".into(), |i| i.to_string())
                ),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn sequenced_books_continue_after_the_old_sessions_last_id() {
        let mut g = Gate::new();
        g.hold(book("X", BookKind::Snapshot, Some(100)));
        for i in 101..=106 {
            g.hold(book("X", BookKind::Delta, Some(i)));
        }
        g.hold(book("Y", BookKind::Snapshot, Some(50)));
        let mut published = Published::default();
        record(&mut published, &book("X", BookKind::Delta, Some(103)));
        let r = g.release(&published, true, "1");
        // X: the old session covered up to 103; Y: it published nothing.
        assert_eq!(
            ids(&r.events),
            vec!["X:Delta:104", "X:Delta:105", "X:Delta:106", "Y:Snapshot:50"]
        );
        assert!(r.resync.is_empty());
        assert!(r.events.iter().all(|e| !e.id.as_str().contains('~')));
        // Later events: the covered mark is gone once passed.
        assert!(g.admit(&book("X", BookKind::Delta, Some(107))));
    }

    #[test]
    fn a_successor_behind_the_old_session_waits_until_it_passes() {
        let mut g = Gate::new();
        g.hold(book("X", BookKind::Snapshot, Some(100)));
        g.hold(book("X", BookKind::Delta, Some(101)));
        let mut published = Published::default();
        record(&mut published, &book("X", BookKind::Delta, Some(104)));
        let r = g.release(&published, true, "1");
        assert!(r.events.is_empty());
        assert!(!g.admit(&book("X", BookKind::Delta, Some(103))));
        assert!(!g.admit(&book("X", BookKind::Delta, Some(104))));
        assert!(g.admit(&book("X", BookKind::Delta, Some(105))));
        assert!(g.admit(&book("X", BookKind::Delta, Some(106))));
    }

    #[test]
    fn a_successor_ahead_of_the_old_session_publishes_its_snapshot() {
        let mut g = Gate::new();
        g.hold(book("X", BookKind::Snapshot, Some(200)));
        g.hold(book("X", BookKind::Delta, Some(201)));
        let mut published = Published::default();
        record(&mut published, &book("X", BookKind::Delta, Some(150)));
        let r = g.release(&published, true, "1");
        assert_eq!(ids(&r.events), vec!["X:Snapshot:200", "X:Delta:201"]);
    }

    #[test]
    fn unsequenced_books_replay_from_the_latest_snapshot_under_new_ids() {
        let mut g = Gate::new();
        g.hold(book("X", BookKind::Delta, None));
        g.hold(book("X", BookKind::Snapshot, None));
        g.hold(book("X", BookKind::Delta, None));
        g.hold(book("Y", BookKind::Delta, None));
        g.hold(book("Z", BookKind::Snapshot, None));
        let mut published = Published::default();
        record(&mut published, &book("X", BookKind::Delta, None));
        record(&mut published, &book("Y", BookKind::Delta, None));
        let r = g.release(&published, false, "7");
        assert_eq!(
            ids(&r.events),
            vec!["X:Snapshot:-", "X:Delta:-", "Z:Snapshot:-"]
        );
        // X was published by the old session: its replay gets marked ids so
        // JetStream keeps it; Z was not: its ids stay as they are.
        assert!(r.events[0].id.as_str().ends_with("~7"));
        assert!(r.events[1].id.as_str().ends_with("~7"));
        assert!(!r.events[2].id.as_str().contains('~'));
        // Y: deltas with no snapshot to start from, after the old session's
        // own Y events: only a resync can make it whole.
        assert_eq!(r.resync, vec!["Y".to_owned()]);
    }

    #[test]
    fn overflowing_instruments_are_resynced_not_released() {
        let mut g = Gate::new();
        g.hold(book("X", BookKind::Snapshot, Some(1)));
        for i in 0..MAX_HELD as i64 {
            g.hold(book("Y", BookKind::Delta, Some(i)));
        }
        assert_eq!(g.len(), MAX_HELD);
        let r = g.release(&Published::default(), true, "1");
        assert_eq!(r.resync, vec!["X".to_owned()]);
        assert_eq!(r.events.len(), MAX_HELD);
    }

    #[test]
    fn snapshots_are_found_per_instrument() {
        let mut g = Gate::new();
        assert!(g.is_empty());
        g.hold(book("X", BookKind::Delta, Some(1)));
        g.hold(book("Y", BookKind::Snapshot, Some(1)));
        assert!(!g.has_snapshot("X"));
        assert!(g.has_snapshot("Y"));
    }
}
