//! The metric handles of one connection, resolved once so that the per-frame
//! path only bumps atomics; and the per-cause log limiter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

use crate::application::metrics::{DropCause, Metrics, VenueTypeLabel};

/// Per data type counter handles of one venue, each created on first use
/// (so no series appears for a type the venue never publishes).
pub(super) struct PerType<M = Counter> {
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

    pub(super) fn get(&self, t: crate::domain::DataType) -> &M {
        self.cells[t.index()].get_or_init(|| (self.make)(t))
    }
}

/// Per-connection metric handles (resolved once).
pub(super) struct Counters {
    pub(super) frames: Counter,
    pub(super) bytes: Counter,
    pub(super) data_frames: Counter,
    pub(super) failures: Counter,
    pub(super) unrouted: Counter,
    pub(super) mapped: PerType,
    pub(super) generated: PerType,
    /// Venue event time to receipt.
    pub(super) lag: PerType<prometheus_client::metrics::histogram::Histogram>,
    /// Queue full (`drop_newest`): also counted in the older
    /// `mdrelay_queue_drops_total`.
    pub(super) queue_full: PerType,
    pub(super) queue_drops: PerType,
    pub(super) unsubscribed: PerType,
    pub(super) book_resync: PerType,
    pub(super) checksum_only: PerType,
    pub(super) handover_covered: PerType,
    pub(super) rejected: Counter,
    pub(super) gaps: Counter,
    pub(super) resyncs: Counter,
    pub(super) mismatches: Counter,
    pub(super) pong_timeouts: Counter,
    /// Fast-path evaluations rerun in the interpreter
    /// (`mdrelay_interpreter_fallbacks_total`).
    pub(super) fallbacks: Counter,
    /// Instruments stale now (`mdrelay_instruments_stale`).
    pub(super) stale_now: PerType<prometheus_client::metrics::gauge::Gauge>,
    /// Instruments gone stale (`mdrelay_stale_total`).
    pub(super) stale: PerType,
    /// One log line per cause per 10 s for what a venue can repeat at will
    /// (bad frames, error frames, gaps); the rest are counted.
    pub(super) logs: Mutex<crate::infrastructure::logs::LogLimiter>,
    pub(super) suppressed: Counter,
}

impl Counters {
    /// Whether a line for `cause` may be logged now (`Some(n)`: `n` were
    /// left out since the last one).
    pub(super) fn log(&self, cause: &'static str) -> Option<u64> {
        let allowed = self.logs.lock().ok().and_then(|mut l| l.allow(cause));
        if allowed.is_none() {
            self.suppressed.inc();
        }
        allowed
    }
}

impl Counters {
    pub(super) fn new(m: &Arc<Metrics>, venue: &str) -> Self {
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
            pong_timeouts: Metrics::venue(&m.pong_timeouts, venue),
            fallbacks: Metrics::venue(&m.interpreter_fallbacks, venue),
            stale_now: {
                let (m, venue) = (m.clone(), venue.to_owned());
                PerType::new(move |t| {
                    m.instruments_stale
                        .get_or_create(&VenueTypeLabel {
                            venue: venue.clone(),
                            data_type: t.as_str().to_owned(),
                        })
                        .clone()
                })
            },
            stale: family(|m| &m.stale),
            logs: Mutex::new(crate::infrastructure::logs::LogLimiter::new(
                Duration::from_secs(10),
            )),
            suppressed: m.logs_suppressed.clone(),
        }
    }
}
