//! How a session ends, and why: the supervision loop reads these to decide
//! what to do next.
//!
//! | end | what the connection does |
//! |---|---|
//! | [`End::Shutdown`] | stops |
//! | [`End::HandedOver`] | the successor session, already streaming, takes over |
//! | [`End::Failed`] | a running successor takes over at once; otherwise reconnect after the backoff delay (a [`SessionError`] before the connection was made also counts against the circuit breaker) |
//!
//! Frame-level problems never end a session: a frame that fails to map is
//! counted and skipped by the pipeline (`engine::mapper::MapError`).

use std::time::Duration;

use super::handover::Published;
use crate::domain::HumanDuration;

/// How a session ended.
#[derive(Debug)]
pub(super) enum End {
    /// Asked to stop.
    Shutdown,
    /// The successor took over after this session stopped; what this
    /// session published last, per book instrument.
    HandedOver(Published),
    /// The session failed; what it published last (a successor running at
    /// that moment takes over from there).
    Failed {
        /// Why.
        error: SessionError,
        /// The last book update published per instrument.
        published: Published,
    },
}

/// Why a session failed. Every kind leads to a reconnect; the kinds say
/// which part failed, for the log, `/health` and the breaker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum SessionError {
    /// The connection URL could not be built (a template or bootstrap
    /// response problem).
    #[error("cannot build the connection URL: {0}")]
    Url(String),
    /// The WebSocket could not be opened.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The venue closed the WebSocket.
    #[error("closed by venue: {code} {reason}")]
    Closed {
        /// The close code (1000: a normal close).
        code: u16,
        /// The venue's reason.
        reason: String,
    },
    /// The socket failed or ended without a close frame.
    #[error("connection lost: {0}")]
    Lost(String),
    /// A message could not be sent.
    #[error("cannot send to the venue: {0}")]
    Send(String),
    /// A subscribe, unsubscribe or heartbeat template did not render.
    #[error("a message template failed: {0}")]
    Template(String),
    /// No frame at all for the venue's silence timeout.
    #[error("no frame for {0}")]
    Silent(HumanDuration),
    /// Subscriptions neither acknowledged nor answered with data in time.
    #[error("subscriptions neither acknowledged nor answered with data within {0}")]
    NoAck(HumanDuration),
    /// A ping went unanswered for the heartbeat's pong timeout.
    #[error("no pong within {0} of a ping")]
    NoPong(HumanDuration),
    /// The connection's own sequence jumped (`frames.sequence`).
    #[error("{0}")]
    SequenceGap(String),
    /// A book broke and the venue offers no other way to resync it.
    #[error("{0} (no REST snapshot and no unsubscribe template: reconnecting)")]
    Resync(String),
}

impl SessionError {
    /// Whether the connection had been made (a failure before it counts
    /// against the circuit breaker).
    pub(super) fn connected(&self) -> bool {
        !matches!(self, SessionError::Url(_) | SessionError::Connect(_))
    }

    /// A close the venue chose, with the normal close code: logged at info.
    pub(super) fn is_normal_close(&self) -> bool {
        matches!(self, SessionError::Closed { code: 1000, .. })
    }

    /// No frame for `d`.
    pub(super) fn silent(d: Duration) -> Self {
        SessionError::Silent(HumanDuration(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_whether_the_connection_was_made() {
        assert!(!SessionError::Connect("refused".into()).connected());
        assert!(!SessionError::Url("bad".into()).connected());
        assert!(SessionError::silent(Duration::from_secs(2)).connected());
        let closed = SessionError::Closed {
            code: 1000,
            reason: "bye".into(),
        };
        assert!(closed.is_normal_close());
        assert_eq!(closed.to_string(), "closed by venue: 1000 bye");
        assert_eq!(
            SessionError::silent(Duration::from_millis(2500)).to_string(),
            "no frame for 2s 500ms"
        );
    }
}
