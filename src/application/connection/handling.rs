//! What a session does with what arrives: frames (mapped, checked for
//! book integrity, queued), REST snapshots, control frames, book gaps
//! (resync one instrument), and a successor's takeover.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tracing::{debug, info, warn};

use super::books::Fetch;
use super::handover::{self, Published};
use super::messages::scales_result;
use super::session::Session;
use super::{End, SNAPSHOT_RETRY, truncate};
use crate::application::books::{BookDrop, Step};
use crate::application::metrics::DropCause;
use crate::application::metrics::VenueKindLabel;
use crate::application::pipeline::NotQueued;
use crate::application::pipeline::Outgoing;
use crate::application::status;
use crate::application::subscribe::{Item, subscribe_messages};
use crate::domain::{DataType, Event, Instrument, StatusState, Timestamp};
use crate::engine::mapper::{MapError, Outcome, RawFrame};
use crate::engine::venue::{ControlKind, Venue};
use crate::infrastructure::logs::clip;
use crate::infrastructure::ws::Message;

impl<'c> Session<'c> {
    pub(super) async fn on_snapshot(
        &mut self,
        instrument: String,
        result: Result<String, String>,
    ) -> Option<End<'c>> {
        let body = match result {
            Ok(b) => b,
            Err(e) => {
                if let Some(suppressed) = self.counters.log("snapshot request") {
                    warn!(venue = %self.conn.venue_id, %instrument, error = %clip(&e), suppressed, "snapshot request failed; retrying");
                }
                self.fetch_snapshot(instrument, SNAPSHOT_RETRY);
                return None;
            }
        };
        let venue = self.venue.clone();
        let snap = venue.book.snapshot.as_ref()?;
        self.events.clear();
        if let Err(e) = self.mapper.map_document(
            &venue,
            &snap.route,
            &body,
            &instrument,
            Timestamp::now(),
            &mut self.events,
        ) {
            if let Some(suppressed) = self.counters.log("snapshot mapping") {
                warn!(venue = %self.conn.venue_id, %instrument, error = %e, body = truncate(&body, 200), suppressed, "snapshot did not map; retrying");
            }
            self.fetch_snapshot(instrument, SNAPSHOT_RETRY);
            return None;
        }
        let ev = self.events.pop()?;
        self.counters.generated.get(ev.data_type()).inc();
        self.steps.clear();
        if let Err(refetch) = self
            .books
            .on_rest_snapshot(&venue.book, ev, &mut self.steps)
        {
            debug!(venue = %self.conn.venue_id, %instrument, reason = %refetch.0, "snapshot too old; fetching another");
            self.fetch_snapshot(instrument, Duration::from_millis(250));
        }
        self.handle_steps().await
    }

    /// An instrument's checksum number scales arrived (or failed: retried).
    pub(super) fn on_scales(&mut self, instrument: String, result: Result<String, String>) {
        let Some(source) = self.venue.book.scales.as_ref() else {
            return;
        };
        let market = self.conn.plan.market.as_deref();
        match result.and_then(|body| scales_result(source, body, &instrument, market)) {
            Ok(scales) => {
                debug!(venue = %self.conn.venue_id, %instrument, ?scales, "checksum scales");
                self.books.set_scales(&self.venue.book, &instrument, scales);
            }
            Err(e) => {
                warn!(venue = %self.conn.venue_id, %instrument, error = %clip(&e), "checksum scales unavailable (checksums unverified meanwhile); retrying");
                self.fetch(Fetch::Scales, instrument, SNAPSHOT_RETRY);
            }
        }
    }

    pub(super) async fn on_frame(
        &mut self,
        frame: RawFrame<'_>,
        now: Timestamp,
    ) -> Option<End<'c>> {
        let c = self.counters;
        c.frames.inc();
        c.bytes.inc_by(frame.len() as u64);
        let received = Instant::now();
        self.events.clear();
        let venue = self.venue.clone();
        let result = self.mapper.map(&venue, frame, now, &mut self.events);
        let end = self.on_mapped(result, &venue, &frame, received).await;
        if let Some(gap) = self.mapper.take_gap() {
            // The frame's own events went out above; what was lost before it
            // can only be recovered by starting over.
            let reason = gap.to_string();
            self.counters.gaps.inc();
            self.publish_status(StatusState::Gap, &reason).await;
            return Some(end.unwrap_or(End::Failed {
                connected: true,
                reason,
            }));
        }
        end
    }

    async fn on_mapped(
        &mut self,
        result: Result<Outcome, MapError>,
        venue: &Arc<Venue>,
        frame: &RawFrame<'_>,
        received: Instant,
    ) -> Option<End<'c>> {
        let c = self.counters;
        match result {
            Ok(Outcome::Data { .. }) => {
                c.data_frames.inc();
                self.awaiting_ack = None;
                self.saw_data();
                let book = venue.book.active()
                    || !self.conn.plan.book_tops.is_empty()
                    || !self.conn.plan.book_snapshots.is_empty();
                let mut events = std::mem::take(&mut self.events);
                let mut end = None;
                for ev in events.drain(..) {
                    let t = ev.data_type();
                    c.mapped.get(t).inc();
                    if let Some(at) = ev.exchange_time {
                        // A venue clock ahead of ours reads as no lag.
                        let lag = (ev.receive_time.0 - at.0).max(0);
                        c.lag.get(t).observe(lag as f64 / 1e9);
                    }
                    if end.is_some() {
                        // The connection is ending (shutdown): what the
                        // frame still held is not published.
                        self.dropped(t, DropCause::Shutdown);
                        continue;
                    }
                    if !self.conn.plan.types.contains(&t) {
                        c.unsubscribed.get(t).inc();
                        continue;
                    }
                    let name = ev.instrument.venue_instrument.as_str();
                    if !self.subscribed.contains(name)
                        && !venue.channels.get(&t).is_some_and(|ch| ch.any_instrument)
                    {
                        c.unsubscribed.get(t).inc();
                        if let Some(suppressed) = c.log("unsubscribed instrument") {
                            warn!(venue = %self.conn.venue_id, conn = self.conn.index, instrument = %clip(name), data_type = %t, suppressed, "event of an instrument this connection did not subscribe: not published (dropped, cause unsubscribed; a channel subscribed by something broader than an instrument declares instruments = \"any\")");
                        }
                        continue;
                    }
                    if book && t == DataType::L2Orderbook {
                        self.books.on_update(&venue.book, ev, &mut self.steps);
                    } else {
                        end = self.publish(ev, received).await;
                    }
                }
                self.events = events;
                if end.is_some() {
                    return end;
                }
                if !self.steps.is_empty() {
                    return self.handle_steps().await;
                }
            }
            Ok(Outcome::Control(info)) => return self.on_control(info).await,
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
        None
    }

    async fn on_control(&mut self, info: crate::engine::mapper::ControlInfo) -> Option<End<'c>> {
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
                let error = crate::application::health::VenueError {
                    at_ms: Timestamp::now().as_millis(),
                    message: crate::infrastructure::logs::clip(&msg).into_owned(),
                };
                self.reporter.update(|s| {
                    s.subscriptions_rejected.push(error);
                    if s.subscriptions_rejected.len() > 20 {
                        s.subscriptions_rejected.remove(0);
                    }
                });
            }
            _ => {}
        }
        if let Some(reply) = info.reply
            && let Err(e) = self.sink.send(Message::text(reply)).await
        {
            return Some(End::Failed {
                connected: true,
                reason: e.to_string(),
            });
        }
        None
    }

    async fn handle_steps(&mut self) -> Option<End<'c>> {
        let steps = std::mem::take(&mut self.steps);
        let received = Instant::now();
        let mut end = None;
        for step in steps {
            if end.is_some() {
                if let Step::Publish(ev) = step {
                    self.dropped(ev.data_type(), DropCause::Shutdown);
                }
                continue;
            }
            end = match step {
                Step::Publish(ev) => self.publish(ev, received).await,
                Step::Dropped(why, n) => {
                    let c = match why {
                        BookDrop::Resync => self.counters.book_resync.get(DataType::L2Orderbook),
                        BookDrop::ChecksumOnly => {
                            self.counters.checksum_only.get(DataType::L2Orderbook)
                        }
                    };
                    c.inc_by(n);
                    None
                }
                Step::Gap { instrument, reason } => self.on_gap(instrument, reason).await,
                Step::Mismatch { instrument, reason } => {
                    // Logged at the 1st, 2nd, 4th, 8th... so a wrong spec
                    // cannot flood the log; the metric counts every one.
                    let n = self.counters.mismatches.inc() + 1;
                    if n.is_power_of_two() {
                        warn!(venue = %self.conn.venue_id, instrument = %instrument.venue_instrument, %reason, mismatches = n, "book checksum mismatch (report-only checksum: no resync)");
                    }
                    None
                }
            };
        }
        end
    }

    /// A gap on one instrument: tell consumers, then resync that instrument
    /// only (REST snapshot, or unsubscribe + subscribe), or reconnect when
    /// the venue offers neither.
    async fn on_gap(&mut self, instrument: Arc<Instrument>, reason: String) -> Option<End<'c>> {
        if let Some(suppressed) = self.counters.log("book gap") {
            warn!(venue = %self.conn.venue_id, instrument = %instrument.venue_instrument, %reason, suppressed, "book gap: resyncing");
        }
        self.counters.gaps.inc();
        self.counters.resyncs.inc();
        self.conn
            .metrics
            .status_events
            .get_or_create(&VenueKindLabel {
                venue: self.conn.venue_id.to_string(),
                kind: "gap".into(),
            })
            .inc();
        let ev = status::event(
            &self.conn.venue_id,
            instrument.clone(),
            StatusState::Gap,
            &reason,
            Timestamp::now(),
        );
        self.counters.generated.get(DataType::Status).inc();
        if let Some(end) = self.publish(ev, Instant::now()).await {
            return Some(end);
        }
        let name = instrument.venue_instrument.clone();
        if self.venue.book.snapshot.is_some() {
            self.fetch_snapshot(name, Duration::ZERO);
            return None;
        }
        let venue = self.venue.clone();
        let Some(unsub) = &venue.subscribe.unsubscribe else {
            return Some(End::Failed {
                connected: true,
                reason: format!("{reason} (no unsubscribe template: reconnecting)"),
            });
        };
        let items: Vec<Item> = self
            .conn
            .plan
            .items
            .iter()
            .filter(|i| i.instrument == name && i.data_type == DataType::L2Orderbook)
            .cloned()
            .collect();
        let mut request_id = 1_000_000u64;
        let market = self.conn.plan.market.clone();
        let mut msgs =
            match subscribe_messages(&venue, unsub, market.as_deref(), &items, &mut request_id) {
                Ok(m) => m,
                Err(e) => {
                    return Some(End::Failed {
                        connected: true,
                        reason: format!("resync: {e}"),
                    });
                }
            };
        if let Some(sub) = &venue.subscribe.message {
            match subscribe_messages(&venue, sub, market.as_deref(), &items, &mut request_id) {
                Ok(m) => msgs.extend(m),
                Err(e) => {
                    return Some(End::Failed {
                        connected: true,
                        reason: format!("resync: {e}"),
                    });
                }
            }
        }
        for m in msgs {
            if let Err(e) = self.send(m).await {
                return Some(End::Failed {
                    connected: true,
                    reason: e,
                });
            }
        }
        None
    }

    /// Queue an event. Book events of a successor that has not taken over
    /// yet are held; after the takeover, those the old session already
    /// covered are dropped.
    pub(super) async fn publish(&mut self, mut ev: Event, received: Instant) -> Option<End<'c>> {
        if ev.data_type() == DataType::L2Orderbook {
            if let Some(gate) = self.gate.as_mut() {
                if self.holding {
                    if gate.hold(ev) {
                        self.dropped(DataType::L2Orderbook, DropCause::HandoverCovered);
                    }
                    return None;
                }
                if !gate.admit(&ev) {
                    self.dropped(DataType::L2Orderbook, DropCause::HandoverCovered);
                    return None;
                }
            }
            handover::record(&mut self.published, &ev);
            self.books.stamp(&mut ev);
        }
        self.enqueue(status::outgoing(ev, self.conn.format, received))
            .await
    }

    /// Push an encoded event to its queue, counting it when it is dropped
    /// (queue full under `drop_newest`, or closed at shutdown).
    pub(super) async fn enqueue(&mut self, out: Outgoing) -> Option<End<'c>> {
        let t = out.data_type;
        match self.conn.queues.push(out).await {
            Ok(()) => None,
            Err(NotQueued::Dropped) => {
                self.counters.queue_full.get(t).inc();
                self.counters.queue_drops.get(t).inc();
                None
            }
            Err(NotQueued::Closed) => {
                self.dropped(t, DropCause::Shutdown);
                Some(End::Shutdown)
            }
        }
    }

    /// Count an event that will not be published.
    pub(super) fn dropped(&self, t: DataType, cause: DropCause) {
        let c = self.counters;
        match cause {
            DropCause::Unsubscribed => c.unsubscribed.get(t),
            DropCause::BookResync => c.book_resync.get(t),
            DropCause::ChecksumOnly => c.checksum_only.get(t),
            DropCause::HandoverCovered => c.handover_covered.get(t),
            DropCause::QueueFull => c.queue_full.get(t),
            DropCause::PublishFailed | DropCause::Shutdown => {
                // Rare: resolved here rather than kept per connection.
                self.conn
                    .metrics
                    .dropped(&self.conn.venue_id, t, cause)
                    .inc();
                return;
            }
        }
        .inc();
    }

    /// A successor takes over: the old session has stopped after publishing
    /// `published`; release the held book events.
    pub(super) async fn take_over(&mut self, published: Published) -> Option<End<'c>> {
        self.holding = false;
        let sequenced = self.venue.book.sequence.is_some();
        let mark = format!("ho{}", Timestamp::now().as_millis());
        let release = self.gate.as_mut()?.release(&published, sequenced, &mark);
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
            if let Some(end) = self.publish(ev, received).await {
                return Some(end);
            }
        }
        let venue = self.venue.clone();
        for name in release.resync {
            let inst = self.mapper.resolve_symbol(&venue, &name);
            let reason = "handover: the held book events could not continue the book".to_owned();
            if let Some(end) = self.on_gap(inst, reason).await {
                return Some(end);
            }
        }
        None
    }

    pub(super) async fn publish_status(&mut self, state: StatusState, reason: &str) {
        let now = Timestamp::now();
        self.conn
            .metrics
            .status_events
            .get_or_create(&VenueKindLabel {
                venue: self.conn.venue_id.to_string(),
                kind: status::state_name(state).into(),
            })
            .inc_by(self.conn.plan.instruments.len() as u64);
        let venue = self.venue.clone();
        let instruments = self.conn.plan.instruments.clone();
        for name in &instruments {
            let inst = self.mapper.resolve_symbol(&venue, name);
            let ev = status::event(&self.conn.venue_id, inst, state, reason, now);
            self.counters.generated.get(DataType::Status).inc();
            let out = status::outgoing(ev, self.conn.format, Instant::now());
            if self.enqueue(out).await.is_some() {
                return;
            }
        }
    }
}

fn frame_text<'f>(f: &RawFrame<'f>) -> &'f str {
    match f {
        RawFrame::Text(t) => t,
        RawFrame::Binary(_) => "<binary>",
    }
}
