//! Book integrity per connection: checks each instrument's updates against
//! the venue's sequence rule and checksum, bootstraps delta-only feeds from
//! REST snapshots (buffering deltas meanwhile), and reports gaps so the
//! connection can resync that instrument only.
//!
//! - [`mod@self`]: the checks and the local books;
//! - `snapshots`: full-depth `l2_snapshot`s of those books, and the relay
//!   marks that position unsequenced books' events.

mod snapshots;

use std::sync::Arc;

use std::time::Duration;

use crate::domain::{
    BookKind, BookUpdate, DataType, Event, EventId, Instrument, Payload, Timestamp,
};
use crate::engine::book::{ChecksumMode, LocalBook, Scales, SequenceCheck};
use crate::engine::venue::{BookRules, FirstDelta, SnapshotAlign};

/// Most deltas buffered per instrument while a snapshot is awaited.
const MAX_BUFFERED: usize = 5_000;

/// What to do with the outcome of an update.
#[derive(Debug)]
pub enum Step {
    /// Publish the event.
    Publish(Event),
    /// A gap or checksum mismatch: publish a `gap` status and resync the
    /// instrument.
    Gap {
        /// The instrument.
        instrument: Arc<Instrument>,
        /// Why.
        reason: String,
    },
    /// A mismatch of a report-only checksum: count and log it; the book
    /// goes on.
    Mismatch {
        /// The instrument.
        instrument: Arc<Instrument>,
        /// Why.
        reason: String,
    },
    /// Book events that are not published, and why (counted, so that
    /// every event is accounted for).
    Dropped(BookDrop, u64),
}

/// Why the keeper did not publish a book event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookDrop {
    /// It cannot continue the book: received while resyncing, already
    /// contained in the snapshot, out of sequence, or pushed out of a full
    /// buffer while a snapshot is awaited.
    Resync,
    /// It carried only a checksum: checked, nothing to publish.
    ChecksumOnly,
}

/// A REST snapshot that cannot be used: fetch another.
#[derive(Debug, PartialEq, Eq)]
pub struct Refetch(pub String);

#[derive(Debug)]
enum State {
    Live,
    /// Waiting for a REST snapshot; deltas are buffered.
    Waiting(Vec<Event>),
    /// Waiting for the venue's next WebSocket snapshot; deltas are dropped.
    Resyncing,
}

#[derive(Debug)]
struct InstBook {
    state: State,
    last: Option<i64>,
    local: Option<LocalBook>,
    /// Set after a REST snapshot: its position (update id, or exchange
    /// time in nanoseconds) and how its first delta must line up with it
    /// (instead of the sequence rule).
    after_snapshot: Option<(i64, SnapshotAlign)>,
    /// The instrument's checksum number scales, once fetched.
    scales: Option<Scales>,
    /// Periodic top-N snapshots, when the subscription wants them.
    top: Option<Top>,
    /// Full-depth snapshots and relay marks, when the subscription wants them.
    snap: Option<snapshots::Snap>,
}

/// Top-N snapshot state of one instrument.
#[derive(Debug)]
struct Top {
    depth: usize,
    every_ms: i64,
    /// Whether the book changed since the last snapshot.
    changed: bool,
    /// The instrument (known from its first update).
    instrument: Option<Arc<Instrument>>,
}

/// Book state of one connection.
#[derive(Debug, Default)]
pub struct BookKeeper {
    books: foldhash::HashMap<String, InstBook>,
    scratch: Vec<u8>,
}

/// Whether a delta at `fu..=lu` may be the first after a snapshot at `id`
/// (positions as [`position`] gives them).
fn spans(align: SnapshotAlign, id: i64, fu: i64, lu: i64) -> bool {
    match align {
        SnapshotAlign::UpdateId(FirstDelta::SpansNext) => fu <= id + 1 && id < lu,
        SnapshotAlign::UpdateId(FirstDelta::Spans) => fu <= id && id <= lu,
        // Times cannot show a gap: any delta after the snapshot follows it.
        SnapshotAlign::Timestamp => id < lu,
    }
}

/// Whether a delta ending at `lu` is already contained in the snapshot at
/// `id`.
fn stale(align: SnapshotAlign, id: i64, lu: i64) -> bool {
    match align {
        SnapshotAlign::UpdateId(FirstDelta::SpansNext) => lu <= id,
        SnapshotAlign::UpdateId(FirstDelta::Spans) => lu < id,
        SnapshotAlign::Timestamp => lu <= id,
    }
}

/// Where an event sits for lining up with a snapshot: its update ids, or
/// (timestamp sync) its exchange time in nanoseconds as both ends. What is
/// unknown is open (`MIN` / `MAX`): such a delta is never taken for
/// contained in the snapshot.
fn position(e: &Event, align: SnapshotAlign) -> (Option<i64>, Option<i64>) {
    match align {
        SnapshotAlign::UpdateId(_) => ids(e),
        SnapshotAlign::Timestamp => {
            let t = e.exchange_time.map(|t| t.0);
            (t, t)
        }
    }
}

fn ids(e: &Event) -> (Option<i64>, Option<i64>) {
    match &e.payload {
        Payload::Book(u) => (u.first_update_id, u.last_update_id),
        _ => (None, None),
    }
}

impl BookKeeper {
    /// A keeper with no instruments yet.
    pub fn new() -> Self {
        BookKeeper {
            // Room for the longest checksum string of the shipped venues
            // (OKX: 25 levels a side), so it never grows on the hot path.
            scratch: Vec::with_capacity(4096),
            ..Self::default()
        }
    }

    /// The instrument's state, created on first use (the key is copied
    /// only then: steady-state updates allocate nothing here).
    fn entry(&mut self, rules: &BookRules, key: &str) -> &mut InstBook {
        if !self.books.contains_key(key) {
            self.books.insert(
                key.to_owned(),
                InstBook {
                    state: State::Live,
                    last: None,
                    local: rules.checksum.as_ref().map(|_| LocalBook::new()),
                    after_snapshot: None,
                    scales: None,
                    top: None,
                    snap: None,
                },
            );
        }
        self.books.get_mut(key).expect("inserted above")
    }

    /// Start buffering an instrument's deltas until its REST snapshot
    /// (what was buffered before is dropped: the number is returned).
    pub fn await_snapshot(&mut self, rules: &BookRules, instrument: &str) -> u64 {
        let b = self.entry(rules, instrument);
        let old = std::mem::replace(&mut b.state, State::Waiting(Vec::new()));
        b.last = None;
        b.after_snapshot = None;
        match old {
            State::Waiting(buf) => buf.len() as u64,
            _ => 0,
        }
    }

    /// Stop keeping an instrument's book (it was unsubscribed); returns the
    /// book events it still held back.
    pub fn forget(&mut self, instrument: &str) -> u64 {
        match self.books.remove(instrument).map(|b| b.state) {
            Some(State::Waiting(buf)) => buf.len() as u64,
            _ => 0,
        }
    }

    /// Book events held back (buffered until a snapshot): when the
    /// connection ends, they are dropped.
    pub fn held(&self) -> u64 {
        self.books
            .values()
            .map(|b| match &b.state {
                State::Waiting(buf) => buf.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// The instrument's checksum number scales arrived: checksums are
    /// verified from now on (venues with `[book.checksum.scales]` skip the
    /// check until then, rather than flag every update).
    pub fn set_scales(&mut self, rules: &BookRules, instrument: &str, scales: Scales) {
        self.entry(rules, instrument).scales = Some(scales);
    }

    /// Maintain the instrument's book and offer it as top-`depth`
    /// snapshots every `every` (see [`BookKeeper::tops`]).
    pub fn keep_top(&mut self, rules: &BookRules, instrument: &str, depth: usize, every: Duration) {
        let b = self.entry(rules, instrument);
        b.local.get_or_insert_with(LocalBook::new);
        b.top = Some(Top {
            depth,
            every_ms: i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1),
            changed: false,
            instrument: None,
        });
    }

    /// Whether any instrument wants top-N snapshots.
    pub fn has_tops(&self) -> bool {
        self.books.values().any(|b| b.top.is_some())
    }

    /// The top-N snapshots due at wall-clock time `boundary_ms` (a multiple
    /// of the timer period): for each instrument whose interval divides it,
    /// whose book is live and changed since its last snapshot. The id's key
    /// is the boundary, so relays running side by side publish the same ids.
    pub fn tops(
        &mut self,
        venue: &Arc<str>,
        boundary_ms: i64,
        now: Timestamp,
        out: &mut Vec<Event>,
    ) {
        for (key, b) in &mut self.books {
            let (Some(top), Some(local), State::Live) = (&mut b.top, &b.local, &b.state) else {
                continue;
            };
            if !top.changed || boundary_ms % top.every_ms != 0 || local.is_empty() {
                continue;
            }
            let Some(instrument) = top.instrument.clone() else {
                continue;
            };
            top.changed = false;
            let (bids, asks) = local.top(top.depth);
            out.push(Event {
                id: EventId::new(venue, DataType::L2Top, key, &boundary_ms.to_string()),
                venue: venue.clone(),
                instrument,
                exchange_time: None,
                receive_time: now,
                payload: Payload::BookTop(BookUpdate {
                    kind: BookKind::Snapshot,
                    bids,
                    asks,
                    first_update_id: None,
                    last_update_id: b.last,
                    prev_update_id: None,
                    checksum: None,
                    mark: None,
                }),
            });
        }
    }

    /// Whether the instrument is waiting for a snapshot.
    pub fn waiting(&self, instrument: &str) -> bool {
        self.books
            .get(instrument)
            .is_some_and(|b| matches!(b.state, State::Waiting(_)))
    }

    /// Handle a book event from the socket.
    pub fn on_update(&mut self, rules: &BookRules, ev: Event, out: &mut Vec<Step>) {
        // The instrument is shared: a reference count, not a copy of its name.
        let inst = ev.instrument.clone();
        let key = inst.venue_instrument.as_str();
        let is_snapshot = matches!(&ev.payload, Payload::Book(u) if u.kind == BookKind::Snapshot);
        let b = self.entry(rules, key);
        match &mut b.state {
            State::Waiting(buffer) if !(is_snapshot && rules.snapshot.is_none()) => {
                if buffer.len() >= MAX_BUFFERED {
                    buffer.remove(0);
                    out.push(Step::Dropped(BookDrop::Resync, 1));
                }
                buffer.push(ev);
                return;
            }
            State::Resyncing if !is_snapshot => {
                out.push(Step::Dropped(BookDrop::Resync, 1));
                return;
            }
            _ => {}
        }
        self.apply(rules, key, ev, out);
    }

    fn apply(&mut self, rules: &BookRules, key: &str, ev: Event, out: &mut Vec<Step>) {
        let Self { books, scratch } = self;
        let b = books.get_mut(key).expect("entry exists");
        let Payload::Book(u) = &ev.payload else {
            out.push(Step::Publish(ev));
            return;
        };
        if u.kind == BookKind::Delta
            && let Some((id, first_rule)) = b.after_snapshot
        {
            let (fu, lu) = position(&ev, first_rule);
            let (fu, lu) = (fu.unwrap_or(i64::MIN), lu.unwrap_or(i64::MAX));
            if stale(first_rule, id, lu) {
                out.push(Step::Dropped(BookDrop::Resync, 1));
                return;
            }
            if !spans(first_rule, id, fu, lu) {
                let reason = format!("first delta {fu}..{lu} does not follow snapshot {id}");
                Self::gap(b, rules, ev.instrument.clone(), reason, out);
                out.push(Step::Dropped(BookDrop::Resync, 1));
                return;
            }
            b.after_snapshot = None;
        } else if let Some(rule) = rules.sequence {
            match rule.check(b.last, u) {
                SequenceCheck::Ok => {}
                SequenceCheck::Stale => {
                    out.push(Step::Dropped(BookDrop::Resync, 1));
                    return;
                }
                SequenceCheck::Gap(reason) => {
                    Self::gap(b, rules, ev.instrument.clone(), reason, out);
                    out.push(Step::Dropped(BookDrop::Resync, 1));
                    return;
                }
            }
        }
        if u.kind == BookKind::Snapshot {
            b.state = State::Live;
        }
        if let Some(local) = b.local.as_mut() {
            local.apply(u, rules.depth);
            if let (Some(spec), Some(want)) = (&rules.checksum, u.checksum)
                && !(spec.zero_means_absent && want == 0)
                && (rules.scales.is_none() || b.scales.is_some())
            {
                let got = spec.compute(local, b.scales, scratch);
                if got != want {
                    let reason = format!("checksum mismatch: venue {want}, book {got}");
                    let instrument = ev.instrument.clone();
                    if spec.mode == ChecksumMode::Report {
                        out.push(Step::Mismatch { instrument, reason });
                    } else {
                        Self::gap(b, rules, instrument, reason, out);
                        out.push(Step::Dropped(BookDrop::Resync, 1));
                        return;
                    }
                }
            }
        }
        // A frame carrying only a checksum (no levels, update ids or time)
        // has been checked: there is nothing in it for a consumer.
        if u.kind == BookKind::Delta
            && ev.exchange_time.is_none()
            && u.checksum.is_some()
            && u.bids.is_empty()
            && u.asks.is_empty()
            && u.first_update_id.is_none()
            && u.last_update_id.is_none()
        {
            out.push(Step::Dropped(BookDrop::ChecksumOnly, 1));
            return;
        }
        if u.last_update_id.is_some() {
            b.last = u.last_update_id;
        }
        if let Some(top) = b.top.as_mut() {
            top.changed = true;
            if top.instrument.is_none() {
                top.instrument = Some(ev.instrument.clone());
            }
        }
        if let Some(snap) = b.snap.as_mut() {
            snap.applied(&ev.instrument, u.kind);
        }
        out.push(Step::Publish(ev));
    }

    fn gap(
        b: &mut InstBook,
        rules: &BookRules,
        instrument: Arc<Instrument>,
        reason: String,
        out: &mut Vec<Step>,
    ) {
        b.state = if rules.snapshot.is_some() {
            State::Waiting(Vec::new())
        } else {
            State::Resyncing
        };
        b.last = None;
        b.after_snapshot = None;
        if let Some(l) = b.local.as_mut() {
            *l = LocalBook::new();
        }
        if let Some(snap) = b.snap.as_mut() {
            snap.reset();
        }
        out.push(Step::Gap { instrument, reason });
    }

    /// A REST snapshot arrived for its instrument: publish it, then the
    /// buffered deltas that follow it. Deltas arriving later are checked
    /// against it until the first one that follows it.
    pub fn on_rest_snapshot(
        &mut self,
        rules: &BookRules,
        snap: Event,
        out: &mut Vec<Step>,
    ) -> Result<(), Refetch> {
        let key = snap.instrument.venue_instrument.clone();
        let first_rule = rules
            .snapshot
            .as_ref()
            .map_or(SnapshotAlign::UpdateId(FirstDelta::SpansNext), |s| s.align);
        let Some(id) = position(&snap, first_rule).1 else {
            return Err(Refetch(match first_rule {
                SnapshotAlign::UpdateId(_) => "snapshot without last_update_id".into(),
                SnapshotAlign::Timestamp => "snapshot without a time (sync = \"timestamp\")".into(),
            }));
        };
        let b = self.entry(rules, &key);
        let buffer = match std::mem::replace(&mut b.state, State::Live) {
            State::Waiting(buf) => buf,
            other => {
                b.state = other;
                Vec::new()
            }
        };
        let buffered = buffer.len();
        let pending: Vec<Event> = buffer
            .into_iter()
            .filter(|e| {
                position(e, first_rule)
                    .1
                    .is_none_or(|u| !stale(first_rule, id, u))
            })
            .collect();
        let contained = (buffered - pending.len()) as u64;
        if contained > 0 {
            out.push(Step::Dropped(BookDrop::Resync, contained));
        }
        if let Some(first) = pending.first() {
            let (fu, lu) = position(first, first_rule);
            let (fu, lu) = (fu.unwrap_or(i64::MIN), lu.unwrap_or(i64::MAX));
            if !spans(first_rule, id, fu, lu) {
                self.entry(rules, &key).state = State::Waiting(pending);
                return Err(Refetch(format!(
                    "snapshot {id} does not reach the buffered deltas (first {fu}..{lu})"
                )));
            }
        }
        let b = self.entry(rules, &key);
        b.last = None;
        b.after_snapshot = None;
        self.apply(rules, &key, snap, out);
        if let Some(b) = self.books.get_mut(&key) {
            b.after_snapshot = Some((id, first_rule));
        }
        for ev in pending {
            if let Some(State::Waiting(buf)) = self.books.get_mut(&key).map(|b| &mut b.state) {
                // A gap inside the buffer: keep the rest for the next snapshot.
                buf.push(ev);
                continue;
            }
            self.apply(rules, &key, ev, out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
