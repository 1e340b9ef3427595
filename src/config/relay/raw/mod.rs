//! The relay config as written (`config/relay.toml`). Documentation here ends
//! up in `schema/relay.schema.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{Dur, Secret};
use crate::domain::DataType;
use crate::serialization::PayloadFormat;

mod streams;
mod venues;

pub use streams::*;
pub use venues::*;

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
    /// two flow acks (the server may ask for fewer: on 2.15 only the first
    /// batch open on a stream gets it; a batch opened beside it starts at 1
    /// and doubles with each flow ack). The publisher keeps at
    /// most two flow-ack intervals unacknowledged per batch, and never more
    /// than `max_in_flight` events in flight.
    #[serde(default = "default_batch_flow")]
    pub batch_flow: u16,
    /// What writes events to NATS: `direct` (default: a second,
    /// publish-only connection on which the relay writes the protocol
    /// itself, with the same URLs, auth and TLS; about a fifth less CPU per
    /// event) or `client` (the async-nats client, one connection for
    /// everything). With `direct`, first attempts go on that connection
    /// while it is up; resends, and everything while it is down, go through
    /// the client. Acks always come back on the client's connection, and a
    /// message lost with a connection is sent again with its id after
    /// `ack_timeout`. WebSocket server URLs (`ws://`, `wss://`) always use
    /// the client.
    #[serde(default)]
    pub writer: PublishWriter,
}

/// `[nats.publish] writer`: what writes events to NATS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PublishWriter {
    /// The async-nats client.
    Client,
    /// A publish-only connection writing the NATS protocol directly.
    #[default]
    Direct,
}

impl Default for RawPublish {
    fn default() -> Self {
        RawPublish {
            max_in_flight: default_in_flight(),
            ack_timeout: default_ack_timeout(),
            retry_delays: default_retries(),
            mode: PublishMode::default(),
            batch_flow: default_batch_flow(),
            writer: PublishWriter::default(),
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
