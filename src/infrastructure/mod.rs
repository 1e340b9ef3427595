//! Adapters to the outside world: NATS JetStream, venue WebSockets (client
//! and the local replay server), HTTP (the `/health` + `/metrics` server and
//! REST requests to venues).

pub mod http;
pub mod logs;
pub mod nats;
pub mod rest;
pub mod streams;
pub mod wire;
pub mod ws;

/// Errors of the infrastructure layer. Each says what the caller should do:
/// connection-level errors mean reconnect, config-level ones are fatal.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// Could not connect (NATS, venue, HTTP): retry later.
    #[error("cannot connect to {target}: {message}")]
    Connect {
        /// What we tried to reach.
        target: String,
        /// Why it failed.
        message: String,
    },
    /// The broker refused a stream or consumer definition: fix the config.
    #[error("JetStream refused {what}: {message}")]
    JetStream {
        /// Stream or consumer.
        what: String,
        /// The server's reason.
        message: String,
    },
    /// JetStream did not answer a stream request, or answered that it is
    /// not available yet (no meta leader during a cluster election): retry.
    #[error("JetStream did not answer for {what}: {message}")]
    Unavailable {
        /// What was asked.
        what: String,
        /// The client's or server's reason.
        message: String,
    },
    /// An I/O failure on an established connection: reconnect.
    #[error("{0}")]
    Io(String),
    /// A protocol violation by the peer: reconnect.
    #[error("protocol error: {0}")]
    Protocol(String),
}
