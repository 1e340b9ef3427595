//! The compiled venue types.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::Field;
use crate::domain::{DataType, TimeUnit};
use crate::engine::expr::Expr;

/// A compiled venue definition.
#[derive(Debug)]
pub struct Venue {
    /// The venue id: the file stem, e.g. `binance-spot`.
    pub id: Arc<str>,
    /// Human-readable name.
    pub name: String,
    /// How to connect.
    pub connection: Connection,
    /// Per-market endpoints (empty when the venue has one endpoint).
    pub markets: BTreeMap<String, Market>,
    /// How to subscribe.
    pub subscribe: Subscribe,
    /// The venue's channel per data type.
    pub channels: BTreeMap<DataType, Channel>,
    /// Instrument → canonical symbol rules.
    pub symbols: Symbols,
    /// Keep-alive rules.
    pub heartbeat: Heartbeat,
    /// Frame decoding and per-connection context.
    pub frames: Frames,
    /// Control-frame rules, tried in order before routes.
    pub control: Vec<ControlRule>,
    /// Which control rules to try for a frame's route key.
    pub control_index: Dispatch,
    /// Data routes; every route that matches maps the frame.
    pub routes: Vec<Route>,
    /// Order-book integrity rules (`[book]`).
    pub book: BookRules,
    /// The REST budget (`[rest]`).
    pub rest: super::RestRules,
    /// Reference-data requests (`[[reference]]`), in file order.
    pub reference: Vec<super::ReferenceRequest>,
    /// Which routes to try for a frame's route key.
    pub route_index: Dispatch,
    /// A hash of the connection-level settings (URL, subscribe templates,
    /// limits, heartbeat sending): when it changes on reload, connections
    /// are rebuilt; otherwise the new mapping is swapped in place.
    pub connection_fingerprint: u64,
    /// A hash of the whole file text: any change is a new definition.
    pub source_hash: u64,
}

/// How to reach the venue.
#[derive(Debug, Clone)]
pub struct Connection {
    /// WebSocket URL (absent when every market gives its own).
    pub url: Option<String>,
    /// jq building a query string from the subscription items (appended
    /// after `?`), for venues that subscribe through the URL.
    pub url_query: Option<Expr>,
    /// Most subscription items on one connection.
    pub max_streams: Option<usize>,
    /// Most client messages per second (subscribe rate limit).
    pub max_messages_per_second: Option<u32>,
    /// The venue closes connections after this long; the relay reconnects
    /// ahead of it.
    pub max_lifetime: Option<Duration>,
    /// Largest accepted frame in bytes.
    pub max_frame_bytes: usize,
    /// An HTTP request to make before connecting (token, endpoint).
    pub bootstrap: Option<Bootstrap>,
}

/// An HTTP request made before each connection, whose response supplies the
/// URL (and optionally the ping interval).
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// `GET` or `POST`.
    pub method: String,
    /// The request URL.
    pub url: String,
    /// Request body (for POST).
    pub body: Option<String>,
    /// jq on the response body giving the WebSocket URL.
    pub ws_url: Expr,
    /// jq on the response body giving the client ping interval in ms.
    pub ping_interval_ms: Option<Expr>,
}

/// One market of a venue with several endpoints (spot / linear / inverse).
#[derive(Debug, Clone)]
pub struct Market {
    /// WebSocket URL for this market.
    pub url: String,
    /// Override of the subscribe batch size for this market.
    pub max_items_per_message: Option<usize>,
}

/// How subscription items are grouped into subscribe messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Batch {
    /// One message for all items (up to `max_items_per_message`).
    All,
    /// One message per channel, with all its instruments.
    Channel,
    /// One message per instrument, with all its channels.
    Instrument,
    /// One message per item.
    None,
}

/// Subscribe and unsubscribe templates.
#[derive(Debug, Clone)]
pub struct Subscribe {
    /// Grouping of items into messages.
    pub batch: Batch,
    /// Most items in one message.
    pub max_items_per_message: Option<usize>,
    /// jq: array of items → message(s). `None` when subscribing by URL.
    pub message: Option<Expr>,
    /// jq: array of items → unsubscribe message(s).
    pub unsubscribe: Option<Expr>,
    /// jq: messages to send right after connecting, before subscribing.
    pub on_connect: Vec<Expr>,
    /// How long after subscribing the venue has to acknowledge (an `ack`
    /// control frame) or send data before the connection is given up.
    pub ack_timeout: std::time::Duration,
}

/// The venue's channel for a data type.
#[derive(Debug, Clone)]
pub struct Channel {
    /// The venue's channel name, e.g. `aggTrade`, `books`, `trades`.
    pub name: String,
    /// Extra parameters handed to the templates as `.params`.
    pub params: serde_json::Value,
    /// Markets offering the channel (empty = all).
    pub markets: Vec<String>,
    /// Whether events of any instrument the channel delivers are published,
    /// not only the subscribed instruments'.
    pub any_instrument: bool,
    /// Declared per-instrument liveness interval (`None`: the data type's
    /// default; see `application::liveness`).
    pub expected_interval: Option<crate::config::Expect>,
}

/// Instrument → canonical symbol.
#[derive(Debug, Clone)]
pub struct Symbols {
    /// Explicit mapping, tried first.
    pub map: HashMap<String, String>,
    /// jq rule: input is the instrument, `$market` is set; gives the symbol
    /// or `null`.
    pub rule: Option<Expr>,
}

/// Keep-alive rules.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// How often the client pings.
    pub interval: Option<Duration>,
    /// jq giving the ping message (a string is sent as raw text).
    pub message: Option<Expr>,
    /// Send WebSocket ping frames at `interval` instead of a message.
    pub websocket_ping: bool,
    /// The connection is dead after this long without any frame.
    pub silence_timeout: Duration,
    /// The connection is dead when a ping gets no pong for this long.
    pub pong_timeout: Option<Duration>,
}

/// How binary frames are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Binary frames hold plain UTF-8 text.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// raw deflate (RFC 1951).
    Deflate,
    /// zlib (RFC 1950).
    Zlib,
    /// Detect gzip / zlib by magic bytes, else plain text.
    Auto,
}

/// Frame decoding and per-connection context.
#[derive(Debug, Clone)]
pub struct Frames {
    /// Encoding of binary frames.
    pub compression: Compression,
    /// jq giving the key of the context entry for a frame (`$ctx`).
    pub context_key: Option<Expr>,
    /// jq computing a frame's route key once; rules with `key` are only
    /// tried when it matches (a hash lookup instead of testing every rule).
    pub route_key: Option<Expr>,
    /// jq giving a per-connection message sequence number; each frame that
    /// has one must be the previous plus one, else the connection resyncs.
    pub sequence: Option<Expr>,
}

/// Order-book integrity rules.
#[derive(Debug, Clone, Default)]
pub struct BookRules {
    /// How consecutive updates of an instrument link.
    pub sequence: Option<crate::engine::book::SequenceRule>,
    /// Levels per side the venue keeps (the local book is truncated to it).
    pub depth: Option<usize>,
    /// The venue's checksum over the book.
    pub checksum: Option<crate::engine::book::ChecksumSpec>,
    /// A REST snapshot for feeds that only send deltas.
    pub snapshot: Option<RestSnapshot>,
    /// Where each instrument's checksum number scales come from.
    pub scales: Option<ScaleSource>,
}

/// A REST request per instrument giving the decimal places checksummed
/// numbers are written with (`[book.checksum.scales]`).
#[derive(Debug, Clone)]
pub struct ScaleSource {
    /// The request URL (`$instrument`, `$market` set).
    pub url: Expr,
    /// Decimal places of prices, from the response.
    pub price: Expr,
    /// Decimal places of quantities, from the response.
    pub quantity: Expr,
}

impl BookRules {
    /// Whether the relay must track book state at all.
    pub fn active(&self) -> bool {
        self.sequence.is_some() || self.checksum.is_some() || self.snapshot.is_some()
    }
}

/// Which deltas may follow a REST snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FirstDelta {
    /// The first applied delta has `first_update_id <= last + 1 <= last_update_id`
    /// (Binance spot).
    SpansNext,
    /// The first applied delta has `first_update_id <= last <= last_update_id`
    /// (Binance futures).
    Spans,
}

/// How a REST snapshot and the WebSocket deltas line up
/// (`[book.snapshot] sync`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BookSync {
    /// By update id: the snapshot's `last_update_id` against the deltas'
    /// `first_update_id`/`last_update_id`, as `first_delta` says.
    #[default]
    UpdateId,
    /// By exchange time: deltas whose `exchange_time` is at or before the
    /// snapshot's `time` are contained in it and dropped; later ones apply.
    Timestamp,
}

/// How the first deltas after a REST snapshot are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotAlign {
    /// By update ids, with this rule for the first delta.
    UpdateId(FirstDelta),
    /// By exchange time (see [`BookSync::Timestamp`]).
    Timestamp,
}

/// A REST order-book snapshot (`[book.snapshot]`).
#[derive(Debug, Clone)]
pub struct RestSnapshot {
    /// jq giving the request URL (`$instrument`, `$market` set).
    pub url: Expr,
    /// A synthetic route mapping the response body to a snapshot event.
    pub route: Route,
    /// Which deltas may follow the snapshot.
    pub align: SnapshotAlign,
    /// Most snapshot requests per second for the venue.
    pub max_requests_per_second: f64,
}

/// Rule indices by route key: the rules declaring that key plus the rules
/// declaring none, in file order.
#[derive(Debug, Clone, Default)]
pub struct Dispatch {
    by_key: foldhash::HashMap<String, Vec<usize>>,
    keyless: Vec<usize>,
}

impl Dispatch {
    /// Build from each rule's keys (empty = no key).
    pub fn new<'k>(rule_keys: impl IntoIterator<Item = &'k [String]>) -> Self {
        let rule_keys: Vec<&[String]> = rule_keys.into_iter().collect();
        let keyless: Vec<usize> = (0..rule_keys.len())
            .filter(|&i| rule_keys[i].is_empty())
            .collect();
        let mut by_key: foldhash::HashMap<String, Vec<usize>> = Default::default();
        for keys in &rule_keys {
            for k in *keys {
                by_key.entry(k.clone()).or_default();
            }
        }
        for (k, list) in &mut by_key {
            *list = (0..rule_keys.len())
                .filter(|&i| rule_keys[i].is_empty() || rule_keys[i].contains(k))
                .collect();
        }
        Dispatch { by_key, keyless }
    }

    /// The rules to try for a frame whose route key is `key`.
    pub fn candidates(&self, key: Option<&str>) -> &[usize] {
        key.and_then(|k| self.by_key.get(k))
            .map_or(&self.keyless, Vec::as_slice)
    }
}

/// What a control frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ControlKind {
    /// A subscription was accepted.
    Ack,
    /// The venue reports an error (for example a rejected subscription).
    Error,
    /// An answer to our ping.
    Pong,
    /// A keep-alive from the venue that needs no answer.
    Heartbeat,
    /// Informational (welcome, version, maintenance notice).
    Info,
    /// A ping from the venue that needs the rule's `reply`.
    Ping,
    /// The venue asks the client to reconnect (a maintenance notice, a
    /// `request_reconnect` event): the connection hands over to a new one,
    /// overlapping, as before a planned lifetime end.
    Reconnect,
}

impl ControlKind {
    /// The name used in logs, metrics and fixture transcripts.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlKind::Ack => "ack",
            ControlKind::Error => "error",
            ControlKind::Pong => "pong",
            ControlKind::Heartbeat => "heartbeat",
            ControlKind::Info => "info",
            ControlKind::Ping => "ping",
            ControlKind::Reconnect => "reconnect",
        }
    }
}

/// A control-frame rule.
#[derive(Debug, Clone)]
pub struct ControlRule {
    /// What the frame is.
    pub kind: ControlKind,
    /// Route keys selecting the rule (empty: tried for every frame).
    pub keys: Vec<String>,
    /// jq condition on the frame (absent: the key alone decides).
    pub when: Option<Expr>,
    /// jq giving a message to send back.
    pub reply: Option<Expr>,
    /// jq giving a description (error text, rejected subscription).
    pub message: Option<Expr>,
    /// jq giving the context key to store under.
    pub capture_key: Option<Expr>,
    /// jq giving the context value to store.
    pub capture_value: Option<Expr>,
}

/// A data route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Name for logs (default: `<data_type>#<index>`).
    pub name: String,
    /// The data type produced.
    pub data_type: DataType,
    /// Route keys selecting the route (empty: tried for every frame).
    pub keys: Vec<String>,
    /// jq condition on the frame (absent: the key alone decides).
    pub when: Option<Expr>,
    /// jq generator of items (default: the frame itself).
    pub each: Option<Expr>,
    /// Unit of numeric timestamps.
    pub time_unit: TimeUnit,
    /// Field expressions, indexed by [`Field`].
    pub fields: Vec<Option<Expr>>,
    /// Level memory (`$memo` in level expressions).
    pub level_memory: Option<LevelMemory>,
}

/// Compiled `[routes.level_memory]`.
#[derive(Debug, Clone)]
pub struct LevelMemory {
    /// The key of a level row.
    pub key: Expr,
    /// The value to remember.
    pub store: Option<Expr>,
    /// Whether to forget the key after the row.
    pub forget: Option<Expr>,
}

/// Whether an optional condition holds (no condition holds).
pub(crate) fn holds(
    when: &Option<Expr>,
    frame: &crate::engine::expr::V<'_>,
    scope: &crate::engine::expr::Scope<'_>,
) -> bool {
    when.as_ref().is_none_or(|w| w.test(frame, scope))
}

impl Route {
    /// The expression of a field, if the route declares it (or has a default).
    #[inline]
    pub fn field(&self, f: Field) -> Option<&Expr> {
        self.fields[f as usize].as_ref()
    }
}
