//! Per-instrument REST requests (book snapshots, checksum scales), paced
//! per venue; the answer comes back to the session as a control message.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// Spaces requests at least `interval` apart (shared by a venue's connections).
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: tokio::sync::Mutex<Instant>,
}

impl RateLimiter {
    /// At most `per_second` acquisitions per second.
    pub fn new(per_second: f64) -> Arc<Self> {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            1.0
        };
        Arc::new(RateLimiter {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: tokio::sync::Mutex::new(Instant::now()),
        })
    }

    /// Wait for the next slot.
    pub async fn acquire(&self) {
        let wait = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at - now
        };
        tokio::time::sleep(wait).await;
    }
}

/// What a per-instrument REST request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fetch {
    /// A book snapshot (`[book.snapshot]`).
    Snapshot,
    /// Checksum number scales (`[book.checksum.scales]`).
    Scales,
}

/// A fetched body (or the error) for an instrument.
#[derive(Debug)]
pub(super) struct Fetched {
    /// What it was for.
    pub what: Fetch,
    /// The venue instrument.
    pub instrument: String,
    /// The body, or why there is none.
    pub result: Result<String, String>,
}

/// Make `req` after waiting for the limiter (and its delay), sending the
/// result to `tx` as a session control message.
pub(super) fn spawn_fetch(
    rest: crate::application::venue_rest::VenueRest,
    limiter: Arc<RateLimiter>,
    req: super::pipeline::FetchRequest,
    tx: mpsc::UnboundedSender<super::session::Control>,
) {
    tokio::spawn(async move {
        tokio::time::sleep(req.delay).await;
        limiter.acquire().await;
        let kind = match req.what {
            Fetch::Snapshot => crate::application::metrics::RestKind::Snapshot,
            Fetch::Scales => crate::application::metrics::RestKind::Scales,
        };
        let result = rest
            .request(kind, "GET", &req.url, None)
            .await
            .map_err(|e| e.to_string());
        let _ = tx.send(super::session::Control::Fetched(Fetched {
            what: req.what,
            instrument: req.instrument,
            result,
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_limiter_spaces_requests() {
        let l = RateLimiter::new(2.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            l.acquire().await;
        }
        assert_eq!(t0.elapsed(), Duration::from_secs(1));
    }
}
