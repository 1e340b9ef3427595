//! Health: every connection reports its state through a `watch` channel and
//! an atomic last-frame time; `/health` reads them live, together with the
//! NATS client's connection state and the last reload result.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::application::liveness::InstrumentTable;
use crate::domain::Timestamp;

/// The state of one venue connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnState {
    /// First connection attempt under way.
    Connecting,
    /// Connected and subscribed.
    Connected,
    /// Lost; waiting to reconnect.
    Reconnecting,
    /// Too many failures: not trying until the breaker lets a probe through.
    CircuitOpen,
    /// Stopped (shutdown or removed by a reload).
    Stopped,
}

/// What a connection reports.
#[derive(Debug, Clone, Serialize)]
pub struct ConnStatus {
    /// State.
    pub state: ConnState,
    /// Subscribe acks received on the current connection.
    pub subscriptions_acked: u64,
    /// Error messages the venue sent (rejected subscriptions), latest last,
    /// with when (Unix ms). They count against health for
    /// [`HealthSettings::error_memory`], then age out.
    pub subscriptions_rejected: Vec<VenueError>,
    /// Reconnects so far.
    pub reconnects: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

impl Default for ConnStatus {
    fn default() -> Self {
        ConnStatus {
            state: ConnState::Connecting,
            subscriptions_acked: 0,
            subscriptions_rejected: Vec::new(),
            reconnects: 0,
            last_error: None,
        }
    }
}

/// An error a venue reported.
#[derive(Debug, Clone, Serialize)]
pub struct VenueError {
    /// When it arrived (Unix milliseconds).
    pub at_ms: i64,
    /// What the venue said (cut to a few hundred bytes).
    pub message: String,
}

pub use crate::config::relay::HealthSettings;

/// The connection's side: update state, stamp frames.
pub struct ConnReporter {
    tx: watch::Sender<ConnStatus>,
    last_frame_ns: Arc<AtomicI64>,
    instruments: SharedTable,
}

/// A connection's instrument table, once it has one.
type SharedTable = Arc<Mutex<Option<Arc<InstrumentTable>>>>;

impl ConnReporter {
    /// Change the status.
    pub fn update(&self, f: impl FnOnce(&mut ConnStatus)) {
        self.tx.send_modify(f);
    }

    /// Show this connection's instruments (liveness, books) in `/health`.
    pub fn set_instruments(&self, table: Arc<InstrumentTable>) {
        *self.instruments.lock().expect("health lock") = Some(table);
    }

    /// Record that a frame arrived now.
    #[inline]
    pub fn frame(&self, at: Timestamp) {
        self.last_frame_ns.store(at.0, Ordering::Relaxed);
    }
}

impl Drop for ConnReporter {
    fn drop(&mut self) {
        self.tx.send_modify(|s| s.state = ConnState::Stopped);
    }
}

struct ConnWatch {
    venue: String,
    index: usize,
    rx: watch::Receiver<ConnStatus>,
    last_frame_ns: Arc<AtomicI64>,
    stale_after: Duration,
    instruments: SharedTable,
}

/// The result of the last reload attempt.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ReloadReport {
    /// When it happened.
    pub at: Option<String>,
    /// Whether it was applied.
    pub ok: bool,
    /// What changed, or why it was refused.
    pub detail: Vec<String>,
}

/// Live health of the relay.
#[derive(Default)]
pub struct Health {
    settings: HealthSettings,
    conns: Mutex<Vec<ConnWatch>>,
    nats: OnceLock<async_nats::Client>,
    /// The direct publish connection, with `writer = "direct"`.
    wire: OnceLock<crate::infrastructure::wire::WireState>,
    reload: OnceLock<watch::Receiver<ReloadReport>>,
    publish: OnceLock<Arc<crate::application::publisher::PublishSignals>>,
    instruments: OnceLock<InstrumentsHook>,
}

/// Reads the reference-data state of each venue (`instruments` in the
/// report).
pub type InstrumentsHook = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Publishes that have met no stream for this long make the relay
/// unhealthy (a stream leader election takes 2–3 s; longer means no stream
/// captures the subjects).
const NO_STREAM_UNHEALTHY: Duration = Duration::from_secs(5);

/// One venue's part of the report.
#[derive(Debug, Serialize)]
struct VenueReport {
    status: &'static str,
    connections: Vec<serde_json::Value>,
    /// Per instrument: the age and state of each data type, and its book.
    instruments: Vec<serde_json::Value>,
}

impl Health {
    /// A new, empty registry with the default settings.
    pub fn new() -> Arc<Self> {
        Arc::new(Health::default())
    }

    /// A new, empty registry.
    pub fn with_settings(settings: HealthSettings) -> Arc<Self> {
        Arc::new(Health {
            settings,
            ..Health::default()
        })
    }

    /// Register a connection; it is shown until its reporter is dropped and
    /// a newer connection with the same venue and index replaces it.
    pub fn register(&self, venue: &str, index: usize, stale_after: Duration) -> ConnReporter {
        let (tx, rx) = watch::channel(ConnStatus::default());
        let last_frame_ns = Arc::new(AtomicI64::new(0));
        let instruments = SharedTable::default();
        let mut conns = self.conns.lock().expect("health lock");
        conns.retain(|c| !(c.venue == venue && c.index == index));
        conns.push(ConnWatch {
            venue: venue.to_owned(),
            index,
            rx,
            last_frame_ns: last_frame_ns.clone(),
            stale_after,
            instruments: instruments.clone(),
        });
        ConnReporter {
            tx,
            last_frame_ns,
            instruments,
        }
    }

    /// Forget the connections of a venue (removed by a reload).
    pub fn remove_venue(&self, venue: &str) {
        self.conns
            .lock()
            .expect("health lock")
            .retain(|c| c.venue != venue);
    }

    /// Attach the NATS client (its state is read live).
    pub fn set_nats(&self, client: async_nats::Client) {
        let _ = self.nats.set(client);
    }

    /// Attach the direct publish connection (its state is read live).
    pub fn set_wire(&self, wire: crate::infrastructure::wire::WireState) {
        let _ = self.wire.set(wire);
    }

    /// Attach the publishers' signals (JetStream with no stream for a subject).
    pub fn set_publish_signals(&self, s: Arc<crate::application::publisher::PublishSignals>) {
        let _ = self.publish.set(s);
    }

    /// Attach the reload result channel.
    pub fn set_reload(&self, rx: watch::Receiver<ReloadReport>) {
        let _ = self.reload.set(rx);
    }

    /// Show each venue's reference data and selection state.
    pub fn set_instruments(&self, hook: InstrumentsHook) {
        let _ = self.instruments.set(hook);
    }

    /// The report, and whether it warrants HTTP 200 (healthy or degraded).
    pub fn report(&self) -> (bool, serde_json::Value) {
        let now = Timestamp::now();
        let nats_state = match self.nats.get().map(|c| c.connection_state()) {
            Some(async_nats::connection::State::Connected) => "connected",
            Some(async_nats::connection::State::Disconnected) => "disconnected",
            Some(async_nats::connection::State::Pending) => "pending",
            None => "not_started",
        };
        let mut venues: BTreeMap<String, VenueReport> = BTreeMap::new();
        let (mut any_up, mut all_up, mut any_conn) = (false, true, false);
        let error_since = now.as_millis()
            - i64::try_from(self.settings.error_memory.as_millis()).unwrap_or(i64::MAX);
        for c in self.conns.lock().expect("health lock").iter() {
            let st = c.rx.borrow().clone();
            if st.state == ConnState::Stopped {
                continue;
            }
            any_conn = true;
            let last = c.last_frame_ns.load(Ordering::Relaxed);
            let age = (last > 0).then(|| Duration::from_nanos((now.0 - last).max(0) as u64));
            let up = st.state == ConnState::Connected && age.is_some_and(|a| a <= c.stale_after);
            let quiet = age.is_none_or(|a| {
                a.as_secs_f64() > c.stale_after.as_secs_f64() * self.settings.silence_fraction
            });
            let errors: Vec<&VenueError> = st
                .subscriptions_rejected
                .iter()
                .filter(|e| e.at_ms >= error_since)
                .collect();
            let (instruments, stale) = c
                .instruments
                .lock()
                .expect("health lock")
                .as_ref()
                .map(|t| t.report(now))
                .unwrap_or_default();
            let ok = up && !quiet && errors.is_empty() && !stale;
            any_up |= up;
            all_up &= ok;
            let v = venues.entry(c.venue.clone()).or_insert(VenueReport {
                status: "healthy",
                connections: Vec::new(),
                instruments: Vec::new(),
            });
            v.instruments.extend(instruments);
            if !ok {
                v.status = "degraded";
            }
            v.connections.push(serde_json::json!({
                "index": c.index,
                "state": st.state,
                "last_frame_age_ms": age.map(|a| a.as_millis() as u64),
                "quiet": quiet,
                "subscriptions_acked": st.subscriptions_acked,
                "recent_errors": errors,
                "subscriptions_rejected": st.subscriptions_rejected,
                "reconnects": st.reconnects,
                "last_error": st.last_error,
            }));
        }
        let wire_state = self.wire.get().map(|w| {
            if w.connected() {
                "connected"
            } else {
                "disconnected"
            }
        });
        // The direct connection down is not an outage: the client takes
        // its messages meanwhile.
        let nats_up = nats_state == "connected";
        let no_stream = self
            .publish
            .get()
            .and_then(|p| p.no_stream_for(now))
            .filter(|d| *d >= NO_STREAM_UNHEALTHY);
        let status = if !nats_up || no_stream.is_some() || (any_conn && !any_up) {
            "unhealthy"
        } else if !all_up {
            "degraded"
        } else {
            "healthy"
        };
        // `null` until the first reload (a fresh start is not a failed reload).
        let reload = self
            .reload
            .get()
            .map(|r| r.borrow().clone())
            .filter(|r| r.at.is_some());
        let body = serde_json::json!({
            "status": status,
            "nats": {
                "state": nats_state,
                "publish_connection": wire_state,
                "no_stream_for_ms": no_stream.map(|d| d.as_millis() as u64),
            },
            "venues": venues,
            "last_reload": reload,
            "instruments": self.instruments.get().map(|f| f()),
        });
        (status != "unhealthy", body)
    }
}
