//! The session side of a handover (see [`super::handover`] for the
//! design): opening the successor, the successor telling the old session it
//! is ready, the old session draining its socket and handing over.

use std::sync::Mutex;
use std::time::Instant;

use futures_util::StreamExt;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::handover::{self, Published};
use super::session::{Session, Source, run};
use super::{Connection, Counters, End, Pacing, Successor};
use crate::application::health::ConnReporter;
use crate::domain::{DataType, Timestamp};
use crate::engine::mapper::RawFrame;
use crate::infrastructure::ws::Message;

/// A successor's side of a handover: how it tells the old session it is
/// ready, and how it learns what the old session published last.
pub(super) struct Incoming {
    ready: Option<oneshot::Sender<()>>,
    pub(super) takeover: Option<oneshot::Receiver<Published>>,
    /// When the successor received its first market data.
    first_data: Option<Instant>,
}

/// The old session's side of a handover in progress.
pub(super) struct Outgoing<'c> {
    pub(super) successor: Successor<'c>,
    pub(super) ready: oneshot::Receiver<()>,
    pub(super) takeover: oneshot::Sender<Published>,
}

/// Box a successor session (a named function keeps the recursive future's
/// type finite).
fn successor<'c>(
    conn: &'c Connection,
    n: u64,
    reporter: &'c ConnReporter,
    counters: &'c Counters,
    pacing: &'c Mutex<Pacing>,
    incoming: Incoming,
) -> Successor<'c> {
    Successor(Box::pin(run(
        conn,
        n,
        reporter,
        counters,
        pacing,
        Some(incoming),
    )))
}

impl<'c> Session<'c> {
    /// Open the successor connection; this session keeps streaming until
    /// the successor is ready.
    pub(super) fn start_successor(&self, why: &str) -> Outgoing<'c> {
        info!(venue = %self.conn.venue_id, conn = self.conn.index, reason = why, "handover: opening a new connection");
        let (ready_tx, ready_rx) = oneshot::channel();
        let (takeover_tx, takeover_rx) = oneshot::channel();
        let incoming = Incoming {
            ready: Some(ready_tx),
            takeover: Some(takeover_rx),
            first_data: None,
        };
        Outgoing {
            successor: successor(
                self.conn,
                self.n + 1,
                self.reporter,
                self.counters,
                self.pacing,
                incoming,
            ),
            ready: ready_rx,
            takeover: takeover_tx,
        }
    }

    /// Before handing over: map what this socket already holds (see
    /// [`handover::DRAIN_IDLE`]). Errors end the drain; the successor takes
    /// over either way.
    pub(super) async fn drain(&mut self, source: &mut Source) {
        let until = Instant::now() + handover::DRAIN_MAX;
        let mut drained = 0u64;
        while Instant::now() < until {
            let msg = match tokio::time::timeout(handover::DRAIN_IDLE, source.next()).await {
                Ok(Some(Ok(m))) => m,
                _ => break,
            };
            let now = Timestamp::now();
            let frame = match &msg {
                Message::Text(t) => RawFrame::Text(t.as_str()),
                Message::Binary(b) => RawFrame::Binary(b),
                Message::Close(_) => break,
                _ => continue,
            };
            self.tap(&frame);
            drained += 1;
            if self.on_frame(frame, now).await.is_some() {
                break;
            }
        }
        debug!(venue = %self.conn.venue_id, conn = self.conn.index, drained, "handover: old connection drained");
    }

    /// This session failed. With a successor already running, the successor
    /// takes over at once; otherwise the connection reconnects.
    pub(super) fn failed(&mut self, reason: String, out: Option<Outgoing<'c>>) -> End<'c> {
        match out {
            Some(o) => {
                warn!(venue = %self.conn.venue_id, conn = self.conn.index, error = %reason, "connection lost during a handover: the new connection takes over");
                let _ = o.takeover.send(std::mem::take(&mut self.published));
                End::HandedOver(o.successor)
            }
            None => End::Failed {
                connected: true,
                reason,
            },
        }
    }

    /// A successor: tell the old session when market data flows and every
    /// book instrument has a snapshot held (or data has flowed for a while).
    pub(super) fn check_ready(&mut self) {
        let Some(inc) = self.incoming.as_mut() else {
            return;
        };
        let Some(first) = inc.first_data else {
            return;
        };
        if inc.ready.is_none() {
            return;
        }
        let books_ready = first.elapsed() >= handover::READY_FALLBACK
            || !self.conn.plan.types.contains(&DataType::L2Orderbook)
            || self
                .conn
                .plan
                .items
                .iter()
                .filter(|i| i.data_type == DataType::L2Orderbook)
                .all(|i| {
                    self.gate
                        .as_ref()
                        .is_some_and(|g| g.has_snapshot(&i.instrument))
                });
        if books_ready && let Some(tx) = self.incoming.as_mut().and_then(|i| i.ready.take()) {
            debug!(venue = %self.conn.venue_id, conn = self.conn.index, "handover: new connection ready");
            let _ = tx.send(());
        }
    }

    /// A successor saw market data.
    pub(super) fn saw_data(&mut self) {
        if let Some(inc) = self.incoming.as_mut()
            && inc.first_data.is_none()
        {
            inc.first_data = Some(Instant::now());
        }
    }
}
