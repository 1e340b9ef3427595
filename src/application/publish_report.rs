//! What the publishers report: to `/health` (whether publishes meet a
//! stream), to benchmarks (exact frame-to-ack latencies) and at shutdown
//! (what was stored, refused or abandoned).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::domain::Timestamp;

/// Publisher state `/health` reads.
#[derive(Debug, Default)]
pub struct PublishSignals {
    /// When (Unix ns) JetStream last answered "no responders" for a
    /// subject (no stream captures it, or its leader is being elected);
    /// 0 after a later successful ack.
    no_stream_since: AtomicI64,
}

impl PublishSignals {
    /// How long publishes have met no stream, if they do now.
    pub fn no_stream_for(&self, now: Timestamp) -> Option<Duration> {
        let since = self.no_stream_since.load(Ordering::Relaxed);
        (since != 0).then(|| Duration::from_nanos((now.0 - since).max(0) as u64))
    }

    pub(super) fn no_stream(&self) {
        let _ = self.no_stream_since.compare_exchange(
            0,
            Timestamp::now().0,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    pub(super) fn stored(&self) {
        if self.no_stream_since.load(Ordering::Relaxed) != 0 {
            self.no_stream_since.store(0, Ordering::Relaxed);
        }
    }
}

/// Collects exact frame-to-ack latencies (microseconds) for benchmarks.
#[derive(Debug, Default)]
pub struct LatencyProbe {
    samples: std::sync::Mutex<Vec<u32>>,
}

impl LatencyProbe {
    pub(super) fn record(&self, d: Duration) {
        if let Ok(mut s) = self.samples.lock() {
            s.push(d.as_micros().min(u128::from(u32::MAX)) as u32);
        }
    }

    /// Take the samples recorded so far.
    pub fn take(&self) -> Vec<u32> {
        self.samples
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}

/// What a publisher did before it stopped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PublisherReport {
    /// Acknowledged as newly stored.
    pub stored: u64,
    /// Acknowledged as already stored (same `Nats-Msg-Id` within the
    /// stream's duplicate window).
    pub duplicates: u64,
    /// Refused by JetStream after every retry: not stored.
    pub failed: u64,
    /// Abandoned at shutdown without ever being sent: not stored.
    pub abandoned_unsent: u64,
    /// Abandoned at shutdown after being sent without an ack: JetStream may
    /// or may not have stored them.
    pub abandoned_unconfirmed: u64,
}

impl PublisherReport {
    /// Add another publisher's report.
    pub fn add(&mut self, o: &PublisherReport) {
        self.stored += o.stored;
        self.duplicates += o.duplicates;
        self.failed += o.failed;
        self.abandoned_unsent += o.abandoned_unsent;
        self.abandoned_unconfirmed += o.abandoned_unconfirmed;
    }

    /// Events acknowledged (stored or duplicate).
    pub fn acked(&self) -> u64 {
        self.stored + self.duplicates
    }

    /// Events abandoned at shutdown.
    pub fn abandoned(&self) -> u64 {
        self.abandoned_unsent + self.abandoned_unconfirmed
    }
}
