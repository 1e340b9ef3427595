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

/// `venue` + `data_type` + `cause` labels (dropped events).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabel {
    /// Venue id.
    pub venue: String,
    /// Data type wire name.
    pub data_type: String,
    /// Why the event was dropped ([`DropCause::as_str`]).
    pub cause: &'static str,
}

/// `venue` + `kind` + `outcome` labels of REST requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestLabel {
    /// Venue id.
    pub venue: String,
    /// What the request was for ([`RestKind::as_str`]).
    pub kind: &'static str,
    /// `ok`, `throttled`, `http_error` or `failed`.
    pub outcome: &'static str,
}

/// What a REST request to a venue is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestKind {
    /// `[connection.bootstrap]`, before connecting.
    Bootstrap,
    /// `[book.snapshot]`.
    Snapshot,
    /// `[book.checksum.scales]`.
    Scales,
    /// `[[reference]]` instrument lists.
    Reference,
}

impl RestKind {
    /// Every kind, for pre-created series.
    pub const ALL: [RestKind; 4] = [
        RestKind::Bootstrap,
        RestKind::Snapshot,
        RestKind::Scales,
        RestKind::Reference,
    ];

    /// The `kind` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            RestKind::Bootstrap => "bootstrap",
            RestKind::Snapshot => "snapshot",
            RestKind::Scales => "scales",
            RestKind::Reference => "reference",
        }
    }
}

/// The `outcome` values of `mdrelay_rest_requests_total`.
pub const REST_OUTCOMES: [&str; 4] = ["ok", "throttled", "http_error", "failed"];

/// `version` label of `mdrelay_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabel {
    /// The crate version.
    pub version: &'static str,
}

/// Why an event was not published. Every event the relay mapped or made is
/// acknowledged by JetStream or counted under one of these
/// (`mdrelay_events_dropped_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropCause {
    /// Its queue was full and its policy is `drop_newest`.
    QueueFull,
    /// JetStream refused it after every retry (it was not stored).
    PublishFailed,
    /// Still queued or unacknowledged when the shutdown drain ended.
    Shutdown,
    /// Mapped, but of a data type or instrument the connection did not
    /// subscribe.
    Unsubscribed,
    /// A book delta that cannot continue the book: received while the book
    /// resyncs, before a snapshot, or already contained in the snapshot.
    BookResync,
    /// A book update that carried only a checksum: checked, nothing to
    /// publish.
    ChecksumOnly,
    /// During a handover, a book event the old connection already
    /// published.
    HandoverCovered,
}

impl DropCause {
    /// Every cause, for pre-created series.
    pub const ALL: [DropCause; 7] = [
        DropCause::QueueFull,
        DropCause::PublishFailed,
        DropCause::Shutdown,
        DropCause::Unsubscribed,
        DropCause::BookResync,
        DropCause::ChecksumOnly,
        DropCause::HandoverCovered,
    ];

    /// The `cause` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropCause::QueueFull => "queue_full",
            DropCause::PublishFailed => "publish_failed",
            DropCause::Shutdown => "shutdown",
            DropCause::Unsubscribed => "unsubscribed",
            DropCause::BookResync => "book_resync",
            DropCause::ChecksumOnly => "checksum_only",
            DropCause::HandoverCovered => "handover_covered",
        }
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~26 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

fn lag_histogram() -> Histogram {
    // 1 ms … ~65 s (venue clocks and networks: milliseconds to seconds)
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

type LatencyFamily = Family<VenueTypeLabel, Histogram, fn() -> Histogram>;

/// A gauge set from live state when `/metrics` is read.
type LiveGauge = Box<dyn Fn() + Send + Sync>;

/// All metrics of the relay.
pub struct Metrics {
    registry: Registry,
    live: std::sync::Mutex<Vec<LiveGauge>>,
    /// Frames received from venues.
    pub frames_received: Family<VenueLabel, Counter>,
    /// Bytes received from venues.
    pub bytes_received: Family<VenueLabel, Counter>,
    /// Frames that failed to map (skipped).
    pub mapping_failures: Family<VenueLabel, Counter>,
    /// Frames that matched no rule.
    pub unrouted_frames: Family<VenueLabel, Counter>,
    /// Frames that mapped to market data (zero or more events).
    pub data_frames: Family<VenueLabel, Counter>,
    /// Control frames by kind.
    pub control_frames: Family<VenueKindLabel, Counter>,
    /// Canonical events produced by mapping.
    pub events_mapped: Family<VenueTypeLabel, Counter>,
    /// Events the relay made itself (status, top-N and REST book snapshots).
    pub events_generated: Family<VenueTypeLabel, Counter>,
    /// Events acknowledged by JetStream.
    pub events_published: Family<VenueTypeLabel, Counter>,
    /// Events acknowledged as duplicates (already stored).
    pub events_duplicate: Family<VenueTypeLabel, Counter>,
    /// Events not published, by cause.
    pub events_dropped: Family<DropLabel, Counter>,
    /// Publish retries.
    pub publish_retries: Family<VenueTypeLabel, Counter>,
    /// Events JetStream refused after the last retry.
    pub publish_failures: Family<VenueTypeLabel, Counter>,
    /// Fast-ingest batches JetStream confirmed with their final ack.
    pub publish_batches: Family<TypeLabel, Counter>,
    /// Messages written on the direct publish connection.
    pub publish_direct: Family<TypeLabel, Counter>,
    /// Events dropped because the queue was full (`drop_newest`).
    pub queue_drops: Family<VenueTypeLabel, Counter>,
    /// Seconds from frame receipt to JetStream ack.
    pub ack_latency: LatencyFamily,
    /// Seconds from the venue's event time to frame receipt.
    pub venue_lag: LatencyFamily,
    /// Publishes awaiting their ack.
    pub in_flight: Gauge,
    /// Events waiting in the queue per data type.
    pub queue_depth: Family<TypeLabel, Gauge>,
    /// 1 while the NATS client is connected.
    pub nats_connected: Gauge,
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
    /// Connections ended because a ping got no pong in time.
    pub pong_timeouts: Family<VenueLabel, Counter>,
    /// REST requests to venues, by kind and outcome.
    pub rest_requests: Family<RestLabel, Counter>,
    /// HTTP 429/418 answers (each pauses the venue's REST requests).
    pub rest_throttled: Family<VenueLabel, Counter>,
    /// Instruments the relay config's `select` filters chose, per venue.
    pub instruments_selected: Family<VenueLabel, Gauge>,
    /// Reference-data refreshes that failed (request, shape, empty), the
    /// last good instrument set kept.
    pub reference_failures: Family<VenueLabel, Counter>,
    /// Expression evaluations the fast path handed to the jq interpreter
    /// at run time.
    pub interpreter_fallbacks: Family<VenueLabel, Counter>,
    /// Instruments stale now (no event of the type for longer than expected).
    pub instruments_stale: Family<VenueTypeLabel, Gauge>,
    /// Times an instrument went stale.
    pub stale: Family<VenueTypeLabel, Counter>,
    /// Log lines left out by the rate limiter.
    pub logs_suppressed: Counter,
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
        let mut m = Metrics {
            registry: Registry::default(),
            live: std::sync::Mutex::new(Vec::new()),
            frames_received: Family::default(),
            bytes_received: Family::default(),
            mapping_failures: Family::default(),
            unrouted_frames: Family::default(),
            data_frames: Family::default(),
            control_frames: Family::default(),
            events_mapped: Family::default(),
            events_generated: Family::default(),
            events_published: Family::default(),
            events_duplicate: Family::default(),
            events_dropped: Family::default(),
            publish_retries: Family::default(),
            publish_direct: Family::default(),
            publish_failures: Family::default(),
            publish_batches: Family::default(),
            queue_drops: Family::default(),
            ack_latency: Family::new_with_constructor(latency_histogram),
            venue_lag: Family::new_with_constructor(lag_histogram),
            in_flight: Gauge::default(),
            queue_depth: Family::default(),
            nats_connected: Gauge::default(),
            reconnects: Family::default(),
            handovers: Family::default(),
            connections: Family::default(),
            status_events: Family::default(),
            gaps: Family::default(),
            resyncs: Family::default(),
            checksum_mismatches: Family::default(),
            circuit_state: Family::default(),
            subscriptions_rejected: Family::default(),
            pong_timeouts: Family::default(),
            rest_requests: Family::default(),
            rest_throttled: Family::default(),
            instruments_selected: Family::default(),
            reference_failures: Family::default(),
            interpreter_fallbacks: Family::default(),
            instruments_stale: Family::default(),
            stale: Family::default(),
            logs_suppressed: Counter::default(),
            reloads: Counter::default(),
            reload_failures: Counter::default(),
        };
        let mut root = Registry::default();
        super::process::register(&mut root);
        let r = root.sub_registry_with_prefix("mdrelay");
        let build: Family<BuildLabel, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        r.register("build_info", "The running build (value 1)", build);
        macro_rules! reg {
            ($($name:literal, $help:literal, $field:ident;)*) => {
                $(r.register($name, $help, m.$field.clone());)*
            };
        }
        reg! {
            "frames_received", "Frames received from venues", frames_received;
            "bytes_received", "Bytes received from venues", bytes_received;
            "data_frames", "Frames that mapped to market data (zero or more events)", data_frames;
            "mapping_failures", "Frames that failed to map and were skipped", mapping_failures;
            "unrouted_frames", "Frames no control rule or route matched", unrouted_frames;
            "control_frames", "Control frames by kind", control_frames;
            "events_mapped", "Canonical events produced by mapping", events_mapped;
            "events_generated", "Events the relay made itself (status, top-N and REST book snapshots)", events_generated;
            "events_published", "Events acknowledged by JetStream as newly stored", events_published;
            "events_duplicate", "Events JetStream already had (deduplicated)", events_duplicate;
            "events_dropped", "Events not published, by cause (every event is published or counted here)", events_dropped;
            "publish_retries", "Publish attempts repeated (no ack in time, NATS away, or refused)", publish_retries;
            "publish_failures", "Events JetStream refused after the last retry (not stored)", publish_failures;
            "publish_batches", "Fast-ingest batches JetStream confirmed with their final ack (batched publish mode)", publish_batches;
            "publish_direct_writes", "Messages written on the direct publish connection (writer = \"direct\"; resends and anything while it is down go through the client)", publish_direct;
            "queue_drops", "Events dropped because their queue was full", queue_drops;
            "ack_latency_seconds", "Frame receipt to JetStream ack", ack_latency;
            "venue_lag_seconds", "Venue event time to frame receipt (where the venue sends a time)", venue_lag;
            "publish_in_flight", "Events sent or waiting to be sent again, not yet acknowledged", in_flight;
            "queue_depth", "Events waiting for the publisher", queue_depth;
            "nats_connected", "1 while the NATS connection is up", nats_connected;
            "reconnects", "Venue connections lost or failed", reconnects;
            "handovers", "Planned overlapping reconnects completed", handovers;
            "connections", "Open venue connections", connections;
            "status_events", "Status events published, by state", status_events;
            "gaps", "Sequence gaps and checksum mismatches detected", gaps;
            "resyncs", "Order book resyncs", resyncs;
            "checksum_mismatches", "Book checksum mismatches of report-only checksums (counted and logged, no resync)", checksum_mismatches;
            "circuit_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", circuit_state;
            "subscriptions_rejected", "Subscriptions rejected by the venue", subscriptions_rejected;
            "pong_timeouts", "Connections ended because a ping got no pong within the heartbeat's pong_timeout", pong_timeouts;
            "rest_requests", "REST requests to venues, by kind and outcome", rest_requests;
            "rest_throttled", "HTTP 429/418 answers from venues (each pauses that venue's REST requests)", rest_throttled;
            "instruments_selected", "Instruments chosen by the relay config's select filters", instruments_selected;
            "reference_failures", "Reference-data refreshes that failed; the last good instrument set was kept", reference_failures;
            "interpreter_fallbacks", "Mapping expression evaluations the native fast path handed to the jq interpreter at run time (a value it does not handle, or an error, which the interpreter words)", interpreter_fallbacks;
            "instruments_stale", "Instruments with no event of the data type for longer than its expected interval, now", instruments_stale;
            "stale", "Times an instrument went stale (no event of the data type for longer than its expected interval)", stale;
            "logs_suppressed", "Log lines left out by the per-cause rate limit", logs_suppressed;
            "reloads", "Hot reloads applied", reloads;
            "reload_failures", "Hot reloads refused", reload_failures;
        }
        m.registry = root;
        m
    }

    /// Prometheus text exposition (live gauges are read first).
    pub fn encode(&self) -> String {
        if let Ok(live) = self.live.lock() {
            for f in live.iter() {
                f();
            }
        }
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }

    /// Set a gauge from live state each time the metrics are read.
    pub fn on_read(&self, f: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut live) = self.live.lock() {
            live.push(Box::new(f));
        }
    }

    /// The dropped-events counter of one venue, data type and cause.
    pub fn dropped(&self, venue: &str, data_type: DataType, cause: DropCause) -> Counter {
        self.events_dropped
            .get_or_create(&DropLabel {
                venue: venue.to_owned(),
                data_type: data_type.as_str().to_owned(),
                cause: cause.as_str(),
            })
            .clone()
    }

    /// Create every series of a venue with 0, for the data types it
    /// publishes, so alerts and rates work before the first event or
    /// failure. (Series of types a venue does not offer are not created.)
    pub fn declare_venue(&self, venue: &str, types: &[DataType]) {
        for f in [
            &self.frames_received,
            &self.bytes_received,
            &self.data_frames,
            &self.mapping_failures,
            &self.unrouted_frames,
            &self.reconnects,
            &self.handovers,
            &self.gaps,
            &self.resyncs,
            &self.checksum_mismatches,
            &self.subscriptions_rejected,
            &self.pong_timeouts,
            &self.rest_throttled,
            &self.reference_failures,
            &self.interpreter_fallbacks,
        ] {
            let _ = Self::venue(f, venue);
        }
        for kind in RestKind::ALL {
            for outcome in REST_OUTCOMES {
                let _ = self.rest_request(venue, kind, outcome);
            }
        }
        let _ = Self::venue(&self.connections, venue);
        let _ = Self::venue(&self.circuit_state, venue);
        for &t in types {
            let l = VenueTypeLabel {
                venue: venue.to_owned(),
                data_type: t.as_str().to_owned(),
            };
            for f in [
                &self.events_mapped,
                &self.events_generated,
                &self.events_published,
                &self.events_duplicate,
                &self.publish_retries,
                &self.publish_failures,
                &self.queue_drops,
            ] {
                let _ = f.get_or_create(&l);
            }
            let _ = self.ack_latency.get_or_create(&l);
            if DataType::MARKET.contains(&t) {
                let _ = self.venue_lag.get_or_create(&l);
                let _ = self.instruments_stale.get_or_create(&l);
                let _ = self.stale.get_or_create(&l);
            }
            for cause in DropCause::ALL {
                let _ = self.dropped(venue, t, cause);
            }
        }
    }

    /// The REST request counter of one venue, kind and outcome.
    pub fn rest_request(&self, venue: &str, kind: RestKind, outcome: &'static str) -> Counter {
        self.rest_requests
            .get_or_create(&RestLabel {
                venue: venue.to_owned(),
                kind: kind.as_str(),
                outcome,
            })
            .clone()
    }

    /// A venue removed by a reload: its gauges go (a `connections` series
    /// left at 0 would read as a venue down). Counters stay: they only
    /// stop growing, which `rate()` reads correctly.
    pub fn forget_venue(&self, venue: &str) {
        let v = VenueLabel {
            venue: venue.to_owned(),
        };
        self.connections.remove(&v);
        self.circuit_state.remove(&v);
        for t in DataType::ALL {
            self.instruments_stale.remove(&VenueTypeLabel {
                venue: venue.to_owned(),
                data_type: t.as_str().to_owned(),
            });
        }
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

    /// Per data type handles of one cause, resolved once per connection.
    pub fn drops_by_type(&self, venue: &str, cause: DropCause) -> [Counter; DataType::ALL.len()] {
        std::array::from_fn(|i| self.dropped(venue, DataType::ALL[i], cause))
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
