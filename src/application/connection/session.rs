//! One connected session: subscribe, then a single `select!` loop over
//! shutdown, the next frame, the heartbeat tick, the silence check, the
//! planned-lifetime deadline, venue reloads and REST snapshot results.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::books::{SnapshotResult, spawn_fetch};
use super::messages::{bootstrap_result, ping_messages, snapshot_url};
use super::{Connection, Counters, End, SNAPSHOT_RETRY, truncate, with_origin};
use crate::application::books::{BookKeeper, Step};
use crate::application::breaker::{Backoff, CircuitBreaker};
use crate::application::health::{ConnReporter, ConnState};
use crate::application::metrics::{Metrics, VenueKindLabel};
use crate::application::pipeline::NotQueued;
use crate::application::status;
use crate::application::subscribe::{
    Item, TemplateVars, connection_url, render, subscribe_messages,
};
use crate::domain::{DataType, Event, Instrument, StatusState, Timestamp};
use crate::engine::mapper::{MapError, Mapper, Outcome, RawFrame};
use crate::engine::venue::{ControlKind, Venue};
use crate::infrastructure::ws::{self, Message, WsStream};
use crate::serialization::frames::OwnedFrame;

type Sink = SplitSink<WsStream, Message>;
type Source = SplitStream<WsStream>;

/// Connect and run one session.
pub(super) async fn run(
    conn: &Connection,
    n: u64,
    reporter: &ConnReporter,
    counters: &Counters,
    breaker: &mut CircuitBreaker,
    backoff: &mut Backoff,
) -> End {
    let mut venue_rx = conn.venue.clone();
    let venue = venue_rx.borrow_and_update().clone();
    let (url, ping_override) = match resolve_url(conn, &venue).await {
        Ok(u) => u,
        Err(e) => {
            return End::Failed {
                connected: false,
                reason: e,
            };
        }
    };
    let max_frame = venue.connection.max_frame_bytes.saturating_add(1024);
    let ws = tokio::select! {
        _ = conn.cancel.cancelled() => return End::Shutdown,
        r = ws::connect(&url, max_frame, Duration::from_secs(10)) => r,
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return End::Failed {
                connected: false,
                reason: e.to_string(),
            };
        }
    };
    breaker.success();
    backoff.reset();
    info!(venue = %conn.venue_id, conn = conn.index, url = %ws::redact_url(&url), "connected");
    let open = Metrics::venue(&conn.metrics.connections, &conn.venue_id);
    open.inc();
    let (sink, source) = ws.split();
    let (snap_tx, snap_rx) = mpsc::unbounded_channel();
    let mut s = Session {
        mapper: Mapper::new(
            conn.venue_id.clone(),
            conn.plan.market.clone(),
            conn.plan.pinned.clone(),
        ),
        conn,
        venue,
        sink,
        books: BookKeeper::new(),
        events: Vec::new(),
        steps: Vec::new(),
        snap_tx,
        reporter,
        counters,
        awaiting_ack: None,
    };
    let end = s.stream(source, venue_rx, snap_rx, n, ping_override).await;
    open.dec();
    if let End::Failed { reason, .. } = &end {
        s.publish_status(StatusState::Disconnected, reason).await;
    }
    let _ = s.sink.send(Message::Close(None)).await;
    end
}

async fn resolve_url(
    conn: &Connection,
    venue: &Venue,
) -> Result<(String, Option<Duration>), String> {
    if let (Some(b), None) = (&venue.connection.bootstrap, &conn.url_override) {
        let url = match &conn.rest_url {
            Some(origin) => with_origin(&b.url, origin),
            None => b.url.clone(),
        };
        let body = conn
            .rest
            .request(&b.method, &url, b.body.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        return bootstrap_result(b, body);
    }
    let url = connection_url(
        venue,
        conn.url_override.as_deref(),
        conn.plan.market.as_deref(),
        &conn.plan.items,
    )?;
    Ok((url, None))
}

struct Session<'c> {
    conn: &'c Connection,
    venue: Arc<Venue>,
    sink: Sink,
    mapper: Mapper,
    books: BookKeeper,
    events: Vec<Event>,
    steps: Vec<Step>,
    snap_tx: mpsc::UnboundedSender<SnapshotResult>,
    reporter: &'c ConnReporter,
    counters: &'c Counters,
    /// When subscribe messages went out and neither an ack nor data has
    /// arrived since (venues with `ack` rules only).
    awaiting_ack: Option<Instant>,
}

impl Session<'_> {
    async fn stream(
        &mut self,
        mut source: Source,
        mut venue_rx: watch::Receiver<Arc<Venue>>,
        mut snap_rx: mpsc::UnboundedReceiver<SnapshotResult>,
        n: u64,
        ping_override: Option<Duration>,
    ) -> End {
        if let Err(e) = self.subscribe().await {
            return End::Failed {
                connected: true,
                reason: e,
            };
        }
        self.reporter.update(|s| {
            s.state = ConnState::Connected;
            s.subscriptions_acked = 0;
            s.subscriptions_rejected.clear();
        });
        let state = if n == 0 {
            StatusState::Connected
        } else {
            StatusState::Resubscribed
        };
        self.publish_status(state, "subscriptions sent").await;
        self.start_book_sync();

        let ping_every = ping_override.or(self.venue.heartbeat.interval);
        let mut ping_tick =
            ping_every.map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
        let silence = self.venue.heartbeat.silence_timeout;
        let mut silence_tick = tokio::time::interval(
            silence
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(50)),
        );
        let lifetime = self
            .venue
            .connection
            .max_lifetime
            .map(|l| l.saturating_sub((l / 10).min(Duration::from_secs(300))));
        let deadline =
            tokio::time::sleep(lifetime.unwrap_or(Duration::from_secs(100 * 365 * 86_400)));
        tokio::pin!(deadline);
        let mut last_frame = Instant::now();
        let mut counter = 0u64;
        loop {
            tokio::select! {
                biased;
                _ = self.conn.cancel.cancelled() => return End::Shutdown,
                msg = source.next() => {
                    last_frame = Instant::now();
                    let now = Timestamp::now();
                    self.reporter.frame(now);
                    let frame = match &msg {
                        Some(Ok(Message::Text(t))) => RawFrame::Text(t.as_str()),
                        Some(Ok(Message::Binary(b))) => RawFrame::Binary(b),
                        Some(Ok(Message::Ping(_))) => {
                            let _ = self.sink.flush().await;
                            continue;
                        }
                        Some(Ok(Message::Pong(_) | Message::Frame(_))) => continue,
                        Some(Ok(Message::Close(c))) => {
                            let reason = c.as_ref().map_or("closed by venue".to_owned(), |c| format!("closed by venue: {} {}", c.code, c.reason));
                            return End::Failed { connected: true, reason };
                        }
                        Some(Err(e)) => return End::Failed { connected: true, reason: e.to_string() },
                        None => return End::Failed { connected: true, reason: "connection closed".into() },
                    };
                    if let Some(tap) = &self.conn.tap {
                        let _ = tap.send(match frame {
                            RawFrame::Text(t) => OwnedFrame::Text(t.to_owned()),
                            RawFrame::Binary(b) => OwnedFrame::Binary(b.to_vec()),
                        });
                    }
                    if let Some(end) = self.on_frame(frame, now).await {
                        return end;
                    }
                    // Silence is the venue's: time spent here waiting for
                    // room in a full queue does not count.
                    last_frame = Instant::now();
                }
                Some((instrument, result)) = snap_rx.recv() => {
                    if let Some(end) = self.on_snapshot(instrument, result).await {
                        return end;
                    }
                }
                _ = async { ping_tick.as_mut().expect("guarded").tick().await }, if ping_tick.is_some() => {
                    counter += 1;
                    if let Err(e) = self.send_ping(counter).await {
                        return End::Failed { connected: true, reason: e };
                    }
                }
                _ = silence_tick.tick() => {
                    if last_frame.elapsed() > silence {
                        return End::Failed { connected: true, reason: format!("no frame for {silence:?}") };
                    }
                    let ack_timeout = self.venue.subscribe.ack_timeout;
                    if self.awaiting_ack.is_some_and(|t| t.elapsed() > ack_timeout) {
                        return End::Failed { connected: true, reason: format!("subscriptions neither acknowledged nor answered with data within {ack_timeout:?}") };
                    }
                }
                _ = &mut deadline => return End::Planned,
                changed = venue_rx.changed() => {
                    if changed.is_err() {
                        continue;
                    }
                    let new = venue_rx.borrow_and_update().clone();
                    let reconnect = new.connection_fingerprint != self.venue.connection_fingerprint;
                    self.venue = new;
                    self.mapper.venue_changed();
                    info!(venue = %self.conn.venue_id, conn = self.conn.index, reconnect, "venue definition reloaded");
                    if reconnect {
                        return End::Reconfigure;
                    }
                }
            }
        }
    }

    async fn send(&mut self, text: String) -> Result<(), String> {
        debug!(venue = %self.conn.venue_id, conn = self.conn.index, message = truncate(&text, 300), "send");
        self.sink
            .send(Message::text(text))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(rate) = self
            .venue
            .connection
            .max_messages_per_second
            .filter(|r| *r > 0)
        {
            tokio::time::sleep(Duration::from_secs_f64(1.0 / f64::from(rate))).await;
        }
        Ok(())
    }

    async fn subscribe(&mut self) -> Result<(), String> {
        let venue = self.venue.clone();
        let market = self.conn.plan.market.clone();
        let mut request_id = 0u64;
        for template in &venue.subscribe.on_connect {
            let mut vars = TemplateVars {
                venue: &venue.id,
                market: market.as_deref(),
                request_id: &mut request_id,
                now_ms: Timestamp::now().as_millis(),
            };
            for m in render(template, "null", &mut vars)? {
                self.send(m).await?;
            }
        }
        if let Some(template) = &venue.subscribe.message {
            let messages = subscribe_messages(
                &venue,
                template,
                market.as_deref(),
                &self.conn.plan.items,
                &mut request_id,
            )?;
            let acks = venue.control.iter().any(|r| r.kind == ControlKind::Ack);
            if acks && !messages.is_empty() {
                self.awaiting_ack = Some(Instant::now());
            }
            for m in messages {
                self.send(m).await?;
            }
        }
        Ok(())
    }

    async fn send_ping(&mut self, counter: u64) -> Result<(), String> {
        if self.venue.heartbeat.websocket_ping {
            return self
                .sink
                .send(Message::Ping(Vec::new().into()))
                .await
                .map_err(|e| e.to_string());
        }
        for t in ping_messages(&self.venue, counter)? {
            self.sink
                .send(Message::text(t))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The instruments this connection subscribed for books.
    fn book_instruments(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .conn
            .plan
            .items
            .iter()
            .filter(|i| i.data_type == DataType::L2Orderbook)
            .map(|i| i.instrument.clone())
            .collect();
        v.dedup();
        v
    }

    /// REST-bootstrapped venues: buffer each book's deltas and fetch its
    /// snapshot.
    fn start_book_sync(&mut self) {
        if self.venue.book.snapshot.is_none()
            || !self.conn.plan.types.contains(&DataType::L2Orderbook)
        {
            return;
        }
        for inst in self.book_instruments() {
            self.books.await_snapshot(&self.venue.book, &inst);
            self.fetch_snapshot(inst, Duration::ZERO);
        }
    }

    fn fetch_snapshot(&self, instrument: String, delay: Duration) {
        let url = match snapshot_url(&self.venue, &instrument, self.conn.plan.market.as_deref()) {
            Ok(u) => u,
            Err(e) => {
                warn!(venue = %self.conn.venue_id, %instrument, error = %e, "cannot build the snapshot URL");
                return;
            }
        };
        let url = match &self.conn.rest_url {
            Some(origin) => with_origin(&url, origin),
            None => url,
        };
        spawn_fetch(
            self.conn.rest.clone(),
            self.conn.snapshot_limiter.clone(),
            instrument,
            url,
            delay,
            self.snap_tx.clone(),
        );
    }

    async fn on_snapshot(
        &mut self,
        instrument: String,
        result: Result<String, String>,
    ) -> Option<End> {
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

    async fn on_frame(&mut self, frame: RawFrame<'_>, now: Timestamp) -> Option<End> {
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
    ) -> Option<End> {
        let c = self.counters;
        match result {
            Ok(Outcome::Data { .. }) => {
                self.awaiting_ack = None;
                let book = venue.book.active();
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
                        end = self.publish(&ev, received).await;
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

    async fn on_control(&mut self, info: crate::engine::mapper::ControlInfo) -> Option<End> {
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

    async fn handle_steps(&mut self) -> Option<End> {
        let steps = std::mem::take(&mut self.steps);
        let received = Instant::now();
        let mut end = None;
        for step in steps {
            if end.is_some() {
                break;
            }
            end = match step {
                Step::Publish(ev) => self.publish(&ev, received).await,
                Step::Gap { instrument, reason } => self.on_gap(instrument, reason).await,
            };
        }
        end
    }

    /// A gap on one instrument: tell consumers, then resync that instrument
    /// only (REST snapshot, or unsubscribe + subscribe), or reconnect when
    /// the venue offers neither.
    async fn on_gap(&mut self, instrument: Arc<Instrument>, reason: String) -> Option<End> {
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
        if let Some(end) = self.publish(&ev, Instant::now()).await {
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

    async fn publish(&self, ev: &Event, received: Instant) -> Option<End> {
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

    async fn publish_status(&mut self, state: StatusState, reason: &str) {
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
                .push(status::outgoing(&ev, self.conn.format, Instant::now()))
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
