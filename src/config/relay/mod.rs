//! The relay config (`config/relay.toml`) → [`RelayConfig`].

mod compile;
pub mod raw;
pub mod select;
pub mod subjects;

pub use compile::{
    BookTop, Breaker, HealthSettings, Reconnect, RelayConfig, Subscription, VenueSetup,
    compile_relay, load_nats, load_relay,
};
