//! The relay config (`config/relay.toml`) → [`RelayConfig`].

mod compile;
pub mod raw;
pub mod select;
pub mod subjects;
mod venues;

pub use compile::{HealthSettings, RelayConfig, compile_relay, load_nats, load_relay};
pub use venues::{
    BookTop, Breaker, DEFAULT_SNAPSHOT_MAX_UPDATES, Reconnect, SnapshotPolicy, Subscription,
    VenueSetup,
};
