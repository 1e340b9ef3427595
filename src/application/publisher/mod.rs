//! Publishing to JetStream: in order, pipelined (many acks in flight, awaited
//! out of line), bounded by a shared window, and lossless through outages.
//!
//! Every message carries `Nats-Msg-Id`, so a retry — or a replay of the same
//! frames after a reconnect — is stored once. What happens to a message
//! depends on why its attempt did not end in an ack ([`acks::Failure`]):
//!
//! - **transient** (NATS disconnected, no ack within `ack_timeout`, no
//!   responders while a stream leader is elected): the message keeps its
//!   window slot and is sent again, with the same id, once NATS is connected.
//!   It is never dropped for this: a long outage fills the window, then the
//!   queues, and each queue's full policy decides (`block` stops reading the
//!   venue; `drop_newest` drops, counted as `queue_full`);
//! - **refused** (JetStream answered with an error, e.g. a full stream with
//!   `discard = "new"`): retried after each of `retry_delays`, then dropped
//!   and counted as `publish_failed` — JetStream said it did not store it;
//! - at **shutdown**, what is still queued or unacknowledged when the drain
//!   deadline passes is abandoned, counted as `shutdown` and reported, split
//!   into never sent and sent but unconfirmed (those may have been stored).

use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

mod send;

use super::acks::{self, Failure, Flight, Inflight};
use super::batches::{Batcher, Settled};
pub use super::headers::{HeaderTemplate, headers};
use super::metrics::{DropCause, Metrics, TypeLabel, VenueTypeLabel};
use super::pipeline::Outgoing;
pub use super::publish_report::{LatencyProbe, PublishSignals, PublisherReport};
use crate::config::relay::raw::{PublishMode, RawStream};
use crate::domain::DataType;
use crate::infrastructure::logs::LogLimiter;
use crate::infrastructure::nats::ServerFeatures;
use crate::infrastructure::wire::Wire;

/// Settings shared by the publishers.
#[derive(Clone)]
pub struct PublishSettings {
    /// The NATS client.
    pub client: async_nats::Client,
    /// How long an ack may take before the message is sent again.
    pub ack_timeout: Duration,
    /// Shared bound on messages in flight (sent or waiting to be sent again).
    pub permits: Arc<Semaphore>,
    /// Delays before each retry of a message JetStream refused.
    pub retry_delays: Arc<[Duration]>,
    /// `Content-Type` header.
    pub content_type: &'static str,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// What the publishers tell `/health`.
    pub signals: Arc<PublishSignals>,
    /// Cancelled when the shutdown drain deadline passes: abandon what is
    /// left and report it.
    pub give_up: CancellationToken,
    /// Exact frame-to-ack latencies, when measuring (`mdrelay bench`).
    pub probe: Option<Arc<LatencyProbe>>,
    /// `[nats.publish] mode`: whether first attempts go out in fast-ingest
    /// batches where the server and the stream allow it
    /// ([`super::streams::batched_type`]).
    pub mode: PublishMode,
    /// The configured streams (which one takes each data type).
    pub streams: Arc<[RawStream]>,
    /// Flow asked of the server for fast-ingest batches.
    pub batch_flow: u16,
    /// The direct publish connection (`writer = "direct"`); `None` publishes
    /// through `client`.
    pub wire: Option<Wire>,
}

/// Delay before resending after the `n`th transient failure in a row of one
/// message: 100 ms doubling to 2 s.
fn transient_delay(n: u32) -> Duration {
    Duration::from_millis(100u64 << n.min(5)).min(Duration::from_secs(2))
}

/// A message waiting to be sent again.
struct Due {
    at: tokio::time::Instant,
    seq: u64,
    flight: Flight,
}

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    /// Earliest first (the heap is a max-heap).
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Metric handles of one venue, resolved once (the ack path only bumps
/// atomics).
struct Handles {
    venue: Arc<str>,
    headers: HeaderTemplate,
    published: prometheus_client::metrics::counter::Counter,
    duplicate: prometheus_client::metrics::counter::Counter,
    latency: prometheus_client::metrics::histogram::Histogram,
}

/// One publisher's state.
struct Publisher {
    s: PublishSettings,
    data_type: DataType,
    venues: Vec<Handles>,
    inflight: Inflight,
    retries: BinaryHeap<Due>,
    retry_seq: u64,
    report: PublisherReport,
    logs: LogLimiter,
    /// Fast-ingest batches for first attempts, when batched.
    batcher: Option<Batcher>,
    /// When the last message went into a batch.
    last_batched: Instant,
    /// Messages this publisher wrote on the direct connection.
    direct_writes: prometheus_client::metrics::counter::Counter,
}

/// How long a batch's queue stays empty before the batch is ended (its
/// final ack confirms the rest): short against the ack latency, long
/// enough that a momentary gap at full speed does not end it.
const BATCH_LINGER: Duration = Duration::from_micros(300);

/// `mode = "auto"`: the queue depth (events waiting for this publisher) from
/// which the next event opens a fast-ingest batch instead of taking its own
/// ack. Under it the publisher keeps up with per-message acks, whose latency
/// is one round trip; a batch costs a round trip to start and one to end.
const AUTO_DEEP_QUEUE: usize = 64;

/// `mode = "auto"`: the acks outstanding from which the next event goes in a
/// batch (the per-message protocol is falling behind).
const AUTO_DEEP_ACKS: usize = 256;

/// Whether an event goes in a batch, for a publisher with a batcher: always
/// in `batched` mode; in `auto`, while a batch is open, or when the queue or
/// the acks outstanding are deep.
fn into_batch(mode: PublishMode, batch_open: bool, queued: usize, awaiting_acks: usize) -> bool {
    mode != PublishMode::Auto
        || batch_open
        || queued >= AUTO_DEEP_QUEUE
        || awaiting_acks >= AUTO_DEEP_ACKS
}

impl Publisher {
    fn handles(&mut self, m: &Outgoing) -> &Handles {
        let i = self.venue_index(m);
        &self.venues[i]
    }

    /// The index of `m`'s venue in `venues`, its handles made on first use.
    fn venue_index(&mut self, m: &Outgoing) -> usize {
        match self
            .venues
            .iter()
            .position(|h| Arc::ptr_eq(&h.venue, &m.venue) || h.venue == m.venue)
        {
            Some(i) => i,
            None => {
                let l = labels(m);
                let metrics = &self.s.metrics;
                self.venues.push(Handles {
                    venue: m.venue.clone(),
                    headers: HeaderTemplate::new(&m.venue, m.data_type, self.s.content_type),
                    published: metrics.events_published.get_or_create(&l).clone(),
                    duplicate: metrics.events_duplicate.get_or_create(&l).clone(),
                    latency: metrics.ack_latency.get_or_create(&l).clone(),
                });
                self.venues.len() - 1
            }
        }
    }

    /// Give up on the batch when NATS is gone or it made no progress.
    fn expire_batch(&mut self, connected: bool) {
        if let Some(b) = &mut self.batcher {
            let s = b.expire(Instant::now(), connected);
            self.settle(s);
        }
    }

    /// Count what a batch reply confirmed; resend what it did not.
    fn settle(&mut self, s: Settled) {
        if s.ended {
            self.s
                .metrics
                .publish_batches
                .get_or_create(&TypeLabel {
                    data_type: self.data_type.as_str().to_owned(),
                })
                .inc();
        }
        for f in s.stored {
            self.finish(f, Ok(false));
        }
        for (f, why) in s.failed {
            self.finish(f, Err(why));
        }
        if s.disable && self.batcher.take().is_some() {
            tracing::warn!(data_type = %self.data_type, "the stream refuses fast-ingest batches (allow_batched is off): publishing with one ack per event from now on");
        }
    }

    /// Whether every slot of the publish window is taken.
    fn window_full(&self) -> bool {
        self.s.permits.available_permits() == 0
    }

    /// Whether the next message can go out now (batched: the batch has
    /// room).
    fn batch_has_room(&self) -> bool {
        self.batcher.as_ref().is_none_or(Batcher::can_send)
    }

    fn schedule(&mut self, flight: Flight, delay: Duration) {
        self.retry_seq += 1;
        self.retries.push(Due {
            at: tokio::time::Instant::now() + delay,
            seq: self.retry_seq,
            flight,
        });
    }

    /// The outcome of one attempt: count it, or schedule the next attempt.
    fn finish(&mut self, mut f: Flight, result: Result<bool, Failure>) {
        match result {
            Ok(duplicate) => {
                self.s.signals.stored();
                self.s.metrics.in_flight.dec();
                let latency = f.m.received.elapsed();
                if duplicate {
                    self.report.duplicates += 1;
                } else {
                    self.report.stored += 1;
                }
                let h = self.handles(&f.m);
                if duplicate {
                    h.duplicate.inc();
                } else {
                    h.published.inc();
                }
                h.latency.observe(latency.as_secs_f64());
                if let Some(p) = &self.s.probe {
                    p.record(latency);
                }
            }
            Err(Failure::Transient(reason)) => {
                if reason.contains("status 503") {
                    self.s.signals.no_stream();
                }
                self.s
                    .metrics
                    .publish_retries
                    .get_or_create(&labels(&f.m))
                    .inc();
                if let Some(suppressed) = self.logs.allow("transient") {
                    tracing::warn!(data_type = %self.data_type, error = %reason, suppressed, "publish not acknowledged; sending again once NATS takes it (nothing is dropped for this)");
                }
                let delay = transient_delay(f.transient);
                f.transient = f.transient.saturating_add(1);
                self.schedule(f, delay);
            }
            Err(Failure::Refused(reason)) => match self.s.retry_delays.get(f.attempt) {
                Some(&delay) => {
                    self.s
                        .metrics
                        .publish_retries
                        .get_or_create(&labels(&f.m))
                        .inc();
                    f.attempt += 1;
                    self.schedule(f, delay);
                }
                None => {
                    self.report.failed += 1;
                    self.s.metrics.in_flight.dec();
                    self.s
                        .metrics
                        .publish_failures
                        .get_or_create(&labels(&f.m))
                        .inc();
                    self.s
                        .metrics
                        .dropped(&f.m.venue, f.m.data_type, DropCause::PublishFailed)
                        .inc();
                    if let Some(suppressed) = self.logs.allow("refused") {
                        tracing::warn!(subject = %f.m.subject, id = %f.m.id, attempts = f.attempt + 1, error = %reason, suppressed, "JetStream refused the event after every retry; dropped");
                    }
                }
            },
        }
    }

    /// The drain deadline passed: count what is left as abandoned.
    fn abandon(&mut self, next: Option<Outgoing>, rx: &mut mpsc::Receiver<Outgoing>) {
        rx.close();
        let mut left: Vec<Outgoing> = next.into_iter().collect();
        while let Ok(m) = rx.try_recv() {
            left.push(m);
        }
        self.report.abandoned_unsent += left.len() as u64;
        let mut flights: Vec<Flight> = self.inflight.drain().collect();
        flights.extend(self.retries.drain().map(|d| d.flight));
        if let Some(b) = &mut self.batcher {
            flights.extend(b.drain());
        }
        for f in flights {
            self.s.metrics.in_flight.dec();
            if f.sent {
                self.report.abandoned_unconfirmed += 1;
            } else {
                self.report.abandoned_unsent += 1;
            }
            left.push(f.m);
        }
        for m in &left {
            self.s
                .metrics
                .dropped(&m.venue, m.data_type, DropCause::Shutdown)
                .inc();
        }
    }
}

fn labels(m: &Outgoing) -> VenueTypeLabel {
    VenueTypeLabel {
        venue: m.venue.to_string(),
        data_type: m.data_type.as_str().to_owned(),
    }
}

/// Publish everything from `rx` until it closes and every message is
/// acknowledged or refused, or until `give_up`. Starts once `ready` is true
/// (streams reconciled).
pub async fn run(
    data_type: DataType,
    mut rx: mpsc::Receiver<Outgoing>,
    s: PublishSettings,
    mut ready: watch::Receiver<bool>,
) -> PublisherReport {
    let give_up = s.give_up.clone();
    let direct_writes = s
        .metrics
        .publish_direct
        .get_or_create(&TypeLabel {
            data_type: data_type.as_str().to_owned(),
        })
        .clone();
    let mut p = Publisher {
        direct_writes,
        batcher: None,
        last_batched: Instant::now(),
        inflight: Inflight::new(&s.client.new_inbox(), s.ack_timeout),
        s,
        data_type,
        venues: Vec::new(),
        retries: BinaryHeap::new(),
        retry_seq: 0,
        report: PublisherReport::default(),
        logs: LogLimiter::new(Duration::from_secs(10)),
    };
    tokio::select! {
        _ = ready.wait_for(|r| *r) => {}
        _ = give_up.cancelled() => {
            p.abandon(None, &mut rx);
            return p.report;
        }
    }
    let features = ServerFeatures::of_client(&p.s.client);
    if super::streams::batched_type(p.s.mode, &p.s.streams, &features, data_type) {
        p.batcher = Some(Batcher::new(
            &p.s.client.new_inbox(),
            p.s.batch_flow,
            p.s.ack_timeout,
        ));
    }
    let mut acks = loop {
        match p.s.client.subscribe(p.inflight.wildcard()).await {
            Ok(sub) => break sub,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to publish acks; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = give_up.cancelled() => {
                        p.abandon(None, &mut rx);
                        return p.report;
                    }
                }
            }
        }
    };
    let mut batch_replies = match p.batcher.as_ref().map(Batcher::wildcard) {
        Some(w) => match p.s.client.subscribe(w).await {
            Ok(sub) => Some(sub),
            Err(e) => {
                tracing::warn!(data_type = %data_type, error = %e, "cannot subscribe to fast batch acks; publishing with one ack per event");
                p.batcher = None;
                None
            }
        },
        None => None,
    };
    let mut sweep = tokio::time::interval(Duration::from_millis(50));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut wait_for_nats = tokio::time::interval(Duration::from_millis(100));
    wait_for_nats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The next message waits here for a window slot while acks go on being
    // processed. A slot is only asked for once a message is in hand: an idle
    // publisher (one per data type, sharing the window) holds none, so a
    // window smaller than the number of publishers cannot starve the others.
    // `PollSemaphore` keeps this publisher's place in the slot queue while
    // other branches run.
    let mut next: Option<Outgoing> = None;
    let mut window = tokio_util::sync::PollSemaphore::new(p.s.permits.clone());
    let mut open = true;
    while open
        || next.is_some()
        || !p.inflight.is_empty()
        || !p.retries.is_empty()
        || p.batcher.as_ref().is_some_and(Batcher::is_active)
    {
        let connected = p.connected();
        // End the batch when nothing more can join it now: the queue has
        // been empty for `BATCH_LINGER` (a momentary gap at full speed does
        // not end it), the window is taken and no flow ack is on its way
        // (see `Batcher::flow_ack_coming`), or it is full.
        let idle = next.is_none() && rx.is_empty();
        let linger_over = p.last_batched.elapsed() >= BATCH_LINGER;
        let ending = p.batcher.as_ref().is_some_and(Batcher::should_end) && connected;
        if let Some(b) = &p.batcher
            && ending
            && (b.full() || (idle && linger_over) || (p.window_full() && !b.flow_ack_coming()))
        {
            p.end_batch().await;
        }
        let linger = ending && idle && !linger_over;
        let batching = p.batcher.as_ref().is_some_and(Batcher::is_active);
        let next_retry = p.retries.peek().map(|d| d.at);
        tokio::select! {
            biased;
            _ = give_up.cancelled() => {
                p.abandon(next.take(), &mut rx);
                break;
            }
            Some(msg) = acks.next(), if !p.inflight.is_empty() => {
                if let Some(f) = p.inflight.take(msg.subject.as_str()) {
                    p.finish(f, acks::outcome(&msg));
                }
            }
            Some(msg) = next_reply(&mut batch_replies), if batching => {
                if let Some(b) = &mut p.batcher {
                    let s = b.on_reply(&msg, Instant::now());
                    p.settle(s);
                }
            }
            _ = sweep.tick(), if !p.inflight.is_empty() || batching => {
                while let Some(f) = p.inflight.expired(Instant::now()) {
                    let why = if p.connected() { "no ack within the ack timeout" } else { "NATS disconnected before the ack" };
                    p.finish(f, Err(Failure::Transient(why.into())));
                }
                let connected = p.connected();
                p.expire_batch(connected);
            }
            _ = tokio::time::sleep_until(next_retry.unwrap_or_else(tokio::time::Instant::now)), if connected && next_retry.is_some() => {
                if let Some(due) = p.retries.pop() {
                    p.send(due.flight).await;
                }
            }
            _ = wait_for_nats.tick(), if !connected => {}
            _ = tokio::time::sleep_until((p.last_batched + BATCH_LINGER).into()), if linger => {}
            msg = rx.recv(), if open && next.is_none() => match msg {
                Some(m) => next = Some(m),
                None => open = false,
            },
            permit = std::future::poll_fn(|cx| window.poll_acquire(cx)), if connected && next.is_some() && p.batch_has_room() => match permit {
                Some(permit) => {
                    let m = next.take().expect("guarded");
                    p.s.metrics.in_flight.inc();
                    let f = Flight { m, attempt: 0, transient: 0, sent: false, _slot: permit };
                    let batch = p.batcher.as_ref().is_some_and(|b| {
                        b.is_open()
                            || (p.batch_writer_ready()
                                && into_batch(p.s.mode, false, rx.len(), p.inflight.len()))
                    });
                    if batch {
                        p.send_batched(f).await;
                    } else {
                        p.send(f).await;
                    }
                }
                // The window is never closed while publishers run.
                None => {
                    p.abandon(next.take(), &mut rx);
                    break;
                }
            },
        }
    }
    p.report
}

/// The next reply on the batch inbox (never, without one).
async fn next_reply(sub: &mut Option<async_nats::Subscriber>) -> Option<async_nats::Message> {
    match sub {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_batches_only_an_open_batch_or_a_deep_queue() {
        use super::{AUTO_DEEP_ACKS, AUTO_DEEP_QUEUE, into_batch};
        use crate::config::relay::raw::PublishMode::{Auto, Batched};
        // Batched: always.
        assert!(into_batch(Batched, false, 0, 0));
        // Auto: acks while the publisher keeps up ...
        assert!(!into_batch(Auto, false, 0, 0));
        assert!(!into_batch(
            Auto,
            false,
            AUTO_DEEP_QUEUE - 1,
            AUTO_DEEP_ACKS - 1
        ));
        // ... a batch once the queue or the acks outstanding are deep, and
        // for as long as that batch is open.
        assert!(into_batch(Auto, false, AUTO_DEEP_QUEUE, 0));
        assert!(into_batch(Auto, false, 0, AUTO_DEEP_ACKS));
        assert!(into_batch(Auto, true, 0, 0));
    }

    #[test]
    fn transient_delays_grow_to_two_seconds() {
        let ms: Vec<u128> = (0..8).map(|n| transient_delay(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
    }

    #[test]
    fn retries_come_out_earliest_first() {
        let permits = Arc::new(Semaphore::new(4));
        let t0 = tokio::time::Instant::now();
        let mut heap = BinaryHeap::new();
        for (seq, ms) in [(1, 300), (2, 100), (3, 200), (4, 100)] {
            heap.push(Due {
                at: t0 + Duration::from_millis(ms),
                seq,
                flight: acks::tests::flight(&permits, &seq.to_string()),
            });
        }
        let order: Vec<u64> = std::iter::from_fn(|| heap.pop().map(|d| d.seq)).collect();
        assert_eq!(order, [2, 4, 3, 1]);
    }
}
