//! Orchestration: the fixture gate (`validate`), and the running relay's
//! subscriptions, connections, publishing pipeline and health.

mod acks;
mod batches;
pub mod books;
pub mod breaker;
pub mod captures;
pub mod connection;
pub mod fixture;
pub mod health;
pub mod metrics;
pub mod pipeline;
pub mod process;
pub mod publisher;
pub mod record;
pub mod relay;
pub mod reload;
pub mod status;
pub mod streams;
pub mod subscribe;
pub mod templates;
