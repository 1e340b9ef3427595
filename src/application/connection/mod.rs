//! One venue connection: a supervised task that connects, subscribes, reads
//! frames through the pipeline into the queues, keeps the connection alive,
//! and reconnects with backoff behind a circuit breaker when it fails.
//!
//! The path of one frame, in the order it goes:
//! - `session`: the socket loop (shutdown, frames, timers, control);
//! - `pipeline`: the synchronous per-frame step (map, filter, books, gate,
//!   encode) and `resync`: its book side (REST snapshots, gaps, top-N and
//!   full-depth snapshots); both return `Effects` for the loop to carry out;
//! - `supervisor`: reconnects, and the planned handover as two sibling
//!   sessions talking over channels (`handover`: the book gate).
//!
//! `stale` checks per-instrument liveness on the timer; `plan_change`
//! subscribes and unsubscribes instruments on the running socket when the
//! connection's plan changes.
//!
//! Around them: `error` (how a session ends), `timers`, `tops` (wall-clock
//! boundaries), `fetch` (REST requests), `messages` (what is sent to the
//! venue) and `counters` (metric handles).

mod counters;
mod error;
mod fetch;
pub mod handover;
mod messages;
mod pipeline;
mod plan_change;
mod resync;
mod session;
mod stale;
mod supervisor;
mod timers;
mod tops;

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::breaker::{Backoff, CircuitBreaker};
use super::health::Health;
use super::metrics::Metrics;
use super::pipeline::Queues;
use super::subscribe::ConnPlan;
use super::venue_rest::VenueRest;
use crate::config::relay::{Breaker, Reconnect};
use crate::engine::venue::Venue;
use crate::serialization::PayloadFormat;
use crate::serialization::frames::OwnedFrame;

use counters::Counters;
pub use fetch::RateLimiter;
pub(crate) use plan_change::in_place;

/// Everything a connection task needs.
pub struct Connection {
    /// Venue id.
    pub venue_id: Arc<str>,
    /// Index of this connection among the venue's.
    pub index: usize,
    /// What it subscribes to; replaced while it runs when the selected
    /// instruments change (subscribed and unsubscribed in place).
    pub plans: watch::Receiver<Arc<ConnPlan>>,
    /// The current venue definition (replaced on reload).
    pub venue: watch::Receiver<Arc<Venue>>,
    /// URL override from the relay config.
    pub url_override: Option<String>,
    /// Origin (`scheme://host:port`) replacing the venue's REST origin.
    pub rest_url: Option<String>,
    /// Backoff settings.
    pub reconnect: Reconnect,
    /// Breaker settings.
    pub breaker: Breaker,
    /// Where events go.
    pub queues: Queues,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Health registry.
    pub health: Arc<Health>,
    /// REST requests (bootstrap, snapshots) within the venue's budget.
    pub rest: VenueRest,
    /// Paces REST snapshot requests across the venue's connections.
    pub snapshot_limiter: Arc<RateLimiter>,
    /// Payload encoding.
    pub format: PayloadFormat,
    /// Stops the task.
    pub cancel: CancellationToken,
    /// Every received text or binary frame is also sent here (`mdrelay record`).
    pub tap: Option<tokio::sync::mpsc::UnboundedSender<OwnedFrame>>,
}

/// Reconnect pacing shared by a session and its successor.
struct Pacing {
    backoff: Backoff,
    breaker: CircuitBreaker,
}

/// Replace the origin (`scheme://host[:port]`) of `url` with `origin`.
pub fn with_origin(url: &str, origin: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    format!("{}{}", origin.trim_end_matches('/'), &url[path_start..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn origins_are_replaced() {
        assert_eq!(
            super::with_origin(
                "https://api.example.com/api/v3/depth?symbol=X",
                "http://127.0.0.1:9000"
            ),
            "http://127.0.0.1:9000/api/v3/depth?symbol=X"
        );
        assert_eq!(super::with_origin("https://h", "http://l/"), "http://l");
    }
}
