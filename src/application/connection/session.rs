//! One connected session: connect, subscribe, then a thin `select!` loop
//! over four things — shutdown, the next frame, the timers and control
//! messages (REST answers, venue reloads, handover steps). Every frame and
//! every tick goes through the synchronous [`FramePipeline`], whose
//! [`Effects`] this loop then carries out: queue the encoded events, send
//! messages to the venue, start REST requests, end the session.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::error::{End, SessionError};
use super::fetch::{Fetched, spawn_fetch};
use super::handover::{self, Published};
use super::messages::resolve_url;
use super::pipeline::{Effects, FramePipeline};
use super::timers::{Tick, Timers};
use super::{Connection, Counters, Pacing};
use crate::application::health::{ConnReporter, ConnState};
use crate::application::liveness::InstrumentTable;
use crate::application::metrics::{DropCause, Metrics};
use crate::application::pipeline::NotQueued;
use crate::application::subscribe::{ConnPlan, TemplateVars, render, subscribe_messages};
use crate::application::templates::heartbeat_messages;
use crate::domain::{HumanDuration, StatusState, Timestamp};
use crate::engine::mapper::RawFrame;
use crate::engine::venue::{ControlKind, Venue};
use crate::infrastructure::logs::truncate;
use crate::infrastructure::ws::{self, Message, WsStream};
use crate::serialization::frames::OwnedFrame;

type Sink = SplitSink<WsStream, Message>;
type Source = SplitStream<WsStream>;

/// A message to a running session.
#[derive(Debug)]
pub(super) enum Control {
    /// A REST answer for an instrument.
    Fetched(Fetched),
    /// The venue definition was reloaded.
    Venue(Arc<Venue>),
    /// (Old session) the successor is ready: read what the socket holds,
    /// then stop.
    HandOver,
    /// (Old session) the successor failed: keep streaming, try again later.
    HandoverFailed,
    /// (Successor) the old session stopped after publishing this: take over.
    TakeOver(Published),
    /// The connection's instruments changed: this plan and table are
    /// current (subscribe and unsubscribe the difference).
    Plan(Arc<ConnPlan>, Arc<InstrumentTable>),
}

/// The connection's current plan and instrument table: a session starts
/// with them, and both change while it runs when instruments are added or
/// removed.
pub(super) struct Current {
    pub(super) plan: Arc<ConnPlan>,
    pub(super) live: Arc<InstrumentTable>,
}

/// A message from a session to the connection's supervisor.
#[derive(Debug)]
pub(super) enum Up {
    /// Start a successor (the lifetime is ending, the connection settings
    /// changed, the venue asked for a reconnect).
    WantHandover {
        /// The session asking.
        session: u64,
        /// Why.
        reason: String,
    },
    /// (Successor) ready to take over.
    Ready {
        /// The session.
        session: u64,
    },
}

/// What every session of a connection shares.
pub(super) struct Ctx<'c> {
    pub(super) conn: &'c Connection,
    pub(super) reporter: &'c ConnReporter,
    pub(super) counters: &'c Counters,
    pub(super) pacing: &'c Mutex<Pacing>,
    /// The connection's plan and instruments (liveness and books, shown in
    /// `/health`).
    pub(super) current: &'c Mutex<Current>,
    pub(super) up: mpsc::UnboundedSender<Up>,
}

/// Why the loop stops.
enum Stop {
    Shutdown,
    Failed(SessionError),
    HandedOver,
}

/// Connect and run one session. `id` numbers the connection's sessions
/// (0: the first); `successor`: a handover's new connection.
pub(super) async fn run(
    ctx: &Ctx<'_>,
    id: u64,
    successor: bool,
    control: (
        mpsc::UnboundedSender<Control>,
        mpsc::UnboundedReceiver<Control>,
    ),
) -> End {
    let conn = ctx.conn;
    let venue = conn.venue.borrow().clone();
    let (plan, live) = {
        let c = ctx.current.lock().expect("current lock");
        (c.plan.clone(), c.live.clone())
    };
    let failed = |error| End::Failed {
        error,
        published: Published::default(),
    };
    let (url, ping_override) = match resolve_url(conn, &plan, &venue).await {
        Ok(u) => u,
        Err(e) => return failed(SessionError::Url(e)),
    };
    let max_frame = venue.connection.max_frame_bytes.saturating_add(1024);
    let ws = tokio::select! {
        _ = conn.cancel.cancelled() => return End::Shutdown,
        r = ws::connect(&url, max_frame, Duration::from_secs(10)) => r,
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return failed(SessionError::Connect(e.to_string())),
    };
    {
        let mut p = ctx.pacing.lock().expect("pacing lock");
        p.breaker.success();
        p.backoff.reset();
    }
    info!(venue = %conn.venue_id, conn = conn.index, url = %ws::redact_url(&url), successor, "connected");
    let open = Metrics::venue(&conn.metrics.connections, &conn.venue_id);
    open.inc();
    let (sink, source) = ws.split();
    let mut s = Session {
        ctx,
        id,
        sink,
        p: FramePipeline::new(
            conn,
            ctx.counters,
            ctx.reporter,
            (plan, live),
            venue,
            successor,
        ),
        control_tx: control.0,
        handover_asked: false,
        deferred: None,
        ready_sent: !successor,
        last_frame: Instant::now(),
        ping_counter: 0,
        spare: Vec::new(),
    };
    let stop = s.stream(source, control.1, ping_override).await;
    open.dec();
    s.p.leftovers(matches!(stop, Stop::Shutdown));
    let published = std::mem::take(&mut s.p.published);
    let end = match stop {
        Stop::Shutdown => End::Shutdown,
        Stop::HandedOver => End::HandedOver(published),
        Stop::Failed(error) => {
            // A successor that fails before taking over leaves the old
            // session in charge: nothing was disconnected for consumers.
            if !s.p.holding {
                let mut fx = Effects::default();
                s.p.status(StatusState::Disconnected, &error.to_string(), &mut fx);
                let _ = s.apply(fx).await;
            }
            End::Failed { error, published }
        }
    };
    let _ = s.sink.send(Message::Close(None)).await;
    end
}

struct Session<'s, 'c> {
    ctx: &'s Ctx<'c>,
    id: u64,
    sink: Sink,
    p: FramePipeline<'c>,
    control_tx: mpsc::UnboundedSender<Control>,
    /// A handover was asked for and has not failed.
    handover_asked: bool,
    /// A handover wanted while this session was a successor not yet in
    /// charge: asked for once it takes over.
    deferred: Option<String>,
    /// (Successor) `Ready` was sent.
    ready_sent: bool,
    last_frame: Instant,
    ping_counter: u64,
    /// The publish vector of the last frame's effects, emptied: reused so a
    /// frame's events do not allocate a new one.
    spare: Vec<crate::application::pipeline::Outgoing>,
}

impl<'c> Session<'_, 'c> {
    async fn stream(
        &mut self,
        mut source: Source,
        mut control: mpsc::UnboundedReceiver<Control>,
        ping_override: Option<Duration>,
    ) -> Stop {
        if let Err(e) = self.subscribe().await {
            return Stop::Failed(e);
        }
        // Instruments get their full expected interval from the subscribe.
        self.p.live.restart(Timestamp::now());
        self.ctx.reporter.update(|s| {
            s.state = ConnState::Connected;
            s.subscriptions_acked = 0;
        });
        let mut fx = Effects::default();
        if self.p.holding {
            info!(venue = %self.ctx.conn.venue_id, conn = self.ctx.conn.index, "handover: new connection subscribed");
        } else {
            let state = if self.id == 0 {
                StatusState::Connected
            } else {
                StatusState::Resubscribed
            };
            self.p.status(state, "subscriptions sent", &mut fx);
        }
        self.p.start_books(&mut fx);
        if let Some(stop) = self.apply(fx).await {
            return stop;
        }
        let venue = self.p.venue.clone();
        let (tops, snapshots) = self.p.plan.book_intervals();
        let silence = venue.heartbeat.silence_timeout;
        let mut timers = Timers::new(
            ping_override.or(venue.heartbeat.interval),
            silence
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(50)),
            venue
                .connection
                .max_lifetime
                .map(|l| l.saturating_sub((l / 10).min(Duration::from_secs(300)))),
            tops,
            snapshots,
        );
        loop {
            let mut fx = Effects {
                publish: std::mem::take(&mut self.spare),
                ..Effects::default()
            };
            let mut framed = false;
            tokio::select! {
                biased;
                _ = self.ctx.conn.cancel.cancelled() => return Stop::Shutdown,
                msg = source.next() => {
                    framed = true;
                    if let Err(stop) = self.message(msg, &mut fx).await {
                        return stop;
                    }
                }
                tick = timers.next() => {
                    if let Err(e) = self.tick(tick, &mut fx).await {
                        return Stop::Failed(e);
                    }
                }
                Some(cmd) = control.recv() => match cmd {
                    Control::Fetched(f) => self.p.fetched(f, &mut fx),
                    Control::Venue(v) => {
                        let reconnect = self.p.venue_changed(v);
                        info!(venue = %self.ctx.conn.venue_id, conn = self.ctx.conn.index, reconnect, "venue definition reloaded");
                        if reconnect {
                            fx.handover = Some("the venue's connection settings changed".into());
                        }
                    }
                    Control::HandOver => {
                        self.drain(&mut source).await;
                        return Stop::HandedOver;
                    }
                    Control::HandoverFailed => {
                        self.handover_asked = false;
                        warn!(venue = %self.ctx.conn.venue_id, conn = self.ctx.conn.index, retry_in = %HumanDuration(handover::RETRY), "handover: the new connection failed; keeping this one");
                        timers.lifetime_in(handover::RETRY);
                    }
                    Control::Plan(plan, live) => {
                        if self.p.plan_changed(plan, live, &mut fx) {
                            let (tops, snapshots) = self.p.plan.book_intervals();
                            timers.set_books(tops, snapshots);
                        }
                    }
                    Control::TakeOver(published) => {
                        self.p.take_over(&published, &mut fx);
                        if let Some(why) = self.deferred.take() {
                            fx.handover = Some(why);
                        }
                    }
                },
            }
            if let Some(stop) = self.apply(fx).await {
                return stop;
            }
            if framed {
                // Silence counts from when the session could read again: time
                // spent waiting on a full queue is not the venue's silence.
                self.last_frame = Instant::now();
            }
            if !self.ready_sent && self.p.ready() {
                self.ready_sent = true;
                debug!(venue = %self.ctx.conn.venue_id, conn = self.ctx.conn.index, "handover: new connection ready");
                let _ = self.ctx.up.send(Up::Ready { session: self.id });
            }
        }
    }

    /// A WebSocket message (or its end).
    async fn message(
        &mut self,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        fx: &mut Effects,
    ) -> Result<(), Stop> {
        self.last_frame = Instant::now();
        let now = Timestamp::now();
        self.ctx.reporter.frame(now);
        let frame = match &msg {
            Some(Ok(Message::Text(t))) => RawFrame::Text(t.as_str()),
            Some(Ok(Message::Binary(b))) => RawFrame::Binary(b),
            Some(Ok(Message::Ping(_))) => {
                // tungstenite queues the pong; flushing sends it.
                let _ = self.sink.flush().await;
                return Ok(());
            }
            Some(Ok(Message::Pong(_))) => {
                self.p.awaiting_pong = None;
                return Ok(());
            }
            Some(Ok(Message::Frame(_))) => return Ok(()),
            Some(Ok(Message::Close(c))) => {
                let (code, reason) = c.as_ref().map_or((1005, String::new()), |c| {
                    (u16::from(c.code), c.reason.to_string())
                });
                return Err(Stop::Failed(SessionError::Closed { code, reason }));
            }
            Some(Err(e)) => return Err(Stop::Failed(SessionError::Lost(e.to_string()))),
            None => return Err(Stop::Failed(SessionError::Lost("end of stream".into()))),
        };
        self.tap(&frame);
        self.p.frame(frame, now, Instant::now(), fx);
        Ok(())
    }

    async fn tick(&mut self, tick: Tick, fx: &mut Effects) -> Result<(), SessionError> {
        match tick {
            Tick::Ping => {
                self.ping_counter += 1;
                self.send_ping().await?;
                if self.p.venue.heartbeat.pong_timeout.is_some() {
                    self.p.awaiting_pong.get_or_insert_with(Instant::now);
                }
            }
            Tick::Check => {
                let venue = &self.p.venue;
                let silence = venue.heartbeat.silence_timeout;
                let ack_timeout = venue.subscribe.ack_timeout;
                if self.last_frame.elapsed() > silence {
                    return Err(SessionError::silent(silence));
                }
                if self
                    .p
                    .awaiting_ack
                    .is_some_and(|t| t.elapsed() > ack_timeout)
                {
                    return Err(SessionError::NoAck(HumanDuration(ack_timeout)));
                }
                if let (Some(limit), Some(sent)) =
                    (venue.heartbeat.pong_timeout, self.p.awaiting_pong)
                    && sent.elapsed() > limit
                {
                    self.ctx.counters.pong_timeouts.inc();
                    return Err(SessionError::NoPong(HumanDuration(limit)));
                }
                if !self.p.holding {
                    self.p.check_liveness(fx);
                }
            }
            Tick::Lifetime => fx.handover = Some("the connection's lifetime is ending".into()),
            Tick::Tops(b) => self.p.tops(b, fx),
            Tick::Snapshots(b) => self.p.snapshots(b, fx),
        }
        Ok(())
    }

    /// Carry out the pipeline's effects; `Some` when the session must stop.
    async fn apply(&mut self, fx: Effects) -> Option<Stop> {
        let conn = self.ctx.conn;
        let mut events = fx.publish;
        let mut publish = events.drain(..);
        while let Some(m) = publish.next() {
            let t = m.data_type;
            match conn.queues.push(m).await {
                Ok(()) => {}
                Err(NotQueued::Dropped) => {
                    self.ctx.counters.queue_full.get(t).inc();
                    self.ctx.counters.queue_drops.get(t).inc();
                }
                Err(NotQueued::Closed) => {
                    // Shutting down: this event and the rest are not sent.
                    let dropped = |t| conn.metrics.dropped(&conn.venue_id, t, DropCause::Shutdown);
                    dropped(t).inc();
                    for m in publish {
                        dropped(m.data_type).inc();
                    }
                    return Some(Stop::Shutdown);
                }
            }
        }
        drop(publish);
        // The next frame's events go into the same (now empty) vector,
        // unless a burst made it large.
        if events.capacity() <= 64 {
            self.spare = events;
        }
        for text in fx.send {
            if let Err(e) = self.send(text).await {
                return Some(Stop::Failed(e));
            }
        }
        for req in fx.fetch {
            spawn_fetch(
                conn.rest.clone(),
                conn.snapshot_limiter.clone(),
                req,
                self.control_tx.clone(),
            );
        }
        if let Some(why) = fx.handover {
            self.want_handover(why);
        }
        fx.end.map(Stop::Failed)
    }

    fn want_handover(&mut self, why: String) {
        if self.p.holding {
            self.deferred.get_or_insert(why);
        } else if !self.handover_asked {
            self.handover_asked = true;
            info!(venue = %self.ctx.conn.venue_id, conn = self.ctx.conn.index, reason = %why, "handover: opening a new connection");
            let _ = self.ctx.up.send(Up::WantHandover {
                session: self.id,
                reason: why,
            });
        }
    }

    /// Before handing over: map what this socket already holds (frames the
    /// venue sent it before the successor existed could otherwise be lost
    /// with it), until no frame comes for [`handover::DRAIN_IDLE`], at most
    /// [`handover::DRAIN_MAX`].
    async fn drain(&mut self, source: &mut Source) {
        let until = Instant::now() + handover::DRAIN_MAX;
        let mut drained = 0u64;
        while Instant::now() < until {
            let msg = match tokio::time::timeout(handover::DRAIN_IDLE, source.next()).await {
                Ok(Some(Ok(m))) => m,
                _ => break,
            };
            let frame = match &msg {
                Message::Text(t) => RawFrame::Text(t.as_str()),
                Message::Binary(b) => RawFrame::Binary(b),
                Message::Close(_) => break,
                _ => continue,
            };
            self.tap(&frame);
            drained += 1;
            let mut fx = Effects::default();
            self.p
                .frame(frame, Timestamp::now(), Instant::now(), &mut fx);
            fx.end = None;
            fx.handover = None;
            if self.apply(fx).await.is_some() {
                break;
            }
        }
        debug!(venue = %self.ctx.conn.venue_id, conn = self.ctx.conn.index, drained, "handover: old connection drained");
    }

    /// Copy a received frame to `mdrelay record`, when recording.
    fn tap(&self, frame: &RawFrame<'_>) {
        if let Some(tap) = &self.ctx.conn.tap {
            let _ = tap.send(match *frame {
                RawFrame::Text(t) => OwnedFrame::Text(t.to_owned()),
                RawFrame::Binary(b) => OwnedFrame::Binary(b.to_vec()),
            });
        }
    }

    /// Send a message, paced to the venue's `max_messages_per_second`.
    async fn send(&mut self, text: String) -> Result<(), SessionError> {
        debug!(venue = %self.ctx.conn.venue_id, conn = self.ctx.conn.index, message = truncate(&text, 300), "send");
        self.sink
            .send(Message::text(text))
            .await
            .map_err(|e| SessionError::Send(e.to_string()))?;
        if let Some(rate) = self
            .p
            .venue
            .connection
            .max_messages_per_second
            .filter(|r| *r > 0)
        {
            tokio::time::sleep(Duration::from_secs_f64(1.0 / f64::from(rate))).await;
        }
        Ok(())
    }

    async fn subscribe(&mut self) -> Result<(), SessionError> {
        let venue = self.p.venue.clone();
        let market = self.p.plan.market.clone();
        let mut request_id = 0u64;
        let template = |e: String| SessionError::Template(e);
        for t in &venue.subscribe.on_connect {
            let mut vars = TemplateVars {
                venue: &venue.id,
                market: market.as_deref(),
                request_id: &mut request_id,
                now_ms: Timestamp::now().as_millis(),
            };
            for m in render(t, "null", &mut vars).map_err(template)? {
                self.send(m).await?;
            }
        }
        if let Some(t) = &venue.subscribe.message {
            let messages = subscribe_messages(
                &venue,
                t,
                market.as_deref(),
                &self.p.plan.items,
                &mut request_id,
            )
            .map_err(template)?;
            let acks = venue.control.iter().any(|r| r.kind == ControlKind::Ack);
            if acks && !messages.is_empty() {
                self.p.awaiting_ack = Some(Instant::now());
            }
            for m in messages {
                self.send(m).await?;
            }
        }
        Ok(())
    }

    async fn send_ping(&mut self) -> Result<(), SessionError> {
        let send = |e: tokio_tungstenite::tungstenite::Error| SessionError::Send(e.to_string());
        if self.p.venue.heartbeat.websocket_ping {
            return self
                .sink
                .send(Message::Ping(Vec::new().into()))
                .await
                .map_err(send);
        }
        let msgs =
            heartbeat_messages(&self.p.venue, self.ping_counter).map_err(SessionError::Template)?;
        for t in msgs {
            self.sink.send(Message::text(t)).await.map_err(send)?;
        }
        Ok(())
    }
}
