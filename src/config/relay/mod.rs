//! The relay config (`config/relay.toml`) → [`RelayConfig`].

mod compile;
pub mod raw;

pub use compile::{
    BookTop, Breaker, Reconnect, RelayConfig, Subscription, VenueSetup, compile_relay, load_nats,
    load_relay,
};
