//! Telemetry as a contract: every metric the relay exports is named here.
//! Labels are the venue and the data type (or a small closed set such as a
//! control kind); never an instrument or a subject.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::DataType;

/// `venue` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VenueLabel {
    /// Venue id.
    pub venue: String,
}

/// `venue` + `data_type` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VenueTypeLabel {
    /// Venue id.
    pub venue: String,
    /// Data type wire name.
    pub data_type: String,
}

/// `venue` + `kind` labels (control kinds, status states, failure kinds).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VenueKindLabel {
    /// Venue id.
    pub venue: String,
    /// The kind.
    pub kind: String,
}

/// `data_type` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    /// Data type wire name.
    pub data_type: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~26 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// All metrics of the relay.
pub struct Metrics {
    registry: Registry,
    /// Frames received from venues.
    pub frames_received: Family<VenueLabel, Counter>,
    /// Bytes received from venues.
    pub bytes_received: Family<VenueLabel, Counter>,
    /// Frames that failed to map (skipped).
    pub mapping_failures: Family<VenueLabel, Counter>,
    /// Frames that matched no rule.
    pub unrouted_frames: Family<VenueLabel, Counter>,
    /// Control frames by kind.
    pub control_frames: Family<VenueKindLabel, Counter>,
    /// Canonical events produced by mapping.
    pub events_mapped: Family<VenueTypeLabel, Counter>,
    /// Events acknowledged by JetStream.
    pub events_published: Family<VenueTypeLabel, Counter>,
    /// Events acknowledged as duplicates (already stored).
    pub events_duplicate: Family<VenueTypeLabel, Counter>,
    /// Publish retries.
    pub publish_retries: Family<VenueTypeLabel, Counter>,
    /// Events dropped after the last retry.
    pub publish_failures: Family<VenueTypeLabel, Counter>,
    /// Events dropped because the queue was full (`drop_newest`).
    pub queue_drops: Family<VenueTypeLabel, Counter>,
    /// Seconds from frame receipt to JetStream ack.
    pub ack_latency: Family<TypeLabel, Histogram, fn() -> Histogram>,
    /// Publishes awaiting their ack.
    pub in_flight: Gauge,
    /// Events waiting in the queue per data type.
    pub queue_depth: Family<TypeLabel, Gauge>,
    /// Connection attempts that failed or connections that dropped.
    pub reconnects: Family<VenueLabel, Counter>,
    /// Planned overlapping reconnects completed (lifetime or reload).
    pub handovers: Family<VenueLabel, Counter>,
    /// Open venue connections.
    pub connections: Family<VenueLabel, Gauge>,
    /// Status events published, by state.
    pub status_events: Family<VenueKindLabel, Counter>,
    /// Detected gaps (sequence or checksum).
    pub gaps: Family<VenueLabel, Counter>,
    /// Book resyncs performed.
    pub resyncs: Family<VenueLabel, Counter>,
    /// Checksum mismatches of `mode = "report"` checksums (no resync).
    pub checksum_mismatches: Family<VenueLabel, Counter>,
    /// Circuit breaker state: 0 closed, 1 half-open, 2 open.
    pub circuit_state: Family<VenueLabel, Gauge>,
    /// Subscriptions rejected by venues.
    pub subscriptions_rejected: Family<VenueLabel, Counter>,
    /// Hot reloads applied.
    pub reloads: Counter,
    /// Hot reloads refused (the running config stays).
    pub reload_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("mdrelay");
        let m = Metrics {
            frames_received: Family::default(),
            bytes_received: Family::default(),
            mapping_failures: Family::default(),
            unrouted_frames: Family::default(),
            control_frames: Family::default(),
            events_mapped: Family::default(),
            events_published: Family::default(),
            events_duplicate: Family::default(),
            publish_retries: Family::default(),
            publish_failures: Family::default(),
            queue_drops: Family::default(),
            ack_latency: Family::new_with_constructor(latency_histogram),
            in_flight: Gauge::default(),
            queue_depth: Family::default(),
            reconnects: Family::default(),
            handovers: Family::default(),
            connections: Family::default(),
            status_events: Family::default(),
            gaps: Family::default(),
            resyncs: Family::default(),
            checksum_mismatches: Family::default(),
            circuit_state: Family::default(),
            subscriptions_rejected: Family::default(),
            reloads: Counter::default(),
            reload_failures: Counter::default(),
            registry: Registry::default(),
        };
        r.register(
            "frames_received",
            "Frames received from venues",
            m.frames_received.clone(),
        );
        r.register(
            "bytes_received",
            "Bytes received from venues",
            m.bytes_received.clone(),
        );
        r.register(
            "mapping_failures",
            "Frames that failed to map and were skipped",
            m.mapping_failures.clone(),
        );
        r.register(
            "unrouted_frames",
            "Frames no control rule or route matched",
            m.unrouted_frames.clone(),
        );
        r.register(
            "control_frames",
            "Control frames by kind",
            m.control_frames.clone(),
        );
        r.register(
            "events_mapped",
            "Canonical events produced",
            m.events_mapped.clone(),
        );
        r.register(
            "events_published",
            "Events acknowledged by JetStream",
            m.events_published.clone(),
        );
        r.register(
            "events_duplicate",
            "Events JetStream already had (deduplicated)",
            m.events_duplicate.clone(),
        );
        r.register(
            "publish_retries",
            "Publish retries",
            m.publish_retries.clone(),
        );
        r.register(
            "publish_failures",
            "Events dropped after the last publish retry",
            m.publish_failures.clone(),
        );
        r.register(
            "queue_drops",
            "Events dropped because their queue was full",
            m.queue_drops.clone(),
        );
        r.register(
            "ack_latency_seconds",
            "Frame receipt to JetStream ack",
            m.ack_latency.clone(),
        );
        r.register(
            "publish_in_flight",
            "Publishes awaiting their ack",
            m.in_flight.clone(),
        );
        r.register(
            "queue_depth",
            "Events waiting for the publisher",
            m.queue_depth.clone(),
        );
        r.register(
            "reconnects",
            "Venue connections lost or failed",
            m.reconnects.clone(),
        );
        r.register(
            "handovers",
            "Planned overlapping reconnects completed",
            m.handovers.clone(),
        );
        r.register(
            "connections",
            "Open venue connections",
            m.connections.clone(),
        );
        r.register(
            "status_events",
            "Status events published, by state",
            m.status_events.clone(),
        );
        r.register(
            "gaps",
            "Sequence gaps and checksum mismatches detected",
            m.gaps.clone(),
        );
        r.register("resyncs", "Order book resyncs", m.resyncs.clone());
        r.register(
            "checksum_mismatches",
            "Book checksum mismatches of report-only checksums (counted and logged, no resync)",
            m.checksum_mismatches.clone(),
        );
        r.register(
            "circuit_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open",
            m.circuit_state.clone(),
        );
        r.register(
            "subscriptions_rejected",
            "Subscriptions rejected by the venue",
            m.subscriptions_rejected.clone(),
        );
        r.register("reloads", "Hot reloads applied", m.reloads.clone());
        r.register(
            "reload_failures",
            "Hot reloads refused",
            m.reload_failures.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }

    /// Per (venue, data type) counter handles, resolved once per connection
    /// so the hot path only increments atomics.
    pub fn venue_type(
        &self,
        family: &Family<VenueTypeLabel, Counter>,
        venue: &str,
    ) -> [Counter; DataType::ALL.len()] {
        std::array::from_fn(|i| {
            let t = DataType::ALL[i];
            family
                .get_or_create(&VenueTypeLabel {
                    venue: venue.to_owned(),
                    data_type: t.as_str().to_owned(),
                })
                .clone()
        })
    }

    /// A venue-labelled handle.
    pub fn venue<
        M: Clone
            + Default
            + prometheus_client::metrics::TypedMetric
            + prometheus_client::encoding::EncodeMetric,
    >(
        family: &Family<VenueLabel, M>,
        venue: &str,
    ) -> M {
        family
            .get_or_create(&VenueLabel {
                venue: venue.to_owned(),
            })
            .clone()
    }
}
