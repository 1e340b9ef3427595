//! `[[venues]]`: the venues to relay, their subscriptions, reconnect and
//! breaker settings, as written.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::Dur;
use crate::domain::DataType;

/// `[[venues]]`: one venue to relay.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVenue {
    /// Venue id: loads `<venues_dir>/<id>.toml`.
    pub id: String,
    /// Set to false to keep the entry but not connect.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Replace the venue file's WebSocket URL (e.g. a local replay server).
    pub url: Option<String>,
    /// Replace the origin (`scheme://host:port`) of the venue's REST
    /// requests (bootstrap, book snapshots), e.g. a local test server.
    pub rest_url: Option<String>,
    /// Reconnect backoff.
    #[serde(default)]
    pub reconnect: RawReconnect,
    /// Circuit breaker for a venue that keeps failing.
    #[serde(default)]
    pub circuit_breaker: RawBreaker,
    /// Full-depth `l2_snapshot`s of every book of this venue (each
    /// subscription with `l2_orderbook`), unless a subscription says
    /// otherwise.
    pub book_snapshot: Option<RawBookSnapshot>,
    /// What to subscribe to.
    #[serde(default)]
    pub subscriptions: Vec<RawSubscription>,
    /// How often the venue's reference data is fetched again for the
    /// `select` subscriptions (default `15m`, at least `1s`): newly
    /// matching instruments are subscribed, no longer matching ones
    /// unsubscribed.
    pub reference_refresh: Option<Dur>,
    /// Per-instrument liveness by data type, e.g. `{ ticker = "30s",
    /// trade = "5m", l2_orderbook = "off" }`: an instrument with no event
    /// of that type for this long is `stale`. Overrides the venue file's
    /// channel `expected_interval` and the defaults.
    #[serde(default)]
    pub liveness: BTreeMap<DataType, crate::config::Expect>,
}

fn yes() -> bool {
    true
}

/// `[venues.reconnect]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReconnect {
    /// First delay after a failure.
    #[serde(default = "default_initial")]
    pub initial_delay: Dur,
    /// Largest delay.
    #[serde(default = "default_max_delay")]
    pub max_delay: Dur,
    /// Growth factor between attempts.
    #[serde(default = "default_multiplier")]
    pub multiplier: f32,
    /// Randomize each delay (recommended, avoids reconnect storms).
    #[serde(default = "yes")]
    pub jitter: bool,
}

impl Default for RawReconnect {
    fn default() -> Self {
        RawReconnect {
            initial_delay: default_initial(),
            max_delay: default_max_delay(),
            multiplier: default_multiplier(),
            jitter: true,
        }
    }
}

fn default_initial() -> Dur {
    Dur(std::time::Duration::from_millis(500))
}
fn default_max_delay() -> Dur {
    Dur(std::time::Duration::from_secs(30))
}
fn default_multiplier() -> f32 {
    2.0
}

/// `[venues.circuit_breaker]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    /// Consecutive failed connection attempts that open the breaker.
    #[serde(default = "default_threshold")]
    pub failure_threshold: u32,
    /// How long the breaker stays open before a probe. Default: the
    /// reconnect `max_delay`, so an open breaker never slows a recovery
    /// beyond what the backoff promises.
    pub open_duration: Option<Dur>,
    /// Successful probes (half-open) needed to close it again.
    #[serde(default = "one_u32")]
    pub half_open_probes: u32,
}

impl Default for RawBreaker {
    fn default() -> Self {
        RawBreaker {
            failure_threshold: default_threshold(),
            open_duration: None,
            half_open_probes: 1,
        }
    }
}

fn default_threshold() -> u32 {
    5
}
fn one_u32() -> u32 {
    1
}

/// `[[venues.subscriptions]]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSubscription {
    /// The venue's instrument name, e.g. `BTCUSDT`. Either this or
    /// `select`.
    pub instrument: Option<String>,
    /// Every instrument of the venue's reference data (`[[reference]]` in
    /// its file) this jq predicate accepts, over the canonical instrument
    /// record; fields may be named bare:
    /// `select = 'kind == "perpetual" and quote == "USDT"'`. Refreshed
    /// every `reference_refresh`. Either this or `instrument`.
    pub select: Option<crate::config::Jq>,
    /// With `select`: keep at most this many instruments (after sorting).
    pub limit: Option<usize>,
    /// With `select`: the order `limit` keeps: `symbol` (default),
    /// `normalized`, `expiry`, `strike` or `venue` (as listed).
    pub sort: Option<crate::config::relay::select::SortKey>,
    /// With `select`: sort descending.
    #[serde(default)]
    pub descending: bool,
    /// With `select`: the trading statuses an instrument may have to be
    /// selected (default `["trading"]`: halted and delisted instruments are
    /// unsubscribed). `["trading", "halted"]` keeps following an instrument
    /// through a halt.
    pub statuses: Option<Vec<crate::domain::TradingStatus>>,
    /// The canonical symbol, when the venue file cannot derive it (with
    /// `instrument`).
    pub symbol: Option<String>,
    /// The market, for venues with several (`[markets]` in the venue file).
    pub market: Option<String>,
    /// Data types to subscribe.
    pub types: Vec<DataType>,
    /// Also publish the book the relay maintains from this instrument's
    /// `l2_orderbook` stream as periodic top-N snapshots (`l2_top`), for
    /// consumers that do not apply deltas. Needs `l2_orderbook` in `types`.
    pub book_top: Option<RawBookTop>,
    /// Publish the full book the relay maintains from this instrument's
    /// `l2_orderbook` stream as `l2_snapshot` events, positioned in that
    /// stream, so that a consumer can start at any moment (docs/consumers.md).
    /// Overrides the venue's `book_snapshot`. Needs `l2_orderbook` in `types`.
    pub book_snapshot: Option<RawBookSnapshot>,
}

/// `book_snapshot = { interval = "10s" }`: full-depth book snapshots. One is
/// published at the start and after every resync of the book, then one per
/// interval while the book changes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBookSnapshot {
    /// Whether to publish them (`false` turns off the venue's setting for
    /// one subscription).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How often (default 10s; at least 100ms, whole milliseconds).
    /// Snapshots fall on wall-clock multiples of it, so that two relays
    /// publish the same ones; a book unchanged since its last snapshot is
    /// skipped.
    pub interval: Option<Dur>,
    /// Also publish one as soon as this many book events were published
    /// since the last (default 500; at least 1): a busy book is snapshotted
    /// more often than the interval, so a consumer joining late replays at
    /// most about this many deltas. Such snapshots fall on the same update
    /// (and so the same id) in relays that started from the same snapshot.
    pub max_updates: Option<u32>,
}

/// `book_top = { depth = 20, interval = "1s" }`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBookTop {
    /// Levels per side in each snapshot (1–1000).
    pub depth: usize,
    /// How often (at least 100ms, whole milliseconds). Snapshots fall on
    /// wall-clock multiples of it, so two relays publish the same ids and
    /// JetStream keeps one; a book unchanged since the last one is skipped.
    pub interval: Dur,
}
