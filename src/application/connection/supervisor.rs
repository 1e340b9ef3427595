//! The connection's supervision loop: run a session; when it fails, wait
//! for the backoff (and the circuit breaker) and start another.
//!
//! A planned handover (the venue's connection lifetime ending, connection
//! settings changed by a reload, the venue asking for a reconnect) runs as
//! two sibling sessions this loop polls side by side, talking over
//! channels, with no session running inside another:
//!
//! 1. the old session sends `Up::WantHandover`; the loop starts a successor;
//! 2. the successor connects, subscribes, holds its book events back, and
//!    sends `Up::Ready` once it has data and a snapshot per book;
//! 3. the loop tells the old session `Control::HandOver`: it maps what its
//!    socket still holds, stops, and returns what it published last;
//! 4. the loop hands that to the successor (`Control::TakeOver`), which
//!    releases its held book events after it and runs on as the session.
//!
//! A successor that fails tells the old session `Control::HandoverFailed`
//! (it tries again later); an old session that fails during the handover
//! is replaced by the successor at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::error::End;
use super::session::{self, Control, Ctx, Current, Up};
use super::{Backoff, CircuitBreaker, Connection, Counters, Pacing};
use crate::application::health::ConnState;
use crate::application::liveness::InstrumentTable;
use crate::application::metrics::Metrics;
use crate::application::subscribe::ConnPlan;
use crate::domain::DataType;
use crate::domain::HumanDuration;
use crate::engine::mapper::Mapper;

/// A running session: its future and the sender of its control channel.
struct Running<'a> {
    id: u64,
    future: Pin<Box<dyn Future<Output = End> + Send + 'a>>,
    control: mpsc::UnboundedSender<Control>,
}

fn start<'a>(ctx: &'a Ctx<'a>, id: u64, successor: bool) -> Running<'a> {
    let (tx, rx) = mpsc::unbounded_channel();
    Running {
        id,
        future: Box::pin(session::run(ctx, id, successor, (tx.clone(), rx))),
        control: tx,
    }
}

impl Connection {
    /// Run until cancelled: connect, stream, hand over, reconnect.
    pub async fn run(self) {
        let stale = self.venue.borrow().heartbeat.silence_timeout;
        let reporter = self.health.register(&self.venue_id, self.index, stale);
        let counters = Counters::new(&self.metrics, &self.venue_id);
        let circuit = Metrics::venue(&self.metrics.circuit_state, &self.venue_id);
        let reconnects = Metrics::venue(&self.metrics.reconnects, &self.venue_id);
        let handovers = Metrics::venue(&self.metrics.handovers, &self.venue_id);
        let pacing = Mutex::new(Pacing {
            backoff: Backoff::new(&self.reconnect),
            breaker: CircuitBreaker::new(&self.breaker),
        });
        let (up_tx, mut up) = mpsc::unbounded_channel();
        let mut plans = self.plans.clone();
        let plan = plans.borrow_and_update().clone();
        let live = Arc::new(self.instrument_table(&plan));
        reporter.set_instruments(live.clone());
        let now = Mutex::new(Current { plan, live });
        let mut plans_open = true;
        let ctx = Ctx {
            conn: &self,
            reporter: &reporter,
            counters: &counters,
            pacing: &pacing,
            current: &now,
            up: up_tx,
        };
        let gauge = || circuit.set(pacing.lock().expect("pacing lock").breaker.state().gauge());
        let mut venue = self.venue.clone();
        let mut next_id = 0u64;
        'connect: loop {
            if self.cancel.is_cancelled() {
                break;
            }
            let wait = pacing
                .lock()
                .expect("pacing lock")
                .breaker
                .wait(Instant::now());
            if let Some(wait) = wait {
                gauge();
                reporter.update(|s| s.state = ConnState::CircuitOpen);
                warn!(venue = %self.venue_id, conn = self.index, wait = %HumanDuration(wait), "circuit open: pausing reconnects");
                tokio::select! {
                    _ = self.cancel.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                let _ = pacing
                    .lock()
                    .expect("pacing lock")
                    .breaker
                    .wait(Instant::now());
            }
            gauge();
            let mut current = start(&ctx, next_id, false);
            next_id += 1;
            let mut successor: Option<Running<'_>> = None;
            // Poll the session (and a successor) until the connection must
            // reconnect or stop.
            let error = loop {
                tokio::select! {
                    end = &mut current.future => {
                        gauge();
                        match end {
                            End::Shutdown => break 'connect,
                            End::HandedOver(published) => {
                                let Some(s) = successor.take() else {
                                    // Handed over to nobody: cannot happen,
                                    // but reconnecting is always safe.
                                    continue 'connect;
                                };
                                handovers.inc();
                                info!(venue = %self.venue_id, conn = self.index, "handed over to the new connection");
                                let _ = s.control.send(Control::TakeOver(published));
                                current = s;
                            }
                            End::Failed { error, published } => match successor.take() {
                                Some(s) => {
                                    warn!(venue = %self.venue_id, conn = self.index, %error, "connection lost during a handover: the new connection takes over");
                                    let _ = s.control.send(Control::TakeOver(published));
                                    current = s;
                                }
                                None => break error,
                            },
                        }
                    }
                    end = async { (&mut successor.as_mut().expect("guarded").future).await }, if successor.is_some() => {
                        successor = None;
                        match end {
                            End::Shutdown => break 'connect,
                            other => {
                                if let End::Failed { error, .. } = &other {
                                    warn!(venue = %self.venue_id, conn = self.index, %error, "handover: the new connection failed");
                                }
                                let _ = current.control.send(Control::HandoverFailed);
                            }
                        }
                    }
                    Some(msg) = up.recv() => match msg {
                        Up::WantHandover { session, reason } if session == current.id && successor.is_none() => {
                            info!(venue = %self.venue_id, conn = self.index, %reason, "handover: starting the new connection");
                            successor = Some(start(&ctx, next_id, true));
                            next_id += 1;
                        }
                        Up::Ready { session } if successor.as_ref().is_some_and(|s| s.id == session) => {
                            let _ = current.control.send(Control::HandOver);
                        }
                        _ => {}
                    },
                    changed = plans.changed(), if plans_open => {
                        // A connection whose plan sender is gone keeps its
                        // plan (it is being stopped).
                        plans_open = changed.is_ok();
                        if changed.is_ok() {
                            let plan = plans.borrow_and_update().clone();
                            let live = self.replace_plan(&now, plan.clone(), &counters);
                            reporter.set_instruments(live.clone());
                            let _ = current.control.send(Control::Plan(plan.clone(), live.clone()));
                            if let Some(s) = &successor {
                                let _ = s.control.send(Control::Plan(plan, live));
                            }
                        }
                    }
                    changed = venue.changed() => {
                        if changed.is_ok() {
                            let v = venue.borrow_and_update().clone();
                            {
                                let c = now.lock().expect("current lock");
                                c.live.set_intervals(&v, &c.plan.liveness);
                            }
                            let _ = current.control.send(Control::Venue(v.clone()));
                            if let Some(s) = &successor {
                                let _ = s.control.send(Control::Venue(v));
                            }
                        }
                    }
                }
            };
            reconnects.inc();
            let delay = self.failed(&error, &pacing, &reporter);
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        reporter.update(|s| s.state = ConnState::Stopped);
        // This connection's stale instruments leave the gauge with it.
        let live = now.lock().expect("current lock").live.clone();
        for (t, n) in live.stale_counts() {
            counters.stale_now.get(t).dec_by(n as i64);
        }
    }

    /// A session failed: count it against the breaker when it never
    /// connected, log it, report it, and return how long to wait.
    fn failed(
        &self,
        error: &super::error::SessionError,
        pacing: &Mutex<Pacing>,
        reporter: &crate::application::health::ConnReporter,
    ) -> std::time::Duration {
        let delay = {
            let mut p = pacing.lock().expect("pacing lock");
            if !error.connected() {
                p.breaker.failure(Instant::now());
            }
            p.backoff.next_delay()
        };
        let retry_in = HumanDuration(delay);
        if error.is_normal_close() {
            // The venue ended the session (a maintenance cut, the end of a
            // recorded session).
            info!(venue = %self.venue_id, conn = self.index, reason = %error, %retry_in, "connection closed by the venue; reconnecting");
        } else if error.connected() {
            warn!(venue = %self.venue_id, conn = self.index, %error, %retry_in, "connection lost; reconnecting");
        } else {
            warn!(venue = %self.venue_id, conn = self.index, %error, %retry_in, "cannot connect; retrying");
        }
        reporter.update(|s| {
            s.state = ConnState::Reconnecting;
            s.reconnects += 1;
            s.last_error = Some(error.to_string());
        });
        delay
    }

    /// The connection's plan changed: a new instrument table, carrying the
    /// state of the instruments it keeps (the stale gauge follows), becomes
    /// the current one, for the running sessions and the next ones.
    fn replace_plan(
        &self,
        current: &Mutex<Current>,
        plan: Arc<ConnPlan>,
        counters: &Counters,
    ) -> Arc<InstrumentTable> {
        let live = self.instrument_table(&plan);
        let mut c = current.lock().expect("current lock");
        live.carry_from(&c.live);
        for (t, n) in c.live.stale_counts() {
            counters.stale_now.get(t).dec_by(n as i64);
        }
        for (t, n) in live.stale_counts() {
            counters.stale_now.get(t).inc_by(n as i64);
        }
        let live = Arc::new(live);
        *c = Current {
            plan,
            live: live.clone(),
        };
        live
    }

    /// The table of a plan's instruments and their data types.
    fn instrument_table(&self, plan: &ConnPlan) -> InstrumentTable {
        let venue = self.venue.borrow().clone();
        let mut mapper = Mapper::new(
            self.venue_id.clone(),
            plan.market.clone(),
            plan.pinned.clone(),
        );
        let mut types: BTreeMap<&str, Vec<DataType>> = BTreeMap::new();
        for i in &plan.items {
            let v = types.entry(i.instrument.as_str()).or_default();
            // An item stands for every subscribed type sharing its channel.
            let shared = plan.types.iter().copied().filter(|t| {
                *t == i.data_type
                    || venue
                        .channels
                        .get(t)
                        .is_some_and(|c| c.name == i.channel && c.params == i.params)
            });
            for t in shared {
                if !v.contains(&t) {
                    v.push(t);
                }
            }
        }
        let rows: Vec<(String, String, Vec<DataType>)> = plan
            .instruments
            .iter()
            .map(|name| {
                let symbol = mapper.resolve_symbol(&venue, name).symbol.clone();
                let t = types.get(name.as_str()).cloned().unwrap_or_default();
                (name.clone(), symbol, t)
            })
            .collect();
        InstrumentTable::new(rows, &venue, &plan.liveness)
    }
}
