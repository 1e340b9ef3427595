//! The relay config as written (`config/relay.toml`). Documentation here ends
//! up in `schema/relay.schema.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{Dur, Secret};
use crate::domain::DataType;
use crate::serialization::PayloadFormat;

/// The relay configuration file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayFile {
    /// Process-wide settings.
    #[serde(default)]
    pub service: RawService,
    /// The HTTP endpoint for `/health` and `/metrics`.
    #[serde(default)]
    pub http: RawHttp,
    /// The NATS connection, publishing and JetStream streams.
    #[serde(default)]
    pub nats: RawNats,
    /// How `/health` judges the connections.
    #[serde(default)]
    pub health: RawHealth,
    /// Queues between venue connections and the publisher, per data type.
    #[serde(default)]
    pub pipeline: BTreeMap<DataType, RawQueue>,
    /// Directory of venue definition files (default `venues`; a relative
    /// path is relative to the working directory).
    pub venues_dir: Option<PathBuf>,
    /// Directory of recorded fixture cases (`<dir>/<venue>/*.jsonl`). A
    /// changed venue file is hot-reloaded only if its cases still give
    /// their expected output. Default: `fixtures` next to the venues
    /// directory, when it exists.
    pub fixtures_dir: Option<PathBuf>,
    /// The venues to relay.
    #[serde(default)]
    pub venues: Vec<RawVenue>,
}

/// `[service]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// Name used as the NATS client name and in logs.
    #[serde(default = "default_name")]
    pub name: String,
    /// Log filter, e.g. `info` or `mdrelay=debug,info`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// `pretty` or `json`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// How long shutdown may take to publish what is queued or in flight.
    #[serde(default = "default_shutdown")]
    pub shutdown_timeout: Dur,
    /// Runtime threads. Absent (the default): one per available core. 1 runs
    /// everything on one thread, which needs the least CPU per frame (about
    /// 6 % less) and memory; more spreads the connections, mapping and
    /// publishing over a pool (on 2 cores next to a local nats-server: about
    /// 15 % more throughput and a lower latency tail; docs/performance.md).
    #[serde(default)]
    pub worker_threads: Option<usize>,
}

impl Default for RawService {
    fn default() -> Self {
        RawService {
            name: default_name(),
            log_level: default_log_level(),
            log_format: LogFormat::default(),
            shutdown_timeout: default_shutdown(),
            worker_threads: None,
        }
    }
}

fn default_name() -> String {
    "mdrelay".into()
}
fn default_log_level() -> String {
    "info".into()
}
fn default_shutdown() -> Dur {
    Dur(std::time::Duration::from_secs(10))
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[http]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Listen address for `/health` and `/metrics` (default `127.0.0.1:8080`,
    /// loopback only).
    #[serde(default = "default_listen")]
    pub listen: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: default_listen(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

/// `[health]`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// A connection that has received no frame for this fraction of its
    /// venue's `silence_timeout` makes the venue `degraded` in `/health`
    /// (0 < fraction ≤ 1; default 0.5). At the whole timeout the
    /// connection is replaced.
    #[serde(default = "default_silence_fraction")]
    pub silence_fraction: f64,
    /// How long an error frame from a venue (a rejected subscription, for
    /// example) keeps the venue `degraded` (default 5m).
    #[serde(default = "default_error_memory")]
    pub error_memory: Dur,
}

impl Default for RawHealth {
    fn default() -> Self {
        RawHealth {
            silence_fraction: default_silence_fraction(),
            error_memory: default_error_memory(),
        }
    }
}

fn default_silence_fraction() -> f64 {
    0.5
}
fn default_error_memory() -> Dur {
    Dur(std::time::Duration::from_secs(300))
}

/// `[nats]`
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNats {
    /// Server URLs, e.g. `nats://127.0.0.1:4222`.
    #[serde(default = "default_urls")]
    pub urls: Vec<String>,
    /// Authentication.
    #[serde(default)]
    pub auth: RawAuth,
    /// TLS settings (the connection uses TLS when this table is present).
    pub tls: Option<RawTls>,
    /// Timeout of the initial connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    /// Encoding of published events: `json` or `protobuf`.
    #[serde(default)]
    pub payload_format: PayloadFormat,
    /// Publishing settings.
    #[serde(default)]
    pub publish: RawPublish,
    /// JetStream streams to reconcile, create or verify at start (each
    /// entry's `manage` says which).
    #[serde(default)]
    pub streams: Vec<RawStream>,
    /// What to do when a subject the relay will publish is captured by no
    /// stream on the server (checked at start and after each reconcile):
    /// `refuse` (default: do not start, naming the subjects) or `warn` (log
    /// them and start; their events cannot be stored).
    #[serde(default)]
    pub missing_stream: MissingStream,
}

/// `[nats] missing_stream`: a published subject that no stream captures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissingStream {
    /// Do not start; the error names the subjects.
    #[default]
    Refuse,
    /// Log the subjects and start anyway.
    Warn,
}

/// Like the derived form, with `user:password@` and query strings of the
/// URLs hidden.
impl std::fmt::Debug for RawNats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self
            .urls
            .iter()
            .map(|u| crate::config::redact_url(u))
            .collect();
        f.debug_struct("RawNats")
            .field("urls", &urls)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("payload_format", &self.payload_format)
            .field("publish", &self.publish)
            .field("streams", &self.streams)
            .field("missing_stream", &self.missing_stream)
            .finish()
    }
}

impl Default for RawNats {
    fn default() -> Self {
        RawNats {
            urls: default_urls(),
            auth: RawAuth::default(),
            tls: None,
            connect_timeout: default_connect_timeout(),
            payload_format: PayloadFormat::default(),
            publish: RawPublish::default(),
            streams: Vec::new(),
            missing_stream: MissingStream::default(),
        }
    }
}

fn default_urls() -> Vec<String> {
    vec!["nats://127.0.0.1:4222".into()]
}
fn default_connect_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(5))
}

/// `[nats.auth]`: how the relay authenticates to NATS.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawAuth {
    /// No authentication.
    #[default]
    None,
    /// A token.
    Token {
        /// The token.
        token: Secret,
    },
    /// User name and password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: Secret,
    },
    /// An NKey seed.
    Nkey {
        /// The seed (starts with `SU`).
        seed: Secret,
    },
    /// A `.creds` file (JWT + NKey seed).
    Credentials {
        /// Path of the credentials file.
        path: PathBuf,
    },
}

/// `[nats.tls]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// CA certificate (PEM) to trust.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), for mutual TLS.
    pub cert: Option<PathBuf>,
    /// Client key (PEM), for mutual TLS.
    pub key: Option<PathBuf>,
}

/// `[nats.publish]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPublish {
    /// Most publishes awaiting their JetStream ack at once.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// How long to wait for an ack before retrying.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout: Dur,
    /// Delays before each retry of a failed publish; after the last, the
    /// event is dropped, counted and logged.
    #[serde(default = "default_retries")]
    pub retry_delays: Vec<Dur>,
    /// How events reach JetStream: `acks` (default: one ack per event,
    /// many in flight), `batched` (fast-ingest batches, periodic acks with
    /// server-driven flow control; needs nats-server 2.14+ and a stream
    /// with `allow_batched`) or `auto` (batched where the server and the
    /// stream allow it, acks elsewhere). A data type whose stream or
    /// server cannot take batches is published with acks, and the log says
    /// why (a warning with `batched`).
    #[serde(default)]
    pub mode: PublishMode,
    /// Fast-ingest batches: the most events the server may store between
    /// two flow acks (the server may ask for fewer). The publisher keeps at
    /// most two flow-ack intervals unacknowledged per batch, and never more
    /// than `max_in_flight` events in flight.
    #[serde(default = "default_batch_flow")]
    pub batch_flow: u16,
}

impl Default for RawPublish {
    fn default() -> Self {
        RawPublish {
            max_in_flight: default_in_flight(),
            ack_timeout: default_ack_timeout(),
            retry_delays: default_retries(),
            mode: PublishMode::default(),
            batch_flow: default_batch_flow(),
        }
    }
}

/// `[nats.publish] mode`: how events reach JetStream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PublishMode {
    /// One JetStream ack per event, `max_in_flight` acks outstanding.
    #[default]
    Acks,
    /// Fast-ingest batches where possible; a warning for each data type
    /// that falls back to acks.
    Batched,
    /// Where fast-ingest batches are possible, choose per event: one ack
    /// per event while the publisher keeps up (the lowest latency), batches
    /// while its queue is deep (the most throughput); acks elsewhere (logged
    /// at info).
    Auto,
}

fn default_batch_flow() -> u16 {
    128
}

fn default_in_flight() -> usize {
    512
}
fn default_ack_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(5))
}
fn default_retries() -> Vec<Dur> {
    [100, 500, 2000]
        .map(|ms| Dur(std::time::Duration::from_millis(ms)))
        .to_vec()
}

/// `[[nats.streams]]`: a JetStream stream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStream {
    /// Stream name.
    pub name: String,
    /// Who owns the stream's settings: `reconcile` (default: create it, and
    /// update it to match this entry), `create` (create it if missing, never
    /// change it) or `verify` (never write; refuse to start when it is
    /// missing or cannot carry the relay's subjects). In a fleet of relays
    /// one owns the stream (`reconcile`) and the others `verify` it, so
    /// relays with different settings do not rewrite each other's stream.
    /// A live stream that differs from this entry is logged field by field
    /// in every mode.
    #[serde(default)]
    pub manage: StreamManage,
    /// Subjects captured, e.g. `market.>`.
    pub subjects: Vec<String>,
    /// `file` or `memory`.
    #[serde(default)]
    pub storage: Storage,
    /// `limits`, `interest` or `work_queue`.
    #[serde(default)]
    pub retention: Retention,
    /// Oldest message kept (0 = no limit).
    pub max_age: Option<Dur>,
    /// Most bytes kept (absent = no limit).
    pub max_bytes: Option<i64>,
    /// Most messages kept (absent = no limit).
    pub max_messages: Option<i64>,
    /// Most messages kept per subject (absent = no limit). `1` keeps only
    /// the last message of each subject: the stream of `l2_snapshot`s, so
    /// that every book's last snapshot stays whatever the other limits.
    pub max_msgs_per_subject: Option<i64>,
    /// Let clients read messages with JetStream direct get (any replica
    /// answers, without going through the stream leader): how consumers
    /// fetch the last `l2_snapshot` of a book quickly.
    #[serde(default)]
    pub allow_direct: bool,
    /// Let publishers send fast-ingest batches to the stream (nats-server
    /// 2.14+; `[nats.publish] mode = "batched"` or `"auto"` uses them). On
    /// an older server the stream is created without it, with a warning.
    #[serde(default)]
    pub allow_batched: bool,
    /// Replicas (1 on a single server).
    #[serde(default = "one")]
    pub replicas: usize,
    /// Window in which a repeated `Nats-Msg-Id` is dropped as a duplicate.
    pub duplicate_window: Option<Dur>,
    /// What to drop when full: `old` or `new`.
    #[serde(default)]
    pub discard: Discard,
    /// Durable consumers to create or update on the stream.
    #[serde(default)]
    pub consumers: Vec<RawConsumer>,
}

fn one() -> usize {
    1
}

/// `manage` of a `[[nats.streams]]` entry: what the relay may do to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StreamManage {
    /// Create the stream and its consumers when missing, and update them to
    /// match this entry when they differ.
    #[default]
    Reconcile,
    /// Create the stream and its consumers when missing; never change
    /// existing ones (differences are logged).
    Create,
    /// Never write. The stream must exist and capture the relay's subjects
    /// that this entry lists; otherwise the relay does not start and says
    /// why, field by field.
    Verify,
}

/// Stream storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// On disk.
    #[default]
    File,
    /// In memory.
    Memory,
}

/// Stream retention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    /// Keep until a limit is reached.
    #[default]
    Limits,
    /// Keep while a consumer is interested.
    Interest,
    /// Keep until consumed once.
    WorkQueue,
}

/// Stream discard policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Discard {
    /// Drop the oldest messages.
    #[default]
    Old,
    /// Refuse new messages.
    New,
}

/// `[[nats.streams.consumers]]`: a durable pull consumer.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConsumer {
    /// Durable name.
    pub durable_name: String,
    /// Only messages on this subject (wildcards allowed).
    pub filter_subject: Option<String>,
    /// `explicit`, `all` or `none`.
    #[serde(default)]
    pub ack_policy: AckPolicy,
    /// `all`, `last`, `new` or `last_per_subject`.
    #[serde(default)]
    pub deliver_policy: DeliverPolicy,
}

/// Consumer ack policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AckPolicy {
    /// Every message is acked.
    #[default]
    Explicit,
    /// Acking one acks all before it.
    All,
    /// No acks.
    None,
}

/// Consumer deliver policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliverPolicy {
    /// From the first message.
    #[default]
    All,
    /// From the last message.
    Last,
    /// Only new messages.
    New,
    /// The last message of each subject, then new ones.
    LastPerSubject,
}

/// `[pipeline.<data_type>]`: the queue for one data type.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    /// Most events waiting for the publisher (default 1024). Memory is
    /// about capacity × encoded event size (books: 1–3 KB each) when full.
    pub capacity: Option<usize>,
    /// What a connection does when the queue is full: `block` (stop reading
    /// the socket until there is room; nothing is dropped) or `drop_newest`
    /// (drop the new event and count it).
    #[serde(default)]
    pub when_full: WhenFull,
}

/// Full-queue policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room (backpressure to the venue socket).
    #[default]
    Block,
    /// Drop the event that does not fit, and count it.
    DropNewest,
}

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
    pub sort: Option<super::select::SortKey>,
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
