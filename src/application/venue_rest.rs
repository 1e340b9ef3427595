//! A venue's REST access: the shared client behind the venue's budget, with
//! every request counted (`mdrelay_rest_requests_total`) and every 429/418
//! pausing the venue's requests for the wait it asked for
//! (`mdrelay_rest_throttled_total`).

use std::sync::Arc;

use tracing::warn;

use super::metrics::{Metrics, RestKind};
use crate::domain::HumanDuration;
use crate::engine::venue::RestRules;
use crate::infrastructure::rest::{Budget, BudgetSettings, Rest, RestError};

/// The budget settings of a venue's `[rest]` rules.
pub fn budget_settings(r: &RestRules) -> BudgetSettings {
    BudgetSettings {
        requests: r.requests,
        per: r.per,
        throttled_wait: r.throttled_wait,
    }
}

/// Each venue's budget, kept across reloads and restarts of the venue (a
/// pause a venue asked for outlives its connections).
#[derive(Clone, Default)]
pub struct Budgets(Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<Budget>>>>);

impl Budgets {
    /// The venue's budget, created or updated to `rules`.
    pub fn get(&self, venue: &str, rules: &RestRules) -> Arc<Budget> {
        let settings = budget_settings(rules);
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(venue) {
            Some(b) => {
                b.set(settings);
                b.clone()
            }
            None => {
                let b = Arc::new(Budget::new(settings));
                map.insert(venue.to_owned(), b.clone());
                b
            }
        }
    }
}

/// One venue's REST requests.
#[derive(Clone)]
pub struct VenueRest {
    rest: Rest,
    budget: Arc<Budget>,
    venue: Arc<str>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for VenueRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VenueRest")
            .field("venue", &self.venue)
            .finish()
    }
}

impl VenueRest {
    /// Requests to `venue` through `budget` (shared by all its users).
    pub fn new(rest: Rest, budget: Arc<Budget>, venue: Arc<str>, metrics: Arc<Metrics>) -> Self {
        VenueRest {
            rest,
            budget,
            venue,
            metrics,
        }
    }

    /// The venue's budget.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Wait for the budget, make the request, count it; a throttled answer
    /// pauses the venue's later requests.
    pub async fn request(
        &self,
        kind: RestKind,
        method: &str,
        url: &str,
        body: Option<&str>,
    ) -> Result<String, RestError> {
        self.budget.acquire().await;
        let result = self.rest.request(method, url, body).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.metrics.rest_request(&self.venue, kind, outcome).inc();
        if let Err(RestError::Throttled {
            target,
            status,
            retry_after,
        }) = &result
        {
            let wait = self.budget.throttled(*retry_after);
            Metrics::venue(&self.metrics.rest_throttled, &self.venue).inc();
            warn!(
                venue = %self.venue,
                kind = kind.as_str(),
                %target,
                status,
                wait = %HumanDuration(wait),
                "venue rate-limited REST requests; pausing them"
            );
        }
        result
    }
}
