//! The refresh of a running venue's reference data: a task per venue with
//! `select` subscriptions fetches it at start and every
//! `reference_refresh`, and hands each result to the reloader, which
//! re-plans the venue's subscriptions from the last good set. A failed,
//! malformed or empty response changes nothing: it is counted
//! (`mdrelay_reference_failures_total`), logged and shown in `/health`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{ReferenceError, fetch_all};
use crate::application::venue_rest::VenueRest;
use crate::domain::{InstrumentRecord, Timestamp};
use crate::engine::venue::Venue;

/// Until a venue's reference data has been fetched once, a failed fetch is
/// retried this soon (or at the refresh interval, if shorter).
pub const FIRST_RETRY: Duration = Duration::from_secs(30);

/// One fetch of a venue's reference data.
#[derive(Debug)]
pub(crate) struct Refreshed {
    /// The venue id.
    pub venue: String,
    /// The records, or why there are none.
    pub result: Result<Arc<Vec<InstrumentRecord>>, ReferenceError>,
}

/// A venue's reference data as `/health` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VenueInstruments {
    /// Instruments in the last good reference data.
    pub listed: usize,
    /// Instruments the `select` filters chose from it.
    pub selected: usize,
    /// When the last good reference data arrived.
    pub last_ok: Option<String>,
    /// The last failure (the last good set was kept).
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<String>,
    /// Whether the most recent refresh failed.
    pub failing: bool,
}

/// Every venue's reference-data state, for `/health`.
#[derive(Debug, Default)]
pub struct InstrumentsReport(Mutex<BTreeMap<String, VenueInstruments>>);

impl InstrumentsReport {
    /// Change one venue's entry.
    pub fn update(&self, venue: &str, f: impl FnOnce(&mut VenueInstruments)) {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(m.entry(venue.to_owned()).or_default());
    }

    /// Forget a venue (stopped).
    pub fn remove(&self, venue: &str) {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.remove(venue);
    }

    /// The report, as JSON.
    pub fn json(&self) -> serde_json::Value {
        let m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        serde_json::to_value(&*m).unwrap_or_default()
    }
}

/// What a refresher needs.
pub(crate) struct Refresher {
    /// The venue id.
    pub venue_id: String,
    /// The current venue definition.
    pub venue: watch::Receiver<Arc<Venue>>,
    /// Its REST access.
    pub rest: VenueRest,
    /// The relay config's `rest_url` origin override.
    pub origin: Option<String>,
    /// The refresh interval.
    pub every: Duration,
    /// Where results go (the reloader).
    pub tx: mpsc::Sender<Refreshed>,
    /// Stops it (the venue's token).
    pub cancel: CancellationToken,
}

impl Refresher {
    /// Fetch now and every `every` until cancelled (until the first good
    /// answer, at least every [`FIRST_RETRY`]: nothing is selected yet).
    pub(crate) async fn run(self) {
        let mut had_good = false;
        loop {
            let venue = self.venue.borrow().clone();
            let fetched = tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = fetch_all(&self.rest, &venue, self.origin.as_deref()) => r,
            };
            match &fetched {
                Ok(r) => {
                    info!(venue = %self.venue_id, instruments = r.len(), "reference data fetched")
                }
                Err(e) => {
                    warn!(venue = %self.venue_id, error = %e, "reference data refresh failed; keeping the last good instrument set")
                }
            }
            had_good |= fetched.is_ok();
            let msg = Refreshed {
                venue: self.venue_id.clone(),
                result: fetched.map(Arc::new),
            };
            if self.tx.send(msg).await.is_err() {
                return;
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(if had_good { self.every } else { self.every.min(FIRST_RETRY) }) => {}
            }
        }
    }
}

/// Now, for reports.
pub(crate) fn now_text() -> String {
    Timestamp::now().to_rfc3339()
}
