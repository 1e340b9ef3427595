//! # mdrelay
//!
//! A market-data relay: it connects to the public WebSocket feeds of crypto
//! venues, maps every frame into canonical events (trades, tickers, L2 books,
//! funding rates, liquidations) and publishes them to NATS JetStream on
//! `market.<venue>.<symbol>.<data_type>`.
//!
//! There is no venue-specific code here. A venue is a TOML file under
//! `venues/` (URL, subscribe templates, heartbeat rules, frame routing and jq
//! mappings); the engine compiles it once and runs it per frame.
//!
//! ## A tour, in data-flow order
//! - [`domain`]: the canonical types, pure.
//! - [`engine`]: frame decoding, the JSON tape, jq expressions (fast path +
//!   jaq) and the mapper that turns one frame into events.
//! - [`config`]: venue files and the relay config, compiled in two stages
//!   (raw TOML types → checked plans) with every error located.
//! - [`application`]: connections, book integrity and snapshots, queues,
//!   publishers, health, metrics, reload, instrument reference data and
//!   `select` filters (`instruments`), each venue's REST budget
//!   (`venue_rest`).
//! - [`infrastructure`]: NATS, WebSocket client and replay server, HTTP
//!   (the server, and REST requests with the per-venue budget and 429
//!   handling).
//! - [`serialization`]: the wire forms (JSON, protobuf), written and read.
//! - [`client`]: the consumer side: join any book from the bus and follow it.
//! - [`cli`]: the `mdrelay` commands.

#![warn(missing_docs)]

pub mod application;
pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod engine;
pub mod infrastructure;
pub mod serialization;
