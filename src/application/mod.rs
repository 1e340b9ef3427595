//! Orchestration: the fixture gate (`validate`), and the running relay's
//! subscriptions, connections, publishing pipeline and health; instrument
//! reference data and `select` filters (`instruments`); each venue's REST
//! requests within its budget (`venue_rest`).

mod acks;
mod batches;
pub mod breaker;
pub mod connection;
pub mod fixture;
pub mod headers;
pub mod health;
pub mod instruments;
pub mod liveness;
pub mod metrics;
pub mod pipeline;
pub mod process;
pub mod publish_report;
pub mod publisher;
pub mod relay;
pub mod reload;
pub mod status;
pub mod streams;
pub mod subscribe;
pub mod templates;
pub mod venue_rest;
