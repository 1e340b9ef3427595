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
//! - [`domain`]: the canonical types, pure: `data_type`, `event` (events,
//!   ids, instruments), `instrument` (instrument reference records),
//!   `payload` (trades, tickers, books, funding, liquidations, status),
//!   `sequence` (book sequence rules), `subject`,
//!   `symbol`, `text` (clipping for logs), `time`.
//! - [`config`]: venue files and the relay config, compiled in two stages
//!   (raw TOML types → checked plans) with every error located: `venue`,
//!   `relay`, `problems` (located errors), `source` (reading a section),
//!   `env` (`${VAR}`), `secret` (never printed), `types` (durations, jq,
//!   expected intervals).
//! - [`engine`]: the per-frame work, no I/O: `json` (the tape parser),
//!   `expr` (jq: the native fast path and jaq with exact numbers, budgets),
//!   `mapper` (one frame → events: decode, dispatch, build, ids), `venue`
//!   (the compiled venue plan), `book` (sequence, checksum, local books and
//!   the per-connection `BookKeeper`).
//! - [`application`]: the running relay. A frame's path: `connection`
//!   (supervisor → session loop → `FramePipeline` → effects) → `pipeline`
//!   (queues, `Outgoing`) → `publisher` + `acks` → JetStream. Around it:
//!   `relay` (start, drain), `subscribe` (connection plans, subscribe
//!   messages), `templates`, `status` (status events), `liveness`
//!   (per-instrument), `health`, `metrics`, `process`, `breaker`, `reload`,
//!   `streams` (stream reconciliation), `instruments` (reference data,
//!   `select` filters, refresh, the instruments bucket), `venue_rest` (a
//!   venue's REST requests within its budget), `fixture` (recorded
//!   fixtures, checked by `validate` and by the reload gate).
//! - [`infrastructure`]: the outside world: `ws` (WebSocket client), `nats`,
//!   `streams` (JetStream stream API), `rest` (HTTP requests, the
//!   per-venue budget, 429/418 and `Retry-After`), `http` (`/health`,
//!   `/metrics`), `logs`.
//! - [`serialization`]: the wire forms, written and read: `json`,
//!   `protobuf`, `protobuf_direct` (the encoder without intermediate
//!   structs), `decode`, `frames` (recorded frame files).
//! - [`client`]: the consumer side: `feed` (follow a subject), `fetch`
//!   (snapshots from the bus), `tracker` (join any book and follow it).
//! - [`tools`]: tooling on the same engine, outside the production path:
//!   `captures` (long recorded sessions), `record` (`mdrelay record`),
//!   `replay` (the fake venue server of `mdrelay replay` and the tests).
//! - [`cli`]: the `mdrelay` commands: `run`, `validate`, `map`, `record`,
//!   `replay`, `schema`, `tail`, `book`, `top` (a live view of a running
//!   relay), `instruments` (reference data), `bench` (with `bench_*`),
//!   and their helpers (`bus`, `ladder`, `venue_arg`).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod application;
pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod engine;
pub mod infrastructure;
pub mod serialization;
pub mod tools;
