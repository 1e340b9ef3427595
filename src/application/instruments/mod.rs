//! Instruments from the venue: reference data fetched over REST
//! (`[[reference]]` in the venue file), mapped to canonical
//! [`InstrumentRecord`]s, and the relay config's `select` filters resolved
//! against them.
//!
//! - `records`: a response body → records (the request's jq mapping);
//! - `fetch`: every request of a venue, page by page, within its REST
//!   budget;
//! - `choose`: filters → subscriptions (sorted, limited);
//! - `cases`: fixture responses and their expected records
//!   (`mdrelay validate`);
//! - `refresh`: the periodic refresh of a running venue, keeping the last
//!   good set when a response is bad.

mod cases;
mod choose;
mod fetch;
mod records;
pub mod refresh;

pub use cases::{ReferenceCase, run_reference_cases};
pub use choose::choose;
pub use fetch::fetch_all;
pub use records::{Page, RECORD_KEYS, map_page};

#[allow(unused_imports)]
use crate::domain::InstrumentRecord;

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
