//! Publishing to JetStream: in order, pipelined (many acks in flight, awaited
//! out of line), bounded by a shared semaphore, with a small explicit retry
//! policy. Every message carries `Nats-Msg-Id`, so a retry — or a replay of
//! the same frames after a reconnect — is stored once.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture};
use async_nats::{HeaderMap, HeaderName};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::acks::{self, Flight, Inflight};
use super::metrics::{Metrics, TypeLabel, VenueTypeLabel};
use super::pipeline::Outgoing;

/// Settings shared by the publishers.
#[derive(Clone)]
pub struct PublishSettings {
    /// The NATS client (first attempts: published with a reply subject
    /// whose ack one subscription per publisher collects).
    pub client: async_nats::Client,
    /// How long an ack may take before the message is retried.
    pub ack_timeout: Duration,
    /// The JetStream context (retries; its timeout is the ack timeout).
    pub js: jetstream::Context,
    /// Shared bound on acks in flight.
    pub permits: Arc<Semaphore>,
    /// Delays before each retry.
    pub retry_delays: Arc<[Duration]>,
    /// `Content-Type` header.
    pub content_type: &'static str,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Exact frame-to-ack latencies, when measuring (`mdrelay bench`).
    pub probe: Option<Arc<LatencyProbe>>,
}

/// Collects exact frame-to-ack latencies (microseconds) for benchmarks.
#[derive(Debug, Default)]
pub struct LatencyProbe {
    samples: std::sync::Mutex<Vec<u32>>,
}

impl LatencyProbe {
    fn record(&self, d: Duration) {
        if let Ok(mut s) = self.samples.lock() {
            s.push(d.as_micros().min(u128::from(u32::MAX)) as u32);
        }
    }

    /// Take the samples recorded so far.
    pub fn take(&self) -> Vec<u32> {
        self.samples
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}

/// What a publisher did before it stopped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PublisherReport {
    /// Acknowledged (including duplicates).
    pub acked: u64,
    /// Dropped after the last retry.
    pub failed: u64,
}

type Done = (Outgoing, usize, Result<bool, String>, OwnedSemaphorePermit);
type Pending = FuturesUnordered<Pin<Box<dyn Future<Output = Done> + Send>>>;

fn headers(m: &Outgoing, content_type: &'static str) -> HeaderMap {
    // Names built at compile time: only the values are allocated per event.
    const MSG_ID: HeaderName = HeaderName::from_static("Nats-Msg-Id");
    const VENUE: HeaderName = HeaderName::from_static("Mdrelay-Venue");
    const DATA_TYPE: HeaderName = HeaderName::from_static("Mdrelay-Data-Type");
    const CONTENT_TYPE: HeaderName = HeaderName::from_static("Content-Type");
    let mut h = HeaderMap::new();
    h.insert(MSG_ID, m.id.as_str());
    h.insert(VENUE, &*m.venue);
    h.insert(DATA_TYPE, m.data_type.as_str());
    h.insert(CONTENT_TYPE, content_type);
    h
}

/// Send one message to the client (in order) and return its ack future.
async fn send(s: &PublishSettings, m: &Outgoing) -> Result<PublishAckFuture, String> {
    s.js.publish_with_headers(
        m.subject.clone(),
        headers(m, s.content_type),
        m.payload.clone(),
    )
    .await
    .map_err(|e| e.to_string())
}

fn await_ack(
    ack: Result<PublishAckFuture, String>,
    m: Outgoing,
    attempt: usize,
    permit: OwnedSemaphorePermit,
) -> Pin<Box<dyn Future<Output = Done> + Send>> {
    Box::pin(async move {
        let result = match ack {
            Ok(fut) => fut.await.map(|a| a.duplicate).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        (m, attempt, result, permit)
    })
}

fn retry(
    s: &PublishSettings,
    m: Outgoing,
    attempt: usize,
    delay: Duration,
    permit: OwnedSemaphorePermit,
) -> Pin<Box<dyn Future<Output = Done> + Send>> {
    let s = s.clone();
    Box::pin(async move {
        tokio::time::sleep(delay).await;
        let ack = send(&s, &m).await;
        let result = match ack {
            Ok(fut) => fut.await.map(|a| a.duplicate).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        (m, attempt, result, permit)
    })
}

fn labels(m: &Outgoing) -> VenueTypeLabel {
    VenueTypeLabel {
        venue: m.venue.to_string(),
        data_type: m.data_type.as_str().to_owned(),
    }
}

/// Metric handles of one venue, resolved once (the ack path only bumps
/// atomics).
struct Handles {
    venue: Arc<str>,
    published: prometheus_client::metrics::counter::Counter,
    duplicate: prometheus_client::metrics::counter::Counter,
}

/// Per-publisher metric cache.
struct Meters {
    venues: Vec<Handles>,
    latency: prometheus_client::metrics::histogram::Histogram,
}

impl Meters {
    fn new(s: &PublishSettings, data_type: crate::domain::DataType) -> Self {
        let latency = s
            .metrics
            .ack_latency
            .get_or_create(&TypeLabel {
                data_type: data_type.as_str().to_owned(),
            })
            .clone();
        Meters {
            venues: Vec::new(),
            latency,
        }
    }

    fn venue(&mut self, s: &PublishSettings, m: &Outgoing) -> &Handles {
        let i = match self
            .venues
            .iter()
            .position(|h| Arc::ptr_eq(&h.venue, &m.venue) || h.venue == m.venue)
        {
            Some(i) => i,
            None => {
                let l = labels(m);
                self.venues.push(Handles {
                    venue: m.venue.clone(),
                    published: s.metrics.events_published.get_or_create(&l).clone(),
                    duplicate: s.metrics.events_duplicate.get_or_create(&l).clone(),
                });
                self.venues.len() - 1
            }
        };
        &self.venues[i]
    }
}

/// Handle a finished publish: count it, or schedule its retry.
fn finish(
    s: &PublishSettings,
    meters: &mut Meters,
    done: Done,
    pending: &mut Pending,
    report: &mut PublisherReport,
) {
    let (m, attempt, result, permit) = done;
    match result {
        Ok(duplicate) => {
            report.acked += 1;
            s.metrics.in_flight.dec();
            let h = meters.venue(s, &m);
            if duplicate {
                h.duplicate.inc()
            } else {
                h.published.inc()
            };
            let latency = m.received.elapsed();
            if let Some(p) = &s.probe {
                p.record(latency);
            }
            meters.latency.observe(latency.as_secs_f64());
            drop(permit);
        }
        Err(e) => match s.retry_delays.get(attempt) {
            Some(delay) => {
                s.metrics.publish_retries.get_or_create(&labels(&m)).inc();
                tracing::debug!(subject = %m.subject, id = %m.id, attempt = attempt + 1, error = %e, "publish failed, retrying");
                pending.push(retry(s, m, attempt + 1, *delay, permit));
            }
            None => {
                report.failed += 1;
                s.metrics.in_flight.dec();
                s.metrics.publish_failures.get_or_create(&labels(&m)).inc();
                tracing::warn!(subject = %m.subject, id = %m.id, attempts = attempt + 1, error = %e, "publish failed after all retries; event dropped");
                drop(permit);
            }
        },
    }
}

/// Publish everything from `rx` until it closes and every ack is in. Starts
/// once `ready` is true (streams reconciled).
///
/// First attempts are published with a reply subject of this publisher's
/// ack inbox and matched to their acks in an [`Inflight`] table; retries go
/// through the JetStream request API.
pub async fn run(
    data_type: crate::domain::DataType,
    mut rx: mpsc::Receiver<Outgoing>,
    s: PublishSettings,
    mut ready: watch::Receiver<bool>,
) -> PublisherReport {
    let mut report = PublisherReport::default();
    let mut pending: Pending = FuturesUnordered::new();
    let _ = ready.wait_for(|r| *r).await;
    let depth = s
        .metrics
        .queue_depth
        .get_or_create(&TypeLabel {
            data_type: data_type.as_str().to_owned(),
        })
        .clone();
    let mut meters = Meters::new(&s, data_type);
    let mut inflight = Inflight::new(&s.client.new_inbox(), s.ack_timeout);
    let mut acks = match s.client.subscribe(inflight.wildcard()).await {
        Ok(sub) => Some(sub),
        Err(e) => {
            tracing::warn!(error = %e, "cannot subscribe to publish acks; using one request per message");
            None
        }
    };
    let mut sweep = tokio::time::interval(Duration::from_millis(50));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The next message waits here for a window slot while acks go on being
    // processed. A slot is only asked for once a message is in hand: an idle
    // publisher (one per data type, sharing the window) holds none, so a
    // window smaller than the number of publishers cannot starve the others.
    // `PollSemaphore` keeps this publisher's place in the slot queue while
    // other branches run.
    let mut next: Option<Outgoing> = None;
    let mut window = tokio_util::sync::PollSemaphore::new(s.permits.clone());
    let mut open = true;
    while open || !pending.is_empty() || !inflight.is_empty() {
        tokio::select! {
            biased;
            Some(msg) = async { acks.as_mut()?.next().await }, if !inflight.is_empty() => {
                if let Some(f) = inflight.take(msg.subject.as_str()) {
                    let done = (f.m, f.attempt, acks::outcome(&msg), f.permit);
                    finish(&s, &mut meters, done, &mut pending, &mut report);
                }
            }
            Some(done) = pending.next(), if !pending.is_empty() => finish(&s, &mut meters, done, &mut pending, &mut report),
            _ = sweep.tick(), if !inflight.is_empty() => {
                while let Some(f) = inflight.expired(std::time::Instant::now()) {
                    let done = (f.m, f.attempt, Err("no ack within the ack timeout".into()), f.permit);
                    finish(&s, &mut meters, done, &mut pending, &mut report);
                }
            }
            msg = rx.recv(), if open && next.is_none() => match msg {
                Some(m) => next = Some(m),
                None => open = false,
            },
            permit = std::future::poll_fn(|cx| window.poll_acquire(cx)), if next.is_some() => match permit {
                Some(permit) => {
                    let m = next.take().expect("guarded");
                    depth.set(rx.len() as i64);
                    s.metrics.in_flight.inc();
                    if acks.is_some() {
                        let (n, reply) = inflight.reply();
                        match s
                            .client
                            .publish_with_reply_and_headers(
                                m.subject.clone(),
                                reply,
                                headers(&m, s.content_type),
                                m.payload.clone(),
                            )
                            .await
                        {
                            Ok(()) => inflight.insert(
                                n,
                                Flight { m, attempt: 0, permit },
                                std::time::Instant::now(),
                            ),
                            Err(e) => {
                                let done = (m, 0, Err(e.to_string()), permit);
                                finish(&s, &mut meters, done, &mut pending, &mut report);
                            }
                        }
                    } else {
                        let ack = send(&s, &m).await;
                        pending.push(await_ack(ack, m, 0, permit));
                    }
                }
                // The window is never closed while publishers run; were it
                // closed, nothing more could be sent.
                None => {
                    if let Some(m) = next.take() {
                        tracing::error!(subject = %m.subject, id = %m.id, "publish window closed; event not sent");
                    }
                    open = false;
                }
            },
        }
    }
    report
}
