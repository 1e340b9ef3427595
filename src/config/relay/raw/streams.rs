//! `[[nats.streams]]` and their consumers: the JetStream streams the relay
//! creates or checks, as written.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::Dur;

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
