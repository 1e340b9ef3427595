//! The per-frame pipeline: synchronous, no I/O. A frame goes in; what to
//! publish, what to send to the venue, what to fetch and whether the
//! session must end come out as [`Effects`], which the socket loop
//! (`session`) then carries out.
//!
//! map (`engine::mapper`) → filter (subscribed types and instruments) →
//! book keeper (sequence, checksum, snapshots) → handover gate → encode.
//!
//! Because nothing here awaits, the whole path of a frame can be tested
//! with frames in and messages out, without sockets (see the tests below).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::error::SessionError;
use super::fetch::Fetch;
use super::handover::{self, Gate, Published};
use super::{Connection, Counters};
use crate::application::health::{ConnReporter, VenueError};
use crate::application::liveness::InstrumentTable;
use crate::application::metrics::{DropCause, VenueKindLabel};
use crate::application::pipeline::Outgoing;
use crate::application::status;
use crate::application::subscribe::ConnPlan;
use crate::domain::{DataType, Event, StatusState, Timestamp};
use crate::engine::book::{BookDrop, BookKeeper, Step};
use crate::engine::mapper::{ControlInfo, MapError, Mapper, Outcome, RawFrame};
use crate::engine::venue::{ControlKind, Venue};
use crate::infrastructure::logs::{clip, truncate};

/// A REST request the loop should make for an instrument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FetchRequest {
    /// What it is for.
    pub what: Fetch,
    /// The venue instrument.
    pub instrument: String,
    /// The full URL.
    pub url: String,
    /// Wait this long first.
    pub delay: Duration,
}

/// What the pipeline asks the socket loop to do.
#[derive(Debug, Default)]
pub(super) struct Effects {
    /// Encoded events for the queues, in order.
    pub publish: Vec<Outgoing>,
    /// Text messages for the venue, in order (control replies, resync
    /// subscriptions).
    pub send: Vec<String>,
    /// REST requests to make.
    pub fetch: Vec<FetchRequest>,
    /// The session must end.
    pub end: Option<SessionError>,
    /// A planned handover is wanted (the venue asked for a reconnect).
    pub handover: Option<String>,
}

impl Effects {
    /// End the session (the first reason given wins).
    pub(super) fn end(&mut self, e: SessionError) {
        self.end.get_or_insert(e);
    }
}

/// The per-connection state the pipeline keeps between frames.
pub(super) struct FramePipeline<'c> {
    pub(super) conn: &'c Connection,
    pub(super) counters: &'c Counters,
    pub(super) reporter: &'c ConnReporter,
    /// What the connection subscribes to (replaced when its instruments
    /// change).
    pub(super) plan: Arc<ConnPlan>,
    /// The connection's instruments: last event per type, book state.
    pub(super) live: Arc<InstrumentTable>,
    /// The current venue definition.
    pub(super) venue: Arc<Venue>,
    pub(super) mapper: Mapper,
    pub(super) books: BookKeeper,
    /// While a successor has not taken over: book events are held.
    pub(super) holding: bool,
    /// A successor's book gate (held events, then ids still covered).
    gate: Option<Gate>,
    /// The last book update published per instrument (for a handover).
    pub(super) published: Published,
    /// When subscribe messages went out with no ack or data since
    /// (venues with `ack` rules only).
    pub(super) awaiting_ack: Option<Instant>,
    /// When the first market data arrived.
    pub(super) first_data: Option<Instant>,
    /// When the oldest unanswered ping went out (venues with a
    /// `pong_timeout`).
    pub(super) awaiting_pong: Option<Instant>,
    /// The request id of the next message sent after the subscribe (a
    /// resync, an instrument added): above the subscribe's own.
    pub(super) next_request_id: u64,
    events: Vec<Event>,
    pub(super) steps: Vec<Step>,
    /// The subjects of the connection's events, built once each.
    subjects: crate::application::pipeline::Subjects,
}

impl<'c> FramePipeline<'c> {
    /// The pipeline of a new session (`successor`: a handover's new
    /// connection, holding its book events until it takes over).
    pub(super) fn new(
        conn: &'c Connection,
        counters: &'c Counters,
        reporter: &'c ConnReporter,
        (plan, live): (Arc<ConnPlan>, Arc<InstrumentTable>),
        venue: Arc<Venue>,
        successor: bool,
    ) -> Self {
        FramePipeline {
            mapper: Mapper::new(
                conn.venue_id.clone(),
                plan.market.clone(),
                plan.pinned.clone(),
            ),
            conn,
            counters,
            reporter,
            plan,
            live,
            next_request_id: 1_000_000,
            venue,
            books: BookKeeper::new(),
            holding: successor,
            gate: successor.then(Gate::new),
            published: Published::default(),
            awaiting_ack: None,
            first_data: None,
            awaiting_pong: None,
            events: Vec::new(),
            steps: Vec::new(),
            subjects: Default::default(),
        }
    }

    /// One frame from the socket, received at `now` / `received`.
    pub(super) fn frame(
        &mut self,
        frame: RawFrame<'_>,
        now: Timestamp,
        received: Instant,
        fx: &mut Effects,
    ) {
        let c = self.counters;
        c.frames.inc();
        c.bytes.inc_by(frame.len() as u64);
        self.events.clear();
        let venue = self.venue.clone();
        let result = self.mapper.map(&venue, frame, now, &mut self.events);
        c.fallbacks.inc_by(self.mapper.take_eval_stats().fallbacks);
        self.mapped(result, &venue, &frame, received, fx);
        if let Some(gap) = self.mapper.take_gap() {
            // The frame's own events went out above; what was lost before
            // it can only be recovered by starting over.
            let reason = gap.to_string();
            c.gaps.inc();
            self.status(StatusState::Gap, &reason, fx);
            fx.end(SessionError::SequenceGap(reason));
        }
    }

    fn mapped(
        &mut self,
        result: Result<Outcome, MapError>,
        venue: &Arc<Venue>,
        frame: &RawFrame<'_>,
        received: Instant,
        fx: &mut Effects,
    ) {
        let c = self.counters;
        match result {
            Ok(Outcome::Data { .. }) => {
                c.data_frames.inc();
                self.awaiting_ack = None;
                self.first_data.get_or_insert_with(Instant::now);
                let mut events = std::mem::take(&mut self.events);
                for ev in events.drain(..) {
                    self.event(ev, venue, received, fx);
                }
                self.events = events;
                if !self.steps.is_empty() {
                    self.steps(received, fx);
                }
            }
            Ok(Outcome::Control(info)) => self.control(info, fx),
            Ok(Outcome::Unrouted) => {
                c.unrouted.inc();
                debug!(venue = %self.conn.venue_id, frame = truncate(frame_text(frame), 200), "unrouted frame");
            }
            Err(e) => {
                c.failures.inc();
                if let Some(suppressed) = c.log("frame skipped") {
                    warn!(venue = %self.conn.venue_id, conn = self.conn.index, error = %e, frame = truncate(frame_text(frame), 200), suppressed, "frame skipped (counted in mdrelay_mapping_failures_total)");
                }
            }
        }
    }

    /// One mapped event: counted, filtered, then to the book keeper or out.
    fn event(&mut self, ev: Event, venue: &Venue, received: Instant, fx: &mut Effects) {
        let c = self.counters;
        let t = ev.data_type();
        c.mapped.get(t).inc();
        if let Some(at) = ev.exchange_time {
            // A venue clock ahead of ours reads as no lag.
            let lag = (ev.receive_time.0 - at.0).max(0);
            c.lag.get(t).observe(lag as f64 / 1e9);
        }
        if !self.plan.types.contains(&t) {
            c.unsubscribed.get(t).inc();
            return;
        }
        let name = ev.instrument.venue_instrument.as_str();
        // The instrument table holds exactly the subscribed instruments.
        let slot = self.live.index(name);
        if slot.is_none() && !venue.channels.get(&t).is_some_and(|ch| ch.any_instrument) {
            c.unsubscribed.get(t).inc();
            if let Some(suppressed) = c.log("unsubscribed instrument") {
                warn!(venue = %self.conn.venue_id, conn = self.conn.index, instrument = %clip(name), data_type = %t, suppressed, "event of an instrument this connection did not subscribe: not published (dropped, cause unsubscribed; a channel subscribed by something broader than an instrument declares instruments = \"any\")");
            }
            return;
        }
        if let Some(slot) = slot
            && self.live.seen_at(slot, t, ev.receive_time)
        {
            self.came_back(slot, t, fx);
        }
        let keeps_books = venue.book.active()
            || !self.plan.book_tops.is_empty()
            || !self.plan.book_snapshots.is_empty();
        if keeps_books && t == DataType::L2Orderbook {
            self.books.on_update(&venue.book, ev, &mut self.steps);
        } else {
            self.publish(ev, received, fx);
        }
    }

    fn control(&mut self, info: ControlInfo, fx: &mut Effects) {
        self.conn
            .metrics
            .control_frames
            .get_or_create(&VenueKindLabel {
                venue: self.conn.venue_id.to_string(),
                kind: info.kind.as_str().into(),
            })
            .inc();
        match info.kind {
            ControlKind::Ack => {
                self.awaiting_ack = None;
                self.reporter.update(|s| s.subscriptions_acked += 1)
            }
            ControlKind::Error => {
                self.counters.rejected.inc();
                let msg = info.message.clone().unwrap_or_else(|| "error".into());
                if let Some(suppressed) = self.counters.log("venue error") {
                    warn!(venue = %self.conn.venue_id, conn = self.conn.index, error = %clip(&msg), suppressed, "venue reported an error");
                }
                let error = VenueError {
                    at_ms: Timestamp::now().as_millis(),
                    message: clip(&msg).into_owned(),
                };
                self.reporter.update(|s| {
                    s.subscriptions_rejected.push(error);
                    if s.subscriptions_rejected.len() > 20 {
                        s.subscriptions_rejected.remove(0);
                    }
                });
            }
            ControlKind::Pong => self.awaiting_pong = None,
            ControlKind::Reconnect => {
                let why = info
                    .message
                    .as_deref()
                    .map_or("the venue asked for a reconnect".to_owned(), |m| {
                        format!("the venue asked for a reconnect: {}", clip(m))
                    });
                fx.handover.get_or_insert(why);
            }
            _ => {}
        }
        if let Some(reply) = info.reply {
            fx.send.push(reply);
        }
    }

    /// Carry out the book keeper's steps.
    pub(super) fn steps(&mut self, received: Instant, fx: &mut Effects) {
        let steps = std::mem::take(&mut self.steps);
        for step in steps {
            match step {
                Step::Publish(ev) => self.publish(ev, received, fx),
                Step::Dropped(why, n) => {
                    let c = match why {
                        BookDrop::Resync => &self.counters.book_resync,
                        BookDrop::ChecksumOnly => &self.counters.checksum_only,
                    };
                    c.get(DataType::L2Orderbook).inc_by(n);
                }
                Step::Gap { instrument, reason } => self.gap(instrument, reason, fx),
                Step::Mismatch { instrument, reason } => {
                    // Logged at the 1st, 2nd, 4th, 8th... so a wrong spec
                    // cannot flood the log; the metric counts every one.
                    let n = self.counters.mismatches.inc() + 1;
                    if n.is_power_of_two() {
                        warn!(venue = %self.conn.venue_id, instrument = %instrument.venue_instrument, %reason, mismatches = n, "book checksum mismatch (report-only checksum: no resync)");
                    }
                }
            }
        }
    }

    /// An event on its way out: book events of a successor that has not
    /// taken over are held; after the takeover, those the old session
    /// already covered are dropped. Then encoded for the queues.
    pub(super) fn publish(&mut self, mut ev: Event, received: Instant, fx: &mut Effects) {
        if ev.data_type() == DataType::L2Orderbook {
            if let Some(gate) = self.gate.as_mut() {
                if self.holding {
                    if gate.hold(ev) {
                        self.counters
                            .handover_covered
                            .get(DataType::L2Orderbook)
                            .inc();
                    }
                    return;
                }
                if !gate.admit(&ev) {
                    self.counters
                        .handover_covered
                        .get(DataType::L2Orderbook)
                        .inc();
                    return;
                }
            }
            handover::record(&mut self.published, &ev);
            self.books.stamp(&mut ev);
            if let crate::domain::Payload::Book(b) = &ev.payload {
                self.live.book_published(
                    &ev.instrument.venue_instrument,
                    b.last_update_id,
                    ev.receive_time,
                );
            }
        }
        let subject = self.subjects.of(&ev);
        fx.publish
            .push(Outgoing::encode_to(ev, subject, self.conn.format, received));
    }

    /// A status event for every instrument of the connection.
    pub(super) fn status(&mut self, state: StatusState, reason: &str, fx: &mut Effects) {
        let plan = self.plan.clone();
        for name in &plan.instruments {
            self.instrument_status(name, state, reason, fx);
        }
    }

    /// A status event for one instrument (by its venue name).
    pub(super) fn instrument_status(
        &mut self,
        name: &str,
        state: StatusState,
        reason: &str,
        fx: &mut Effects,
    ) {
        let inst = self.mapper.resolve_symbol(&self.venue, name);
        self.status_of(inst, state, reason, fx);
    }

    /// A status event for one instrument: counted, encoded, queued.
    pub(super) fn status_of(
        &mut self,
        inst: Arc<crate::domain::Instrument>,
        state: StatusState,
        reason: &str,
        fx: &mut Effects,
    ) {
        self.conn
            .metrics
            .status_events
            .get_or_create(&VenueKindLabel {
                venue: self.conn.venue_id.to_string(),
                kind: state.as_str().into(),
            })
            .inc();
        let ev = status::event(&self.conn.venue_id, inst, state, reason, Timestamp::now());
        self.counters.generated.get(DataType::Status).inc();
        fx.publish
            .push(Outgoing::encode(ev, self.conn.format, Instant::now()));
    }

    /// A successor takes over: the old session stopped after publishing
    /// `published`; release the held book events.
    pub(super) fn take_over(&mut self, published: &Published, fx: &mut Effects) {
        self.holding = false;
        let sequenced = self.venue.book.sequence.is_some();
        let mark = format!("ho{}", Timestamp::now().as_millis());
        let Some(gate) = self.gate.as_mut() else {
            return;
        };
        let release = gate.release(published, sequenced, &mark);
        self.counters
            .handover_covered
            .get(DataType::L2Orderbook)
            .inc_by(release.dropped);
        info!(
            venue = %self.conn.venue_id,
            conn = self.conn.index,
            released = release.events.len(),
            resync = release.resync.len(),
            "handover: the new connection took over"
        );
        let received = Instant::now();
        for ev in release.events {
            self.publish(ev, received, fx);
        }
        let venue = self.venue.clone();
        for name in release.resync {
            let inst = self.mapper.resolve_symbol(&venue, &name);
            let reason = "handover: the held book events could not continue the book".to_owned();
            self.gap(inst, reason, fx);
        }
    }

    /// A successor is ready to take over once market data flows and every
    /// book instrument has a snapshot held (or data has flowed for
    /// [`handover::READY_FALLBACK`]).
    pub(super) fn ready(&self) -> bool {
        let Some(first) = self.first_data else {
            return false;
        };
        first.elapsed() >= handover::READY_FALLBACK
            || self
                .plan
                .items
                .iter()
                .filter(|i| i.data_type == DataType::L2Orderbook)
                .all(|i| {
                    self.gate
                        .as_ref()
                        .is_some_and(|g| g.has_snapshot(&i.instrument))
                })
    }

    /// The venue definition was replaced; whether its connection settings
    /// changed (then the connection hands over to a new one).
    pub(super) fn venue_changed(&mut self, new: Arc<Venue>) -> bool {
        let reconnect = new.connection_fingerprint != self.venue.connection_fingerprint;
        self.venue = new;
        self.mapper.venue_changed();
        reconnect
    }

    /// The session ended: book events still held (buffered for a snapshot,
    /// or in a successor's handover gate) will never be published.
    pub(super) fn leftovers(&mut self, shutdown: bool) {
        let book = DataType::L2Orderbook;
        let held = self.books.held();
        if shutdown {
            self.conn
                .metrics
                .dropped(&self.conn.venue_id, book, DropCause::Shutdown)
                .inc_by(held);
        } else {
            self.counters.book_resync.get(book).inc_by(held);
        }
        if let Some(gate) = &self.gate {
            self.counters
                .handover_covered
                .get(book)
                .inc_by(gate.len() as u64);
        }
    }
}

fn frame_text<'f>(f: &RawFrame<'f>) -> &'f str {
    match f {
        RawFrame::Text(t) => t,
        RawFrame::Binary(_) => "<binary>",
    }
}
