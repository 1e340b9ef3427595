//! The running relay: wires NATS, the publishers, the venue connections and
//! the HTTP endpoint together, and shuts them down in order.
//!
//! Shutdown: venue connections stop reading (their tokens are children of
//! the root token), the queues close once the last sender is gone, the
//! publishers drain what is queued and await outstanding acks within the
//! configured timeout, then the HTTP server stops.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::connection::Connection;
use super::health::{Health, ReloadReport};
use super::metrics::Metrics;
use super::pipeline::Queues;
use super::publisher::{self, PublishSettings, PublishSignals, PublisherReport};
use super::subscribe::plan_connections;
use crate::config::relay::raw::PublishWriter;
use crate::config::relay::subjects::publish_subjects;
use crate::config::relay::{RelayConfig, VenueSetup};
use crate::engine::venue::Venue;
use crate::infrastructure::http::{self, Observe};
use crate::infrastructure::rest::Rest;
use crate::infrastructure::wire::Wire;
use crate::infrastructure::{InfraError, nats};
use crate::serialization::PayloadFormat;

/// Errors that stop the relay from starting.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// An infrastructure failure that cannot be retried (HTTP bind, JetStream
    /// refusing the configured streams).
    #[error(transparent)]
    Infra(#[from] InfraError),
    /// The JetStream streams cannot store what the relay publishes
    /// (`manage = "verify"` mismatches, subjects no stream captures).
    #[error(transparent)]
    Streams(#[from] super::streams::StreamsError),
}

/// Options the command line (or a test) sets on top of the config.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Listen address override (tests use port 0).
    pub http_listen: Option<SocketAddr>,
    /// Record exact frame-to-ack latencies (benchmarks).
    pub probe: Option<Arc<publisher::LatencyProbe>>,
}

/// What the relay published, reported at exit: the publishers' reports
/// added up.
pub type RunReport = PublisherReport;

struct Observed {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

impl Observe for Observed {
    fn health(&self) -> (bool, serde_json::Value) {
        self.health.report()
    }

    fn metrics(&self) -> String {
        self.metrics.encode()
    }
}

/// A venue that is running: its definition channel, its tasks and the token
/// that stops them.
pub(crate) struct RunningVenue {
    pub(crate) setup: VenueSetup,
    pub(crate) venue_tx: watch::Sender<Arc<Venue>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tasks: TaskTracker,
    /// Each connection's plan and token (a child of `cancel`), so that one
    /// can be replaced alone when the selected instruments change.
    pub(crate) conns: Vec<RunningConn>,
    /// What every connection of the venue shares.
    pub(crate) kit: VenueKit,
}

/// One running connection of a venue.
pub(crate) struct RunningConn {
    /// What it carries now.
    pub(crate) plan: Arc<super::subscribe::ConnPlan>,
    /// Gives it a new plan (it subscribes and unsubscribes the difference).
    pub(crate) plans: watch::Sender<Arc<super::subscribe::ConnPlan>>,
    pub(crate) cancel: CancellationToken,
}

/// The parts a venue's connections share.
#[derive(Clone)]
pub(crate) struct VenueKit {
    venue_rx: watch::Receiver<Arc<Venue>>,
    snapshot_limiter: Arc<super::connection::RateLimiter>,
    rest: super::venue_rest::VenueRest,
    next_index: usize,
}

/// Shared parts every venue connection needs.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) queues: Queues,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<Health>,
    pub(crate) rest: Rest,
    /// Each venue's REST budget.
    pub(crate) budgets: super::venue_rest::Budgets,
    pub(crate) format: PayloadFormat,
    pub(crate) root: CancellationToken,
    /// Where reference-data refreshes report (the reloader).
    pub(crate) refreshed: tokio::sync::mpsc::Sender<super::instruments::refresh::Refreshed>,
    /// Reference-data state for `/health`.
    pub(crate) instruments: Arc<super::instruments::refresh::InstrumentsReport>,
    /// Copy of every received frame (recording).
    pub(crate) tap:
        Option<tokio::sync::mpsc::UnboundedSender<crate::serialization::frames::OwnedFrame>>,
}

impl Shared {
    /// The venue's REST access (its budget is shared and kept).
    pub(crate) fn venue_rest(&self, setup: &VenueSetup) -> super::venue_rest::VenueRest {
        let budget = self.budgets.get(&setup.id, &setup.venue.rest);
        super::venue_rest::VenueRest::new(
            self.rest.clone(),
            budget,
            Arc::from(setup.id.as_str()),
            self.metrics.clone(),
        )
    }

    /// Start every connection of a venue.
    pub(crate) fn start_venue(&self, setup: VenueSetup) -> RunningVenue {
        let (venue_tx, venue_rx) = watch::channel(setup.venue.clone());
        let cancel = self.root.child_token();
        let tasks = TaskTracker::new();
        let id: Arc<str> = Arc::from(setup.id.as_str());
        self.metrics.declare_venue(&id, &setup.published_types());
        let plans = plan_connections(&setup);
        let snapshot_rate = setup
            .venue
            .book
            .snapshot
            .as_ref()
            .map_or(1.0, |s| s.max_requests_per_second);
        let snapshot_limiter = super::connection::RateLimiter::new(snapshot_rate);
        let rest = self.venue_rest(&setup);
        info!(venue = %id, connections = plans.len(), "starting venue");
        if !setup.selections.is_empty() {
            let refresher = super::instruments::refresh::Refresher {
                venue_id: setup.id.clone(),
                venue: venue_rx.clone(),
                rest: rest.clone(),
                origin: setup.rest_url.clone(),
                every: setup.reference_refresh,
                tx: self.refreshed.clone(),
                cancel: cancel.clone(),
            };
            tasks.spawn(refresher.run());
        }
        let mut running = RunningVenue {
            setup,
            venue_tx,
            cancel,
            tasks,
            conns: Vec::new(),
            kit: VenueKit {
                venue_rx,
                snapshot_limiter,
                rest,
                next_index: 0,
            },
        };
        for plan in plans {
            self.start_conn(&mut running, plan);
        }
        running.tasks.close();
        running
    }

    /// Start one more connection of a running venue.
    pub(crate) fn start_conn(&self, v: &mut RunningVenue, plan: super::subscribe::ConnPlan) {
        let cancel = v.cancel.child_token();
        let index = v.kit.next_index;
        v.kit.next_index += 1;
        let plan = Arc::new(plan);
        let (plans, plans_rx) = watch::channel(plan.clone());
        let conn = Connection {
            venue_id: Arc::from(v.setup.id.as_str()),
            index,
            plans: plans_rx,
            venue: v.kit.venue_rx.clone(),
            url_override: v.setup.url.clone(),
            rest_url: v.setup.rest_url.clone(),
            snapshot_limiter: v.kit.snapshot_limiter.clone(),
            reconnect: v.setup.reconnect.clone(),
            breaker: v.setup.breaker.clone(),
            queues: self.queues.clone(),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            rest: v.kit.rest.clone(),
            format: self.format,
            cancel: cancel.clone(),
            tap: self.tap.clone(),
        };
        v.tasks.spawn(conn.run());
        v.conns.push(RunningConn {
            plan,
            plans,
            cancel,
        });
    }
}

/// A started relay.
pub struct RelayHandle {
    /// Where `/health` and `/metrics` are served.
    pub http_addr: SocketAddr,
    /// Health (for tests and the reload controller).
    pub health: Arc<Health>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    done: JoinHandle<RunReport>,
    pub(crate) control: super::reload::ReloadControl,
}

impl RelayHandle {
    /// Ask the relay to stop; returns once it has drained.
    pub async fn shutdown(self) -> RunReport {
        self.shutdown.cancel();
        self.done.await.unwrap_or_default()
    }

    /// A token that stops the relay when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Wait until the relay stops by itself (after its token is cancelled).
    pub async fn wait(self) -> RunReport {
        self.done.await.unwrap_or_default()
    }
}

/// The direct publish connection, with `writer = "direct"`: started, shown
/// on `/health`, and given the connect timeout to come up (events go through
/// the client until it does).
async fn start_wire(
    cfg: &RelayConfig,
    client: &async_nats::Client,
    health: &Health,
) -> Result<Option<Wire>, RelayError> {
    if cfg.nats.publish.writer != PublishWriter::Direct {
        return Ok(None);
    }
    if !crate::infrastructure::wire::reaches(&cfg.nats) {
        warn!(
            "nats.publish.writer = \"direct\" needs nats:// or tls:// server URLs; publishing through the client"
        );
        return Ok(None);
    }
    // The client first (it carries the acks and the streams; a server with
    // a connection limit should refuse the accelerator, not the client).
    let until = tokio::time::Instant::now() + cfg.nats.connect_timeout.0;
    while client.connection_state() != async_nats::connection::State::Connected
        && tokio::time::Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let w = Wire::start(&cfg.nats, &format!("{}-publish", cfg.service.name))?;
    health.set_wire(w.state());
    if !w.wait_connected(cfg.nats.connect_timeout.0).await {
        warn!(
            "the direct NATS publish connection is not up yet; publishing through the client until it is"
        );
    }
    Ok(Some(w))
}

/// Start the relay.
pub async fn start(cfg: RelayConfig, opts: StartOptions) -> Result<RelayHandle, RelayError> {
    crate::infrastructure::ws::install_crypto_provider();
    let metrics = Arc::new(Metrics::new());
    let health = Health::with_settings(cfg.health);
    let (reload_tx, reload_rx) = watch::channel(ReloadReport::default());
    health.set_reload(reload_rx);
    let shutdown = CancellationToken::new();
    let root = shutdown.child_token();

    let client = nats::connect(&cfg.nats, &cfg.service.name, true).await?;
    health.set_nats(client.clone());
    let wire = start_wire(&cfg, &client, &health).await?;
    {
        let (client, gauge) = (client.clone(), metrics.nats_connected.clone());
        metrics.on_read(move || {
            let up = client.connection_state() == async_nats::connection::State::Connected;
            gauge.set(i64::from(up));
        });
    }
    let js = nats::jetstream(client.clone(), cfg.nats.publish.ack_timeout.0);
    let (ready_tx, ready_rx) = watch::channel(false);
    reconcile_first(&js, &cfg, &ready_tx).await?;

    let (queues, receivers) = Queues::new(&cfg.queues);
    queues.report_depths(&metrics);
    let signals = Arc::new(PublishSignals::default());
    health.set_publish_signals(signals.clone());
    let give_up = CancellationToken::new();
    let settings = PublishSettings {
        client: client.clone(),
        ack_timeout: cfg.nats.publish.ack_timeout.0,
        signals,
        give_up: give_up.clone(),
        permits: Arc::new(Semaphore::new(cfg.nats.publish.max_in_flight)),
        retry_delays: cfg
            .nats
            .publish
            .retry_delays
            .iter()
            .map(|d| d.0)
            .collect::<Vec<_>>()
            .into(),
        content_type: cfg.nats.payload_format.content_type(),
        metrics: metrics.clone(),
        probe: opts.probe.clone(),
        mode: cfg.nats.publish.mode,
        streams: cfg.nats.streams.clone().into(),
        batch_flow: cfg.nats.publish.batch_flow,
        wire,
    };
    let publishers: Vec<JoinHandle<PublisherReport>> = receivers
        .into_iter()
        .map(|(t, rx)| tokio::spawn(publisher::run(t, rx, settings.clone(), ready_rx.clone())))
        .collect();

    let (refreshed, refreshed_rx) = tokio::sync::mpsc::channel(16);
    let instruments = Arc::new(super::instruments::refresh::InstrumentsReport::default());
    {
        let report = instruments.clone();
        health.set_instruments(Box::new(move || report.json()));
    }
    let kv = if cfg
        .venues
        .iter()
        .any(|v| v.enabled && !v.selections.is_empty())
    {
        match tokio::time::timeout(
            cfg.nats.connect_timeout.0,
            super::instruments::bucket::open(&js),
        )
        .await
        {
            Ok(Ok(kv)) => Some(kv),
            Ok(Err(e)) => {
                warn!(error = %e, bucket = super::instruments::bucket::BUCKET, "instrument bucket unavailable; reference data is not published");
                None
            }
            Err(_) => {
                warn!(
                    bucket = super::instruments::bucket::BUCKET,
                    "instrument bucket: NATS did not answer; reference data is not published"
                );
                None
            }
        }
    } else {
        None
    };
    let selected =
        super::instruments::Selected::new(refreshed_rx, kv, instruments.clone(), metrics.clone());
    let shared = Shared {
        queues,
        metrics: metrics.clone(),
        health: health.clone(),
        rest: Rest::new(Duration::from_secs(10)),
        budgets: Default::default(),
        refreshed,
        instruments,
        format: cfg.nats.payload_format,
        root: root.clone(),
        tap: None,
    };
    let mut running = BTreeMap::new();
    for setup in cfg.venues.iter().filter(|v| v.enabled) {
        running.insert(setup.id.clone(), shared.start_venue(setup.clone()));
    }

    let http_stop = CancellationToken::new();
    let observe: Arc<dyn Observe> = Arc::new(Observed {
        health: health.clone(),
        metrics: metrics.clone(),
    });
    let (http_addr, http_task) = http::serve(
        opts.http_listen.unwrap_or(cfg.http_listen),
        observe,
        http_stop.clone(),
    )
    .await?;
    info!(%http_addr, venues = running.len(), "relay started");

    let (control, reload_requests) = super::reload::ReloadControl::new();
    let drain = cfg.service.shutdown_timeout.0;
    let reloader =
        super::reload::Reloader::new(cfg, shared, running, reload_tx, metrics.clone(), selected);
    let stop = shutdown.clone();
    let done = tokio::spawn(async move {
        let (shared, running) = reloader.serve(reload_requests, stop).await;
        let report = drain_all(shared, running, publishers, drain, give_up).await;
        http_stop.cancel();
        // Neither may hold up the exit: an idle HTTP client keeps its
        // connection, and a flush waits forever while NATS is unreachable.
        let _ = tokio::time::timeout(Duration::from_secs(2), http_task).await;
        if client.connection_state() == async_nats::connection::State::Connected {
            let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
        }
        report
    });
    Ok(RelayHandle {
        http_addr,
        health,
        metrics,
        shutdown,
        done,
        control,
    })
}

/// Reconcile and check the streams once if NATS answers quickly: a refusal
/// is fatal. An unreachable or not yet ready server is retried in the
/// background (publishers wait); a refusal found then is logged and
/// retried too, so a relay started before the stream's owner waits for it.
async fn reconcile_first(
    js: &async_nats::jetstream::Context,
    cfg: &RelayConfig,
    ready: &watch::Sender<bool>,
) -> Result<(), RelayError> {
    let nats = Arc::new((cfg.nats.streams.clone(), cfg.nats.missing_stream));
    let publish = Arc::new(publish_subjects(&cfg.venues));
    info!(subjects = publish.len(), "subjects to publish");
    let first = tokio::time::timeout(
        cfg.nats.connect_timeout.0,
        super::streams::reconcile_and_check(js, &nats.0, nats.1, &publish),
    )
    .await;
    match first {
        Ok(Ok(())) => {
            let _ = ready.send(true);
            Ok(())
        }
        Ok(Err(e)) if !e.is_transient() => {
            error!(error = %e, "JetStream refused the configuration");
            Err(e.into())
        }
        Ok(Err(e)) => {
            warn!(error = %e, "JetStream not ready yet; streams will be reconciled when it is");
            retry_in_background(js.clone(), nats, publish, ready.clone());
            Ok(())
        }
        Err(_) => {
            warn!("NATS not reachable yet; streams will be reconciled when it is");
            retry_in_background(js.clone(), nats, publish, ready.clone());
            Ok(())
        }
    }
}

fn retry_in_background(
    js: async_nats::jetstream::Context,
    nats: Arc<(
        Vec<crate::config::relay::raw::RawStream>,
        crate::config::relay::raw::MissingStream,
    )>,
    publish: Arc<std::collections::BTreeSet<String>>,
    ready: watch::Sender<bool>,
) {
    tokio::spawn(async move {
        loop {
            match super::streams::reconcile_and_check(&js, &nats.0, nats.1, &publish).await {
                Ok(()) => {
                    let _ = ready.send(true);
                    info!("JetStream streams ready");
                    break;
                }
                Err(e) if e.is_transient() => {
                    warn!(error = %e, "stream reconcile failed; retrying")
                }
                Err(e) => error!(error = %e, "streams refused; publishing waits, retrying"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
}

async fn drain_all(
    shared: Shared,
    running: BTreeMap<String, RunningVenue>,
    publishers: Vec<JoinHandle<PublisherReport>>,
    timeout: Duration,
    give_up: CancellationToken,
) -> RunReport {
    info!("shutting down: stopping venue connections");
    shared.root.cancel();
    for v in running.values() {
        v.cancel.cancel();
    }
    for v in running.values() {
        let _ = tokio::time::timeout(Duration::from_secs(5), v.tasks.wait()).await;
    }
    drop(running);
    drop(shared);
    info!(
        timeout = %crate::domain::HumanDuration(timeout),
        "draining queued and in-flight events"
    );
    // At the deadline the publishers stop trying and report what is left.
    let deadline = tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        give_up.cancel();
    });
    let mut report = RunReport::default();
    for p in publishers {
        if let Ok(r) = p.await {
            report.add(&r);
        }
    }
    deadline.abort();
    if report.abandoned() > 0 {
        warn!(
            abandoned = report.abandoned(),
            never_sent = report.abandoned_unsent,
            sent_unconfirmed = report.abandoned_unconfirmed,
            "shutdown timeout: events abandoned (never sent: not stored; sent without an ack: JetStream may hold them)"
        );
    }
    info!(
        acked = report.acked(),
        stored = report.stored,
        duplicates = report.duplicates,
        failed = report.failed,
        abandoned = report.abandoned(),
        "relay stopped"
    );
    report
}
