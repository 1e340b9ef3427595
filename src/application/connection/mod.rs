//! One venue connection: a supervised task that connects, subscribes, reads
//! frames through the mapper into the queues, keeps the connection alive, and
//! reconnects with backoff behind a circuit breaker when it fails.
//!
//! - [`mod@self`]: the supervision loop (backoff, breaker, status on failure);
//! - `session`: one connected session, a single `select!` loop;
//! - `handling`: what a session does with frames, snapshots and gaps;
//! - `handover`: the planned, overlapping reconnect (book gate);
//! - `successor`: the session side of a handover;
//! - `books`: order-book resync (REST snapshots, resubscribing one instrument);
//! - `tops`, `snapshots`: the timers publishing `l2_top` and `l2_snapshot`;
//! - `messages`: building the messages sent to the venue.

mod books;
mod handling;
pub mod handover;
mod messages;
mod session;
mod snapshots;
mod successor;
mod tops;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::breaker::{Backoff, CircuitBreaker};
use super::health::{ConnState, Health};
use super::metrics::Metrics;
use super::pipeline::Queues;
use super::subscribe::ConnPlan;
use crate::config::relay::{Breaker, Reconnect};
use crate::engine::venue::Venue;
use crate::infrastructure::rest::Rest;
use crate::serialization::PayloadFormat;
use crate::serialization::frames::OwnedFrame;

pub use books::RateLimiter;

/// Everything a connection task needs.
pub struct Connection {
    /// Venue id.
    pub venue_id: Arc<str>,
    /// Index of this connection among the venue's.
    pub index: usize,
    /// What it subscribes to.
    pub plan: ConnPlan,
    /// The current venue definition (replaced on reload).
    pub venue: watch::Receiver<Arc<Venue>>,
    /// URL override from the relay config.
    pub url_override: Option<String>,
    /// Origin (`scheme://host:port`) replacing the venue's REST origin.
    pub rest_url: Option<String>,
    /// Backoff settings.
    pub reconnect: Reconnect,
    /// Breaker settings.
    pub breaker: Breaker,
    /// Where events go.
    pub queues: Queues,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Health registry.
    pub health: Arc<Health>,
    /// HTTP client for bootstrap and snapshot requests.
    pub rest: Rest,
    /// Paces REST snapshot requests across the venue's connections.
    pub snapshot_limiter: Arc<RateLimiter>,
    /// Payload encoding.
    pub format: PayloadFormat,
    /// Stops the task.
    pub cancel: CancellationToken,
    /// Every received text or binary frame is also sent here (`mdrelay record`).
    pub tap: Option<tokio::sync::mpsc::UnboundedSender<OwnedFrame>>,
}

/// How a session ended.
#[derive(Debug)]
enum End<'c> {
    /// Asked to stop.
    Shutdown,
    /// The connection was handed over to a successor session, which is
    /// already connected and streaming: run it next.
    HandedOver(Successor<'c>),
    /// The connection failed or dropped.
    Failed { connected: bool, reason: String },
}

/// A successor session, already running (its future is polled by the old
/// session during the handover, then by the supervision loop).
struct Successor<'c>(Pin<Box<dyn Future<Output = End<'c>> + Send + 'c>>);

impl std::fmt::Debug for Successor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Successor")
    }
}

/// Reconnect pacing shared by a session and its successor.
struct Pacing {
    backoff: Backoff,
    breaker: CircuitBreaker,
}

/// Per data type counter handles of one venue, each created on first use
/// (so no series appears for a type the venue never publishes).
struct PerType<M = Counter> {
    cells: [std::sync::OnceLock<M>; crate::domain::DataType::ALL.len()],
    make: Box<dyn Fn(crate::domain::DataType) -> M + Send + Sync>,
}

impl<M> PerType<M> {
    fn new(make: impl Fn(crate::domain::DataType) -> M + Send + Sync + 'static) -> Self {
        PerType {
            cells: Default::default(),
            make: Box::new(make),
        }
    }

    fn get(&self, t: crate::domain::DataType) -> &M {
        self.cells[t.index()].get_or_init(|| (self.make)(t))
    }
}

/// Per-connection metric handles (resolved once).
struct Counters {
    frames: Counter,
    bytes: Counter,
    data_frames: Counter,
    failures: Counter,
    unrouted: Counter,
    mapped: PerType,
    generated: PerType,
    /// Venue event time to receipt.
    lag: PerType<prometheus_client::metrics::histogram::Histogram>,
    /// Queue full (`drop_newest`): also counted in the older
    /// `mdrelay_queue_drops_total`.
    queue_full: PerType,
    queue_drops: PerType,
    unsubscribed: PerType,
    book_resync: PerType,
    checksum_only: PerType,
    handover_covered: PerType,
    rejected: Counter,
    gaps: Counter,
    resyncs: Counter,
    mismatches: Counter,
    /// One log line per cause per 10 s for what a venue can repeat at will
    /// (bad frames, error frames, gaps); the rest are counted.
    logs: Mutex<crate::infrastructure::logs::LogLimiter>,
    suppressed: Counter,
}

impl Counters {
    /// Whether a line for `cause` may be logged now (`Some(n)`: `n` were
    /// left out since the last one).
    fn log(&self, cause: &'static str) -> Option<u64> {
        let allowed = self.logs.lock().ok().and_then(|mut l| l.allow(cause));
        if allowed.is_none() {
            self.suppressed.inc();
        }
        allowed
    }
}

impl Counters {
    fn new(m: &Arc<Metrics>, venue: &str) -> Self {
        use super::metrics::{DropCause, VenueTypeLabel};
        let family = |pick: fn(
            &Metrics,
        ) -> &prometheus_client::metrics::family::Family<
            VenueTypeLabel,
            Counter,
        >| {
            let (m, venue) = (m.clone(), venue.to_owned());
            PerType::new(move |t| {
                pick(&m)
                    .get_or_create(&VenueTypeLabel {
                        venue: venue.clone(),
                        data_type: t.as_str().to_owned(),
                    })
                    .clone()
            })
        };
        let drops = |cause: DropCause| {
            let (m, venue) = (m.clone(), venue.to_owned());
            PerType::new(move |t| m.dropped(&venue, t, cause))
        };
        Counters {
            frames: Metrics::venue(&m.frames_received, venue),
            bytes: Metrics::venue(&m.bytes_received, venue),
            data_frames: Metrics::venue(&m.data_frames, venue),
            failures: Metrics::venue(&m.mapping_failures, venue),
            unrouted: Metrics::venue(&m.unrouted_frames, venue),
            mapped: family(|m| &m.events_mapped),
            lag: {
                let (m, venue) = (m.clone(), venue.to_owned());
                PerType::new(move |t| {
                    m.venue_lag
                        .get_or_create(&VenueTypeLabel {
                            venue: venue.clone(),
                            data_type: t.as_str().to_owned(),
                        })
                        .clone()
                })
            },
            generated: family(|m| &m.events_generated),
            queue_full: drops(DropCause::QueueFull),
            queue_drops: family(|m| &m.queue_drops),
            unsubscribed: drops(DropCause::Unsubscribed),
            book_resync: drops(DropCause::BookResync),
            checksum_only: drops(DropCause::ChecksumOnly),
            handover_covered: drops(DropCause::HandoverCovered),
            rejected: Metrics::venue(&m.subscriptions_rejected, venue),
            gaps: Metrics::venue(&m.gaps, venue),
            resyncs: Metrics::venue(&m.resyncs, venue),
            mismatches: Metrics::venue(&m.checksum_mismatches, venue),
            logs: Mutex::new(crate::infrastructure::logs::LogLimiter::new(
                Duration::from_secs(10),
            )),
            suppressed: m.logs_suppressed.clone(),
        }
    }
}

use crate::infrastructure::logs::truncate;

impl Connection {
    /// Run until cancelled: connect, stream, reconnect.
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
        let gauge = || circuit.set(pacing.lock().expect("pacing lock").breaker.state().gauge());
        let mut sessions = 0u64;
        let mut next: Option<Successor<'_>> = None;
        loop {
            if self.cancel.is_cancelled() {
                break;
            }
            let end = match next.take() {
                Some(successor) => successor.0.await,
                None => {
                    let wait = pacing
                        .lock()
                        .expect("pacing lock")
                        .breaker
                        .wait(Instant::now());
                    if let Some(wait) = wait {
                        gauge();
                        reporter.update(|s| s.state = ConnState::CircuitOpen);
                        warn!(venue = %self.venue_id, conn = self.index, wait = %crate::domain::HumanDuration(wait), "circuit open: pausing reconnects");
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
                    session::run(&self, sessions, &reporter, &counters, &pacing, None).await
                }
            };
            gauge();
            sessions += 1;
            match end {
                End::Shutdown => break,
                End::HandedOver(successor) => {
                    handovers.inc();
                    info!(venue = %self.venue_id, conn = self.index, "handed over to the new connection");
                    next = Some(successor);
                }
                End::Failed { connected, reason } => {
                    reconnects.inc();
                    let delay = {
                        let mut p = pacing.lock().expect("pacing lock");
                        if !connected {
                            p.breaker.failure(Instant::now());
                        }
                        p.backoff.next_delay()
                    };
                    let delay_text = crate::domain::HumanDuration(delay);
                    if reason.contains(": 1000 ") {
                        // A normal close: the venue ended the session (a
                        // maintenance cut, the end of a recorded session).
                        info!(venue = %self.venue_id, conn = self.index, reason = %reason, retry_in = %delay_text, "connection closed by the venue; reconnecting");
                    } else if connected {
                        warn!(venue = %self.venue_id, conn = self.index, error = %reason, retry_in = %delay_text, "connection lost; reconnecting");
                    } else {
                        warn!(venue = %self.venue_id, conn = self.index, error = %reason, retry_in = %delay_text, "cannot connect; retrying");
                    }
                    reporter.update(|s| {
                        s.state = ConnState::Reconnecting;
                        s.reconnects += 1;
                        s.last_error = Some(reason.clone());
                    });
                    tokio::select! {
                        _ = self.cancel.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        reporter.update(|s| s.state = ConnState::Stopped);
    }
}

/// Replace the origin (`scheme://host[:port]`) of `url` with `origin`.
pub fn with_origin(url: &str, origin: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    format!("{}{}", origin.trim_end_matches('/'), &url[path_start..])
}

/// How long to wait before retrying a failed REST snapshot.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    #[test]
    fn origins_are_replaced() {
        assert_eq!(
            super::with_origin(
                "https://api.example.com/api/v3/depth?symbol=X",
                "http://127.0.0.1:9000"
            ),
            "http://127.0.0.1:9000/api/v3/depth?symbol=X"
        );
        assert_eq!(super::with_origin("https://h", "http://l/"), "http://l");
    }
}
