//! Fetch a venue's reference data: each `[[reference]]` request, page by
//! page, through the venue's REST budget.

use std::collections::BTreeMap;

use super::{ReferenceError, map_page};
use crate::application::metrics::RestKind;
use crate::application::venue_rest::VenueRest;
use crate::domain::InstrumentRecord;
use crate::engine::venue::Venue;

/// Every instrument of every reference request of `venue`, in the order
/// listed (a symbol listed twice in one market is kept once). `origin`
/// replaces the URLs' origin (the relay config's `rest_url`).
pub async fn fetch_all(
    rest: &VenueRest,
    venue: &Venue,
    origin: Option<&str>,
) -> Result<Vec<InstrumentRecord>, ReferenceError> {
    let mut all: Vec<InstrumentRecord> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for req in &venue.reference {
        let mut extra = BTreeMap::new();
        for _ in 0..req.max_pages {
            let url = req.page_url(&extra);
            let url = match origin {
                Some(o) => crate::application::connection::with_origin(&url, o),
                None => url,
            };
            let body = rest
                .request(RestKind::Reference, &req.method, &url, req.body.as_deref())
                .await
                .map_err(|error| ReferenceError::Request {
                    request: req.name.clone(),
                    error,
                })?;
            let page = map_page(venue, req, &body)
                .map_err(|e| ReferenceError::Shape(format!("request `{}`: {e}", req.name)))?;
            for r in page.records {
                if seen.insert((r.market.clone(), r.symbol.clone())) {
                    all.push(r);
                }
            }
            match page.next {
                Some(next) if next != extra => extra = next,
                _ => break,
            }
        }
    }
    if all.is_empty() {
        return Err(ReferenceError::Empty);
    }
    Ok(all)
}
