//! The relay config (`config/relay.toml`) → [`RelayConfig`].

mod compile;
pub mod raw;
pub mod select;
pub mod subjects;

pub use compile::{
    BookTop, Breaker, DEFAULT_SNAPSHOT_MAX_UPDATES, HealthSettings, Reconnect, RelayConfig,
    SnapshotPolicy, Subscription, VenueSetup, compile_relay, load_nats, load_relay,
};
