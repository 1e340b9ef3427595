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
use crate::application::books::Step;
use crate::application::metrics::VenueKindLabel;
use crate::application::pipeline::NotQueued;
use crate::application::status;
use crate::application::subscribe::{Item, subscribe_messages};
use crate::domain::{DataType, Event, Instrument, StatusState, Timestamp};
use crate::engine::mapper::{MapError, Outcome, RawFrame};
use crate::engine::venue::{ControlKind, Venue};
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
                warn!(venue = %self.conn.venue_id, %instrument, error = %e, "snapshot request failed; retrying");
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
            warn!(venue = %self.conn.venue_id, %instrument, error = %e, body = truncate(&body, 200), "snapshot did not map; retrying");
            self.fetch_snapshot(instrument, SNAPSHOT_RETRY);
            return None;
        }
        let ev = self.events.pop()?;
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
                warn!(venue = %self.conn.venue_id, %instrument, error = %e, "checksum scales unavailable (checksums unverified meanwhile); retrying");
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
                self.awaiting_ack = None;
                self.saw_data();
                let book = venue.book.active()
                    || !self.conn.plan.book_tops.is_empty()
                    || !self.conn.plan.book_snapshots.is_empty();
                let mut events = std::mem::take(&mut self.events);
                let mut end = None;
                for ev in events.drain(..) {
                    let t = ev.data_type();
                    if end.is_some() || !self.conn.plan.types.contains(&t) {
                        continue;
                    }
                    c.mapped[t.index()].inc();
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
                warn!(venue = %self.conn.venue_id, conn = self.conn.index, error = %e, frame = truncate(frame_text(frame), 200), "frame skipped");
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
                warn!(venue = %self.conn.venue_id, conn = self.conn.index, error = %msg, "venue reported an error");
                self.reporter.update(|s| {
                    s.subscriptions_rejected.push(msg);
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
                break;
            }
            end = match step {
                Step::Publish(ev) => self.publish(ev, received).await,
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
        warn!(venue = %self.conn.venue_id, instrument = %instrument.venue_instrument, %reason, "book gap: resyncing");
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
                    gate.hold(ev);
                    return None;
                }
                if !gate.admit(&ev) {
                    return None;
                }
            }
            handover::record(&mut self.published, &ev);
            self.books.stamp(&mut ev);
        }
        let out = status::outgoing(ev, self.conn.format, received);
        match self
            .conn
            .queues
            .push_counted(out, &self.counters.drops)
            .await
        {
            Err(NotQueued::Closed) => Some(End::Shutdown),
            _ => None,
        }
    }

    /// A successor takes over: the old session has stopped after publishing
    /// `published`; release the held book events.
    pub(super) async fn take_over(&mut self, published: Published) -> Option<End<'c>> {
        self.holding = false;
        let sequenced = self.venue.book.sequence.is_some();
        let mark = format!("ho{}", Timestamp::now().as_millis());
        let release = self.gate.as_mut()?.release(&published, sequenced, &mark);
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
        for name in &self.conn.plan.instruments {
            let inst = self.mapper.resolve_symbol(&venue, name);
            let ev = status::event(&self.conn.venue_id, inst, state, reason, now);
            if self
                .conn
                .queues
                .push(status::outgoing(ev, self.conn.format, Instant::now()))
                .await
                .is_err()
            {
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
