//! The venue file as written: serde/schemars types mirroring the TOML.
//! Documentation here ends up in `schema/venue.schema.json`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{Dur, Expect, Jq};
use crate::domain::{DataType, TimeUnit};
use crate::engine::venue::{Batch, Compression, ControlKind};

/// A venue definition file, `venues/<id>.toml`. The venue id is the file stem.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VenueFile {
    /// Human-readable venue name.
    pub name: String,
    /// Links to the venue's API documentation.
    #[serde(default)]
    pub docs: Vec<String>,
    /// How to connect.
    pub connection: RawConnection,
    /// Per-market endpoints, for venues that split markets across URLs.
    #[serde(default)]
    pub markets: BTreeMap<String, RawMarket>,
    /// How to subscribe.
    #[serde(default)]
    pub subscribe: RawSubscribe,
    /// The venue's channel for each data type it offers.
    #[serde(default)]
    pub channels: BTreeMap<DataType, RawChannel>,
    /// How venue instruments map to canonical symbols.
    #[serde(default)]
    pub symbols: RawSymbols,
    /// Keep-alive rules.
    #[serde(default)]
    pub heartbeat: RawHeartbeat,
    /// Frame decoding and per-connection context.
    #[serde(default)]
    pub frames: RawFrames,
    /// Control-frame rules (acks, errors, pongs, pings, heartbeats, info),
    /// tried in order; the first match wins and the frame is not routed.
    #[serde(default)]
    pub control: Vec<RawControl>,
    /// Data routes: every route whose `when` matches maps the frame.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Order-book integrity: sequence rule, checksum, REST snapshots.
    #[serde(default)]
    pub book: RawBook,
    /// The REST budget shared by every request to the venue.
    #[serde(default)]
    pub rest: super::reference::RawRest,
    /// Reference-data requests: instrument lists mapped to canonical
    /// instrument records (filters in the relay config, `mdrelay
    /// instruments`, the instruments bucket).
    #[serde(default)]
    pub reference: Vec<super::reference::RawReference>,
}

/// `[book]`
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawBook {
    /// How consecutive updates of one instrument link: `contiguous`
    /// (first id = previous last id + 1), `prev_matches` (prev id =
    /// previous last id), `step` (last id = previous + 1) or `increasing`.
    pub sequence: Option<crate::engine::book::SequenceRule>,
    /// Levels per side the venue maintains; the local book is truncated to
    /// it after each update (needed for checksums over a bounded book).
    pub depth: Option<usize>,
    /// The venue's book checksum.
    pub checksum: Option<RawChecksum>,
    /// A REST snapshot for delta-only feeds.
    pub snapshot: Option<RawSnapshot>,
}

/// `[book.checksum]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawChecksum {
    /// Levels per side included.
    pub depth: usize,
    /// `interleaved` (bid, ask, bid, ask…), `asks_then_bids` or `bids_then_asks`.
    pub layout: crate::engine::book::ChecksumLayout,
    /// `as_received` or `digits` (decimal point and leading zeros removed).
    #[serde(default)]
    pub numbers: crate::engine::book::ChecksumNumbers,
    /// Written between numbers (default `:`).
    #[serde(default = "colon")]
    pub separator: String,
    /// Write ask quantities as negative numbers.
    #[serde(default)]
    pub negative_asks: bool,
    /// Compare the CRC32 as a signed 32-bit integer.
    #[serde(default)]
    pub signed: bool,
    /// Treat a checksum of 0 as "not provided" (a venue that deprecated it
    /// sends a fixed 0).
    #[serde(default)]
    pub zero_means_absent: bool,
    /// `enforce` (default: a mismatch is a gap and resyncs the instrument)
    /// or `report` (counted and logged only, for a spec not yet confirmed
    /// on live traffic).
    #[serde(default)]
    pub mode: crate::engine::book::ChecksumMode,
    /// Per-instrument decimal places to write numbers with, fetched over
    /// REST, for venues that print numbers in shortest form but checksum
    /// them at the instrument's precision.
    pub scales: Option<RawScales>,
}

/// `[book.checksum.scales]`: a REST request per instrument giving the
/// decimal places of its prices and quantities.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScales {
    /// jq giving the request URL; `$instrument` and `$market` are set.
    pub url: Jq,
    /// jq on the JSON response giving the price's decimal places.
    pub price: Jq,
    /// jq on the JSON response giving the quantity's decimal places.
    pub quantity: Jq,
}

fn colon() -> String {
    ":".into()
}

/// `[book.snapshot]`: REST snapshot for feeds that only send deltas.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSnapshot {
    /// jq giving the request URL; `$instrument` and `$market` are set.
    pub url: Jq,
    /// jq generator of bid level items in the response.
    pub bids: Jq,
    /// jq generator of ask level items in the response.
    pub asks: Jq,
    /// Price of a level item (default `.[0]`).
    pub level_price: Option<Jq>,
    /// Quantity of a level item (default `.[1]`).
    pub level_quantity: Option<Jq>,
    /// How the snapshot and the WebSocket deltas line up: `update_id`
    /// (default: by `last_update_id` and `first_delta`) or `timestamp` (by
    /// exchange time: deltas at or before the snapshot's `time` are
    /// dropped, later ones apply; needs `time` here and `exchange_time` on
    /// every `l2_orderbook` route).
    #[serde(default)]
    pub sync: crate::engine::venue::BookSync,
    /// The snapshot's last update id (required with `sync = "update_id"`).
    pub last_update_id: Option<Jq>,
    /// With `sync = "update_id"` (required there, refused with
    /// `timestamp`): `spans_next` (first delta: U ≤ id+1 ≤ u) or `spans`
    /// (U ≤ id ≤ u).
    pub first_delta: Option<crate::engine::venue::FirstDelta>,
    /// The snapshot's exchange time (a number or numeric string in the
    /// unit found automatically, or an RFC 3339 string); required with
    /// `sync = "timestamp"`, optional otherwise (it becomes the published
    /// snapshot event's `exchange_time`).
    pub time: Option<Jq>,
    /// Most snapshot requests per second for this venue (default 1).
    pub max_requests_per_second: Option<f64>,
}

/// `[connection]`
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConnection {
    /// The WebSocket URL (`wss://...`). Required unless every market in
    /// `[markets]` gives its own.
    pub url: Option<String>,
    /// jq building a URL query string from the array of subscription items,
    /// appended after `?` (for venues that subscribe through the URL).
    pub url_query: Option<Jq>,
    /// Most subscription items (streams) one connection may carry; more are
    /// split across connections.
    pub max_streams: Option<usize>,
    /// Most client messages per second the venue accepts on a connection.
    pub max_messages_per_second: Option<u32>,
    /// The venue's maximum connection lifetime (e.g. `24h`); the relay opens
    /// a replacement connection before it is reached.
    pub max_lifetime: Option<Dur>,
    /// Largest frame accepted, in bytes (default 16 MiB).
    pub max_frame_bytes: Option<usize>,
    /// An HTTP request made before connecting, whose response gives the URL.
    pub bootstrap: Option<RawBootstrap>,
}

/// `[connection.bootstrap]`: a request made before each connection.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBootstrap {
    /// `GET` or `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// The request URL.
    pub url: String,
    /// The request body (POST).
    pub body: Option<String>,
    /// jq on the JSON response giving the WebSocket URL (`$connect_id` is a
    /// fresh random id).
    pub ws_url: Jq,
    /// jq on the JSON response giving the client ping interval in ms.
    pub ping_interval_ms: Option<Jq>,
}

fn default_method() -> String {
    "GET".to_owned()
}

/// `[markets.<name>]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMarket {
    /// The WebSocket URL of this market.
    pub url: String,
    /// Override of `subscribe.max_items_per_message` for this market.
    pub max_items_per_message: Option<usize>,
}

/// `[subscribe]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSubscribe {
    /// How items are grouped into messages: `all`, `channel`, `instrument`
    /// or `none` (one message per item).
    #[serde(default = "default_batch")]
    pub batch: Batch,
    /// Most items in one message.
    pub max_items_per_message: Option<usize>,
    /// jq: the array of subscription items (`{type, channel, instrument,
    /// symbol, market, params}`) → the subscribe message(s). A string result
    /// is sent as raw text, anything else as JSON. `$request_id` is set.
    pub message: Option<Jq>,
    /// jq like `message`, for unsubscribing.
    pub unsubscribe: Option<Jq>,
    /// jq messages sent right after connecting, before subscribing.
    #[serde(default)]
    pub on_connect: Vec<Jq>,
    /// After sending subscribe messages, how long to wait for an `ack`
    /// control frame or a data frame before reconnecting (default `15s`).
    /// Applies only to venues with an `ack` control rule.
    pub ack_timeout: Option<Dur>,
}

impl Default for RawSubscribe {
    fn default() -> Self {
        RawSubscribe {
            batch: Batch::All,
            max_items_per_message: None,
            message: None,
            unsubscribe: None,
            on_connect: Vec::new(),
            ack_timeout: None,
        }
    }
}

fn default_batch() -> Batch {
    Batch::All
}

/// `[channels.<data_type>]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    /// The venue's channel name for this data type.
    pub name: String,
    /// Extra parameters handed to the templates as `.params`.
    #[serde(default)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    /// Markets that offer this channel (default: all).
    #[serde(default)]
    pub markets: Vec<String>,
    /// Which instruments' events of this channel are published:
    /// `subscribed` (default) keeps only the instruments the relay config
    /// subscribes; `any` keeps every instrument the channel delivers, for
    /// channels subscribed by something broader than an instrument (an
    /// instrument type, an underlying, companion index or mark streams).
    #[serde(default)]
    pub instruments: InstrumentScope,
    /// Per-instrument liveness: an instrument with no event on this channel
    /// for this long is `stale` (a status event, a metric, a resubscribe).
    /// A duration above zero, or `off`. Default by data type: ticker 60s,
    /// l2_orderbook 120s, others off. The relay config's
    /// `[venues.liveness]` overrides it.
    pub expected_interval: Option<Expect>,
}

/// Which instruments a channel's events may belong to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentScope {
    /// Only the instruments the relay config subscribes.
    #[default]
    Subscribed,
    /// Every instrument the channel delivers.
    Any,
}

/// `[symbols]`
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSymbols {
    /// Explicit venue instrument → canonical symbol, tried first.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// jq: the instrument (input; `$market` set) → canonical symbol, or
    /// `null` when unknown (the instrument is then used as the symbol).
    pub rule: Option<Jq>,
}

/// `[heartbeat]`
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHeartbeat {
    /// How often to send a client ping.
    pub interval: Option<Dur>,
    /// jq giving the ping message; a string is sent as raw text (e.g.
    /// `"ping"`), anything else as JSON. `$counter` and `$now_ms` are set.
    pub message: Option<Jq>,
    /// Send WebSocket ping frames at `interval` instead of a message.
    #[serde(default)]
    pub websocket_ping: bool,
    /// Declare the connection dead after this long without any frame
    /// (default 60s).
    pub silence_timeout: Option<Dur>,
    /// Declare the connection dead when a ping gets no pong for this long,
    /// even while data frames still arrive (a pong is a WebSocket pong
    /// frame, or a frame a `pong` control rule matches). Needs `interval`.
    pub pong_timeout: Option<Dur>,
}

/// `[frames]`
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFrames {
    /// How binary frames are encoded: `none`, `gzip`, `deflate`, `zlib`,
    /// `auto`.
    #[serde(default)]
    pub compression: Compression,
    /// jq giving, for a frame, the key of the per-connection context entry
    /// bound to `$ctx` (entries are stored by control rules' `capture`).
    pub context_key: Option<Jq>,
    /// jq computing a frame's route key once per frame (a string or number,
    /// e.g. the event type). Control rules and routes with `key` are only
    /// tried when it matches: a hash lookup instead of testing every `when`.
    pub route_key: Option<Jq>,
    /// jq giving a per-connection sequence number carried by frames (e.g.
    /// Bitfinex's trailing number); frames with one must count up by one,
    /// else the connection is resynchronized.
    pub sequence: Option<Jq>,
}

/// One key or several.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Keys {
    /// A single key.
    One(String),
    /// Any of these keys.
    Many(Vec<String>),
}

impl Keys {
    /// As a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Keys::One(k) => vec![k],
            Keys::Many(v) => v,
        }
    }
}

/// `[[control]]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawControl {
    /// What the frame is: `ack`, `error`, `pong`, `heartbeat`, `info`, `ping`.
    pub kind: ControlKind,
    /// The route key(s) (`frames.route_key`) selecting this rule.
    pub key: Option<Keys>,
    /// jq condition on the frame (an error counts as no match). At least one
    /// of `key` and `when` is required; with both, both must hold.
    pub when: Option<Jq>,
    /// jq giving a message to send back (required for `ping`).
    pub reply: Option<Jq>,
    /// jq giving a description of the frame (error text) for logs and health.
    pub message: Option<Jq>,
    /// Store a per-connection context entry from this frame.
    pub capture: Option<RawCapture>,
}

/// `[control.capture]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    /// jq giving the key (a string or number).
    pub key: Jq,
    /// jq giving the value stored (bound to `$ctx` for matching frames).
    pub value: Jq,
}

/// `[[routes]]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// A name for logs and errors.
    pub name: Option<String>,
    /// The canonical data type produced.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// The route key(s) (`frames.route_key`) selecting this route.
    pub key: Option<Keys>,
    /// jq condition on the frame (an error counts as no match). At least one
    /// of `key` and `when` is required; with both, both must hold.
    pub when: Option<Jq>,
    /// jq generator of the items to map (default `.`); the fields are
    /// evaluated on each item, with the whole frame as `$frame`.
    pub each: Option<Jq>,
    /// Unit of numeric timestamps: `auto` (default), `s`, `ms`, `us`, `ns`.
    #[serde(default)]
    pub time_unit: TimeUnit,
    /// Canonical field name → jq on the item. Which names are allowed
    /// depends on `type`; see docs/venue-format.md.
    #[serde(default)]
    pub fields: BTreeMap<String, Jq>,
    /// Per-connection memory for book level rows that identify a level by
    /// an id and carry its price only when it appears (l2_orderbook routes).
    pub level_memory: Option<RawLevelMemory>,
}

/// `[routes.level_memory]`: remember a scalar per level key, recall it as
/// `$memo` in `level_price` / `level_quantity`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLevelMemory {
    /// jq on the level row: its key (string or number), e.g.
    /// `"\($frame.table):\(.symbol):\(.id)"`.
    pub key: Jq,
    /// jq on the level row: the value to remember under the key (no output or
    /// `null`: keep what is remembered), e.g. `.price`.
    pub store: Option<Jq>,
    /// jq condition on the level row: forget the key once the row is mapped
    /// (e.g. `$frame.action == "delete"`).
    pub forget: Option<Jq>,
}
