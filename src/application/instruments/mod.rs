//! Instruments from the venue: reference data fetched over REST
//! (`[[reference]]` in the venue file), mapped to canonical
//! [`crate::domain::InstrumentRecord`]s, and the relay config's `select` filters resolved
//! against them.
//!
//! - `records`: a response body → records (the request's jq mapping);
//! - `fetch`: every request of a venue, page by page, within its REST
//!   budget;
//! - `choose`: filters → subscriptions (sorted, limited);
//! - `cases`: fixture responses and their expected records
//!   (`mdrelay validate`);
//! - `bucket`: the records on the bus (a JetStream key-value bucket);
//! - `refresh`: the periodic refresh of a running venue, keeping the last
//!   good set when a response is bad.

pub mod bucket;
mod cases;
mod choose;
mod fetch;
mod records;
pub mod refresh;
pub(crate) mod replan;

pub use cases::{ReferenceCase, run_reference_cases};
pub use choose::{choose, with_selected};
pub use fetch::fetch_all;
pub use records::{Page, RECORD_KEYS, map_page};

/// Why reference data could not be used. The caller keeps its last good
/// instrument set.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReferenceError {
    /// The request failed (no answer, an HTTP error, rate limited).
    #[error("request `{request}`: {error}")]
    Request {
        /// The `[[reference]]` name.
        request: String,
        /// What happened.
        error: crate::infrastructure::rest::RestError,
    },
    /// The response is not what the mapping expects.
    #[error("{0}")]
    Shape(String),
    /// The responses listed no instrument at all.
    #[error("the reference data lists no instrument")]
    Empty,
}

/// The reloader's side of instrument selection: the last good reference
/// data per venue, the bucket it is published to, and the refresh results
/// still to apply.
pub(crate) struct Selected {
    rx: tokio::sync::mpsc::Receiver<refresh::Refreshed>,
    records:
        std::collections::HashMap<String, std::sync::Arc<Vec<crate::domain::InstrumentRecord>>>,
    kv: Option<async_nats::jetstream::kv::Store>,
    published: bucket::Published,
    report: std::sync::Arc<refresh::InstrumentsReport>,
    metrics: std::sync::Arc<super::metrics::Metrics>,
}

impl Selected {
    /// Results from `rx`, published to `kv` when there is one.
    pub(crate) fn new(
        rx: tokio::sync::mpsc::Receiver<refresh::Refreshed>,
        kv: Option<async_nats::jetstream::kv::Store>,
        report: std::sync::Arc<refresh::InstrumentsReport>,
        metrics: std::sync::Arc<super::metrics::Metrics>,
    ) -> Self {
        Selected {
            rx,
            records: Default::default(),
            kv,
            published: Default::default(),
            report,
            metrics,
        }
    }

    /// The next refresh result.
    pub(crate) async fn next(&mut self) -> Option<refresh::Refreshed> {
        self.rx.recv().await
    }

    /// A compiled venue setup with the instruments its filters choose from
    /// the last good reference data (none yet: its explicit ones only).
    pub(crate) fn expand(
        &self,
        setup: &crate::config::relay::VenueSetup,
    ) -> crate::config::relay::VenueSetup {
        match self.records.get(&setup.id) {
            Some(r) if !setup.selections.is_empty() => with_selected(setup, r).0,
            _ => setup.clone(),
        }
    }

    /// Apply a refresh result to a running venue (`explicit`: its setup as
    /// compiled). A failure keeps everything as it is.
    pub(crate) async fn refreshed(
        &mut self,
        shared: &crate::application::relay::Shared,
        running: &mut crate::application::relay::RunningVenue,
        explicit: &crate::config::relay::VenueSetup,
        r: refresh::Refreshed,
    ) {
        let venue = r.venue.clone();
        let records = match r.result {
            Ok(records) => records,
            Err(e) => {
                super::metrics::Metrics::venue(&self.metrics.reference_failures, &venue).inc();
                self.report.update(&venue, |v| {
                    v.last_error = Some(e.to_string());
                    v.last_error_at = Some(refresh::now_text());
                    v.failing = true;
                });
                return;
            }
        };
        self.publish(&venue, &records).await;
        let (setup, errors) = with_selected(explicit, &records);
        for e in &errors {
            tracing::warn!(venue = %venue, error = %e, "select filter failed on a record (not selected)");
        }
        let selected = setup.subscriptions.len() - explicit.subscriptions.len();
        super::metrics::Metrics::venue(&self.metrics.instruments_selected, &venue)
            .set(selected as i64);
        self.report.update(&venue, |v| {
            v.listed = records.len();
            v.selected = selected;
            v.last_ok = Some(refresh::now_text());
            v.failing = false;
        });
        self.records.insert(venue, records);
        replan::replan(
            shared,
            running,
            setup,
            "no longer selected (delisted, halted or not matching the filter)",
        )
        .await;
    }

    async fn publish(&mut self, venue: &str, records: &[crate::domain::InstrumentRecord]) {
        let Some(kv) = &self.kv else { return };
        let puts = self.published.changes(venue, records);
        let n = puts.len();
        for (k, v) in puts {
            if let Err(e) = kv.put(&k, v.into()).await {
                tracing::warn!(venue, key = %k, error = %e, "instrument record not stored in the bucket");
            }
        }
        if n > 0 {
            tracing::info!(
                venue,
                changed = n,
                bucket = bucket::BUCKET,
                "instrument records published"
            );
        }
    }
}
