//! One connected session: subscribe, then a single `select!` loop over
//! shutdown, the next frame, the heartbeat tick, the silence check, the
//! planned-lifetime deadline, venue reloads, REST snapshot results and, during
//! a handover, the successor session (see [`super::handover`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::books::{Fetch, FetchResult, spawn_fetch};
use super::handover::{self, Gate, Published};
use super::messages::{bootstrap_result, instrument_url, ping_messages};
use super::successor::{Incoming, Outgoing};
use super::{Connection, Counters, End, Pacing, truncate, with_origin};
use crate::application::books::{BookKeeper, Step};
use crate::application::health::{ConnReporter, ConnState};
use crate::application::metrics::{DropCause, Metrics};
use crate::application::subscribe::{TemplateVars, connection_url, render, subscribe_messages};
use crate::domain::{DataType, Event, StatusState, Timestamp};
use crate::engine::mapper::{Mapper, RawFrame};
use crate::engine::venue::{ControlKind, Venue};
use crate::infrastructure::ws::{self, Message, WsStream};
use crate::serialization::frames::OwnedFrame;

pub(super) type Sink = SplitSink<WsStream, Message>;
pub(super) type Source = SplitStream<WsStream>;

/// Connect and run one session (`incoming`: as the successor of a handover).
pub(super) async fn run<'c>(
    conn: &'c Connection,
    n: u64,
    reporter: &'c ConnReporter,
    counters: &'c Counters,
    pacing: &'c Mutex<Pacing>,
    incoming: Option<Incoming>,
) -> End<'c> {
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
    {
        let mut p = pacing.lock().expect("pacing lock");
        p.breaker.success();
        p.backoff.reset();
    }
    let successor = incoming.is_some();
    info!(venue = %conn.venue_id, conn = conn.index, url = %ws::redact_url(&url), successor, "connected");
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
        subscribed: conn.plan.instruments.iter().cloned().collect(),
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
        published: Published::default(),
        holding: successor,
        gate: successor.then(Gate::new),
        incoming,
        n,
        pacing,
    };
    let end = s.stream(source, venue_rx, snap_rx, ping_override).await;
    open.dec();
    s.account_leftovers(matches!(end, End::Shutdown));
    // A successor that fails before taking over leaves the old session in
    // charge: nothing was disconnected as far as consumers can tell.
    if let (End::Failed { reason, .. }, false) = (&end, s.holding) {
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

pub(super) struct Session<'c> {
    pub(super) conn: &'c Connection,
    /// The venue instruments this connection subscribed: events of others
    /// are not published.
    pub(super) subscribed: foldhash::HashSet<String>,
    pub(super) venue: Arc<Venue>,
    pub(super) sink: Sink,
    pub(super) mapper: Mapper,
    pub(super) books: BookKeeper,
    pub(super) events: Vec<Event>,
    pub(super) steps: Vec<Step>,
    pub(super) snap_tx: mpsc::UnboundedSender<FetchResult>,
    pub(super) reporter: &'c ConnReporter,
    pub(super) counters: &'c Counters,
    /// When subscribe messages went out and neither an ack nor data has
    /// arrived since (venues with `ack` rules only).
    pub(super) awaiting_ack: Option<Instant>,
    /// The last book update id published per instrument (for a handover).
    pub(super) published: Published,
    /// A successor that has not taken over yet: book events are held.
    pub(super) holding: bool,
    /// A successor's book gate (held events, then ids still covered).
    pub(super) gate: Option<Gate>,
    /// A successor's handover channels.
    pub(super) incoming: Option<Incoming>,
    /// This session's number on the connection (0: the first).
    pub(super) n: u64,
    pub(super) pacing: &'c Mutex<Pacing>,
}

/// A point far enough in the future to mean "never".
pub(super) fn never() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(100 * 365 * 86_400)
}

impl<'c> Session<'c> {
    async fn stream(
        &mut self,
        mut source: Source,
        mut venue_rx: watch::Receiver<Arc<Venue>>,
        mut snap_rx: mpsc::UnboundedReceiver<FetchResult>,
        ping_override: Option<Duration>,
    ) -> End<'c> {
        if let Err(e) = self.subscribe().await {
            return End::Failed {
                connected: true,
                reason: e,
            };
        }
        self.reporter.update(|s| {
            s.state = ConnState::Connected;
            s.subscriptions_acked = 0;
            // Errors of earlier connections age out on their own.
        });
        if self.holding {
            info!(venue = %self.conn.venue_id, conn = self.conn.index, "handover: new connection subscribed");
        } else {
            let state = if self.n == 0 {
                StatusState::Connected
            } else {
                StatusState::Resubscribed
            };
            self.publish_status(state, "subscriptions sent").await;
        }
        self.start_book_sync();
        let mut top_timer = self.start_tops();
        let mut snapshot_timer = self.start_snapshots();

        let ping_every = ping_override.or(self.venue.heartbeat.interval);
        let mut ping_tick =
            ping_every.map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
        let silence = self.venue.heartbeat.silence_timeout;
        let mut silence_tick = tokio::time::interval(
            silence
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(50)),
        );
        let deadline = tokio::time::sleep_until(self.lifetime_deadline());
        tokio::pin!(deadline);
        let mut last_frame = Instant::now();
        let mut counter = 0u64;
        let mut out: Option<Outgoing<'c>> = None;
        // A handover asked for while this session was itself still a
        // successor waiting to take over.
        let mut deferred = false;
        let mut takeover = self.incoming.as_mut().and_then(|i| i.takeover.take());
        loop {
            let end = tokio::select! {
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
                            return self.failed(reason, out);
                        }
                        Some(Err(e)) => return self.failed(e.to_string(), out),
                        None => return self.failed("connection closed".into(), out),
                    };
                    self.tap(&frame);
                    let end = self.on_frame(frame, now).await;
                    // Silence is the venue's: time spent here waiting for
                    // room in a full queue does not count.
                    last_frame = Instant::now();
                    self.check_ready();
                    end
                }
                Some((what, instrument, result)) = snap_rx.recv() => match what {
                    Fetch::Snapshot => self.on_snapshot(instrument, result).await,
                    Fetch::Scales => {
                        self.on_scales(instrument, result);
                        None
                    }
                },
                boundary = async { top_timer.as_mut().expect("guarded").tick().await }, if top_timer.is_some() => {
                    self.publish_tops(boundary).await
                }
                boundary = async { snapshot_timer.as_mut().expect("guarded").tick().await }, if snapshot_timer.is_some() => {
                    self.publish_snapshots(boundary).await
                }
                _ = async { ping_tick.as_mut().expect("guarded").tick().await }, if ping_tick.is_some() => {
                    counter += 1;
                    self.send_ping(counter).await.err()
                        .map(|reason| End::Failed { connected: true, reason })
                }
                _ = silence_tick.tick() => {
                    self.check_ready();
                    let ack_timeout = self.venue.subscribe.ack_timeout;
                    if last_frame.elapsed() > silence {
                        Some(End::Failed { connected: true, reason: format!("no frame for {silence:?}") })
                    } else if self.awaiting_ack.is_some_and(|t| t.elapsed() > ack_timeout) {
                        Some(End::Failed { connected: true, reason: format!("subscriptions neither acknowledged nor answered with data within {ack_timeout:?}") })
                    } else {
                        None
                    }
                }
                _ = &mut deadline, if out.is_none() => {
                    deadline.as_mut().reset(never());
                    if self.holding {
                        deferred = true;
                    } else {
                        out = Some(self.start_successor("the connection's lifetime is ending"));
                    }
                    None
                }
                step = async {
                    let o = out.as_mut().expect("guarded");
                    tokio::select! {
                        end = o.successor.0.as_mut() => Err(end),
                        Ok(()) = &mut o.ready => Ok(()),
                    }
                }, if out.is_some() => {
                    match step {
                        Ok(()) => {
                            let o = out.take().expect("guarded");
                            self.drain(&mut source).await;
                            let _ = o.takeover.send(std::mem::take(&mut self.published));
                            return End::HandedOver(o.successor);
                        }
                        Err(End::Shutdown) => return End::Shutdown,
                        Err(end) => {
                            out = None;
                            warn!(venue = %self.conn.venue_id, conn = self.conn.index, ?end, retry = ?handover::RETRY, "handover: the new connection failed; keeping this one");
                            deadline.as_mut().reset(tokio::time::Instant::now() + handover::RETRY);
                        }
                    }
                    None
                }
                published = async { takeover.as_mut().expect("guarded").await }, if takeover.is_some() => {
                    takeover = None;
                    // Without a report the old session is gone anyway:
                    // release against nothing published.
                    let end = self.take_over(published.unwrap_or_default()).await;
                    if end.is_none() && deferred {
                        deferred = false;
                        out = Some(self.start_successor("deferred handover"));
                    }
                    end
                }
                changed = venue_rx.changed() => {
                    if changed.is_err() {
                        continue;
                    }
                    let new = venue_rx.borrow_and_update().clone();
                    let reconnect = new.connection_fingerprint != self.venue.connection_fingerprint;
                    self.venue = new;
                    self.mapper.venue_changed();
                    info!(venue = %self.conn.venue_id, conn = self.conn.index, reconnect, "venue definition reloaded");
                    if reconnect && out.is_none() {
                        if self.holding {
                            deferred = true;
                        } else {
                            out = Some(self.start_successor("the venue's connection settings changed"));
                        }
                    }
                    None
                }
            };
            if let Some(end) = end {
                return match end {
                    End::Failed { reason, .. } => self.failed(reason, out),
                    end => end,
                };
            }
        }
    }

    /// The session ended: book events still held (buffered for a snapshot,
    /// or in a successor's handover gate) will never be published.
    fn account_leftovers(&mut self, shutdown: bool) {
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

    /// When to start the planned handover: the venue's maximum lifetime
    /// less a margin (a tenth of it, at most five minutes).
    fn lifetime_deadline(&self) -> tokio::time::Instant {
        match self.venue.connection.max_lifetime {
            Some(l) => {
                tokio::time::Instant::now()
                    + l.saturating_sub((l / 10).min(Duration::from_secs(300)))
            }
            None => never(),
        }
    }

    /// Copy a received frame to `mdrelay record`, when recording.
    pub(super) fn tap(&self, frame: &RawFrame<'_>) {
        if let Some(tap) = &self.conn.tap {
            let _ = tap.send(match *frame {
                RawFrame::Text(t) => OwnedFrame::Text(t.to_owned()),
                RawFrame::Binary(b) => OwnedFrame::Binary(b.to_vec()),
            });
        }
    }

    pub(super) async fn send(&mut self, text: String) -> Result<(), String> {
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
    pub(super) fn book_instruments(&self) -> Vec<String> {
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
    /// snapshot. Venues with per-instrument checksum scales: fetch them.
    fn start_book_sync(&mut self) {
        if !self.conn.plan.types.contains(&DataType::L2Orderbook) {
            return;
        }
        if self.venue.book.scales.is_some() {
            for inst in self.book_instruments() {
                self.fetch(Fetch::Scales, inst, Duration::ZERO);
            }
        }
        if self.venue.book.snapshot.is_some() {
            for inst in self.book_instruments() {
                let dropped = self.books.await_snapshot(&self.venue.book, &inst);
                self.counters
                    .book_resync
                    .get(DataType::L2Orderbook)
                    .inc_by(dropped);
                self.fetch_snapshot(inst, Duration::ZERO);
            }
        }
    }

    pub(super) fn fetch_snapshot(&self, instrument: String, delay: Duration) {
        self.fetch(Fetch::Snapshot, instrument, delay);
    }

    /// A per-instrument REST request (paced by the venue's limiter); the
    /// answer arrives on the session's fetch channel.
    pub(super) fn fetch(&self, what: Fetch, instrument: String, delay: Duration) {
        let book = &self.venue.book;
        let expr = match what {
            Fetch::Snapshot => book.snapshot.as_ref().map(|s| &s.url),
            Fetch::Scales => book.scales.as_ref().map(|s| &s.url),
        };
        let Some(expr) = expr else { return };
        let market = self.conn.plan.market.as_deref();
        let url = match instrument_url(&self.venue, expr, &instrument, market) {
            Ok(u) => u,
            Err(e) => {
                warn!(venue = %self.conn.venue_id, %instrument, ?what, error = %e, "cannot build the request URL");
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
            (what, instrument),
            url,
            delay,
            self.snap_tx.clone(),
        );
    }
}
