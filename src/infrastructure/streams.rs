//! JetStream streams and consumers: created, updated or only read, as each
//! `[[nats.streams]]` entry's `manage` says; live settings compared with the
//! file field by field; the subjects every live stream captures; and
//! JetStream's refusals turned into what to fix.

use std::fmt;
use std::time::Duration;

use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::{self, ErrorCode, consumer, stream};
use futures_util::TryStreamExt;

use super::InfraError;
use crate::config::relay::raw::{
    AckPolicy, DeliverPolicy, Discard, RawConsumer, RawStream, Retention, Storage, StreamManage,
};

/// One setting whose live value differs from the file's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    /// The `[[nats.streams]]` field, e.g. `replicas`.
    pub field: &'static str,
    /// The value on the server.
    pub live: String,
    /// The value in the relay config.
    pub file: String,
}

impl fmt::Display for FieldDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: live {}, file {}", self.field, self.live, self.file)
    }
}

/// What happened to a stream or consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Created (it was missing).
    Created,
    /// Updated to the file's settings (`reconcile`).
    Updated,
    /// Already as in the file.
    Unchanged,
    /// Differs from the file and was left as it is (`create`, `verify`).
    LeftAsIs,
    /// Missing and not created (`verify`).
    Missing,
}

/// What reconciling did to one consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerReport {
    /// Durable name.
    pub name: String,
    /// What was done.
    pub action: Action,
}

/// What reconciling found and did for one `[[nats.streams]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReport {
    /// Stream name.
    pub name: String,
    /// The entry's `manage`.
    pub manage: StreamManage,
    /// What was done.
    pub action: Action,
    /// Live value against file value, for each differing setting (before
    /// the update, when there was one).
    pub diff: Vec<FieldDiff>,
    /// The subjects the stream captures now (empty when missing).
    pub live_subjects: Vec<String>,
    /// Its consumers.
    pub consumers: Vec<ConsumerReport>,
}

/// The JetStream config a `[[nats.streams]]` entry asks for.
pub fn stream_config(s: &RawStream) -> stream::Config {
    stream::Config {
        name: s.name.clone(),
        subjects: s.subjects.clone(),
        storage: match s.storage {
            Storage::File => stream::StorageType::File,
            Storage::Memory => stream::StorageType::Memory,
        },
        retention: match s.retention {
            Retention::Limits => stream::RetentionPolicy::Limits,
            Retention::Interest => stream::RetentionPolicy::Interest,
            Retention::WorkQueue => stream::RetentionPolicy::WorkQueue,
        },
        max_age: s.max_age.map_or(Duration::ZERO, |d| d.0),
        max_bytes: s.max_bytes.unwrap_or(-1),
        max_messages: s.max_messages.unwrap_or(-1),
        max_messages_per_subject: s.max_msgs_per_subject.unwrap_or(-1),
        allow_direct: s.allow_direct,
        allow_batch_publish: s.allow_batched,
        num_replicas: s.replicas,
        duplicate_window: s.duplicate_window.map_or(Duration::from_secs(120), |d| d.0),
        discard: match s.discard {
            Discard::Old => stream::DiscardPolicy::Old,
            Discard::New => stream::DiscardPolicy::New,
        },
        ..Default::default()
    }
}

fn duration(d: Duration) -> String {
    if d.is_zero() {
        "none".into()
    } else {
        humantime::format_duration(d).to_string()
    }
}

fn limit(n: i64) -> String {
    if n < 0 { "none".into() } else { n.to_string() }
}

fn subjects(s: &[String]) -> String {
    format!("[{}]", s.join(", "))
}

/// The settings the relay config manages whose live value differs from the
/// file's, named as in `[[nats.streams]]`. Subjects compare as sets.
pub fn diff(live: &stream::Config, file: &stream::Config) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let mut push = |field, live: String, file: String| {
        if live != file {
            out.push(FieldDiff { field, live, file });
        }
    };
    let sorted = |s: &[String]| {
        let mut v = s.to_vec();
        v.sort();
        v.dedup();
        v
    };
    if sorted(&live.subjects) != sorted(&file.subjects) {
        push(
            "subjects",
            subjects(&live.subjects),
            subjects(&file.subjects),
        );
    }
    let lower = |v: &dyn fmt::Debug| format!("{v:?}").to_lowercase();
    push("storage", lower(&live.storage), lower(&file.storage));
    push("retention", lower(&live.retention), lower(&file.retention));
    push("max_age", duration(live.max_age), duration(file.max_age));
    push("max_bytes", limit(live.max_bytes), limit(file.max_bytes));
    push(
        "max_messages",
        limit(live.max_messages),
        limit(file.max_messages),
    );
    push(
        "max_msgs_per_subject",
        limit(live.max_messages_per_subject),
        limit(file.max_messages_per_subject),
    );
    push(
        "allow_direct",
        live.allow_direct.to_string(),
        file.allow_direct.to_string(),
    );
    push(
        "allow_batched",
        live.allow_batch_publish.to_string(),
        file.allow_batch_publish.to_string(),
    );
    push(
        "replicas",
        live.num_replicas.max(1).to_string(),
        file.num_replicas.max(1).to_string(),
    );
    push(
        "duplicate_window",
        duration(live.duplicate_window),
        duration(file.duplicate_window),
    );
    push("discard", lower(&live.discard), lower(&file.discard));
    out
}

fn consumer_config(c: &RawConsumer) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(c.durable_name.clone()),
        filter_subject: c.filter_subject.clone().unwrap_or_default(),
        ack_policy: match c.ack_policy {
            AckPolicy::Explicit => consumer::AckPolicy::Explicit,
            AckPolicy::All => consumer::AckPolicy::All,
            AckPolicy::None => consumer::AckPolicy::None,
        },
        deliver_policy: match c.deliver_policy {
            DeliverPolicy::All => consumer::DeliverPolicy::All,
            DeliverPolicy::Last => consumer::DeliverPolicy::Last,
            DeliverPolicy::New => consumer::DeliverPolicy::New,
            DeliverPolicy::LastPerSubject => consumer::DeliverPolicy::LastPerSubject,
        },
        ..Default::default()
    }
}

/// A JetStream error: a refusal to fix in the config (explained when the
/// cause is a known one), or the server not answering yet (retry).
fn js_error(what: &str, s: &RawStream, code: Option<ErrorCode>, text: String) -> InfraError {
    let what = what.to_owned();
    let Some(code) = code else {
        return InfraError::Unavailable {
            what,
            message: text,
        };
    };
    // A cluster without a meta leader yet, or JSClusterNoPeersErr naming
    // an offline peer: a node of the cluster is known but not up (still
    // starting, restarting, or down). The config is right, so it is
    // retried, not fatal (seen: a stream created 200 ms after a fresh
    // three-node cluster reported healthy).
    let transient = code == ErrorCode::CLUSTER_NOT_AVAILABLE
        || (code.0 == 10005 && text.contains("peer offline"));
    let message = match explain(code, s) {
        Some(why) => format!("{why} (JetStream said: {text})"),
        None => text,
    };
    if transient {
        InfraError::Unavailable { what, message }
    } else {
        InfraError::JetStream { what, message }
    }
}

/// What a JetStream refusal means for this stream entry, when it is one
/// of the refusals a config can cause.
fn explain(code: ErrorCode, s: &RawStream) -> Option<String> {
    let n = s.replicas;
    match code.0 {
        // JSStreamReplicasNotSupportedErr
        10074 => Some(format!(
            "`replicas = {n}` needs a JetStream cluster, but this NATS server runs JetStream \
             on its own (one node keeps one copy): set `replicas = 1`, or connect to a \
             cluster of at least {n} JetStream servers (docs/deployment.md)"
        )),
        // JSInsufficientResourcesErr, JSClusterNoPeersErr
        10023 | 10005 if n > 1 => Some(format!(
            "`replicas = {n}` needs {n} JetStream servers with room for the stream, and the \
             cluster has fewer up (or their max_file / max_mem limits are reached): start \
             the missing servers, or lower `replicas`"
        )),
        10023 => Some(
            "no JetStream server has room for the stream (max_file / max_mem limits of the \
             server or account): lower max_bytes or raise the server's limits"
                .into(),
        ),
        // JSStreamSubjectOverlapErr
        10065 => Some(format!(
            "its subjects {} overlap those of another stream on the server (JetStream \
             stores a subject in one stream only): narrow the subjects, or use the \
             existing stream with `manage = \"verify\"`",
            subjects(&s.subjects)
        )),
        // JSStreamReplicasNotUpdatableErr
        10061 => Some(
            "the server cannot change the replica count of an existing stream: keep the live \
             value, or recreate the stream"
                .into(),
        ),
        _ => None,
    }
}

fn code_of_get(e: &jetstream::context::GetStreamError) -> Option<ErrorCode> {
    match e.kind() {
        jetstream::context::GetStreamErrorKind::JetStream(j) => Some(j.error_code()),
        _ => None,
    }
}

fn code_of_create(e: &jetstream::context::CreateStreamError) -> Option<ErrorCode> {
    match e.kind() {
        jetstream::context::CreateStreamErrorKind::JetStream(j) => Some(j.error_code()),
        _ => None,
    }
}

fn code_of_consumer(e: &jetstream::stream::ConsumerError) -> Option<ErrorCode> {
    match e.kind() {
        jetstream::stream::ConsumerErrorKind::JetStream(j) => Some(j.error_code()),
        _ => None,
    }
}

/// The live config of a stream, or `None` when it does not exist.
async fn live_config(
    js: &jetstream::Context,
    s: &RawStream,
    what: &str,
) -> Result<Option<(stream::Stream, stream::Config)>, InfraError> {
    match js.get_stream(&s.name).await {
        Ok(mut existing) => {
            let config = existing
                .info()
                .await
                .map_err(|e| js_error(what, s, None, e.to_string()))?
                .config
                .clone();
            Ok(Some((existing, config)))
        }
        Err(e) if code_of_get(&e) == Some(ErrorCode::STREAM_NOT_FOUND) => Ok(None),
        Err(e) => Err(js_error(what, s, code_of_get(&e), e.to_string())),
    }
}

/// Create, update or only read every configured stream and its consumers,
/// as each entry's `manage` allows: only `reconcile` changes an existing
/// stream, only `reconcile` and `create` create one, `verify` never writes.
pub async fn reconcile(
    js: &jetstream::Context,
    streams: &[RawStream],
) -> Result<Vec<StreamReport>, InfraError> {
    let mut done = Vec::new();
    for s in streams {
        let what = format!("stream `{}`", s.name);
        let want = stream_config(s);
        let mut report = StreamReport {
            name: s.name.clone(),
            manage: s.manage,
            action: Action::Unchanged,
            diff: Vec::new(),
            live_subjects: Vec::new(),
            consumers: Vec::new(),
        };
        let stream = match live_config(js, s, &what).await? {
            Some((existing, have)) => {
                report.diff = diff(&have, &want);
                report.live_subjects = have.subjects.clone();
                if report.diff.is_empty() {
                    existing
                } else if s.manage == StreamManage::Reconcile {
                    let info = js
                        .update_stream(&want)
                        .await
                        .map_err(|e| js_error(&what, s, code_of_create(&e), e.to_string()))?;
                    report.action = Action::Updated;
                    report.live_subjects = info.config.subjects.clone();
                    existing
                } else {
                    report.action = Action::LeftAsIs;
                    existing
                }
            }
            None if s.manage == StreamManage::Verify => {
                report.action = Action::Missing;
                done.push(report);
                continue;
            }
            None => match js.create_stream(&want).await {
                Ok(mut created) => {
                    report.action = Action::Created;
                    let info = created
                        .info()
                        .await
                        .map_err(|e| js_error(&what, s, None, e.to_string()))?;
                    report.live_subjects = info.config.subjects.clone();
                    // A server may accept a stream with settings other than
                    // asked for; say so.
                    report.diff = diff(&info.config, &want);
                    created
                }
                // Another relay created it a moment ago: compare with it.
                Err(e) if code_of_create(&e) == Some(ErrorCode::STREAM_NAME_EXIST) => {
                    let Some((existing, have)) = live_config(js, s, &what).await? else {
                        return Err(js_error(&what, s, code_of_create(&e), e.to_string()));
                    };
                    report.diff = diff(&have, &want);
                    report.live_subjects = have.subjects.clone();
                    if !report.diff.is_empty() {
                        report.action = Action::LeftAsIs;
                    }
                    existing
                }
                Err(e) => return Err(js_error(&what, s, code_of_create(&e), e.to_string())),
            },
        };
        for c in &s.consumers {
            report.consumers.push(consumer(&stream, s, c, &what).await?);
        }
        done.push(report);
    }
    Ok(done)
}

/// Create, update or only read one consumer, as the stream's `manage` allows.
async fn consumer(
    stream: &stream::Stream,
    s: &RawStream,
    c: &RawConsumer,
    stream_what: &str,
) -> Result<ConsumerReport, InfraError> {
    let want = consumer_config(c);
    let what = format!("consumer `{}` on {stream_what}", c.durable_name);
    let action = match stream.consumer_info(&c.durable_name).await {
        Ok(info) => {
            let have = &info.config;
            let same = have.filter_subject == want.filter_subject
                && have.ack_policy == want.ack_policy
                && have.deliver_policy == want.deliver_policy;
            if same {
                Action::Unchanged
            } else if s.manage == StreamManage::Reconcile {
                stream
                    .create_consumer(want)
                    .await
                    .map_err(|e| js_error(&what, s, code_of_consumer(&e), e.to_string()))?;
                Action::Updated
            } else {
                Action::LeftAsIs
            }
        }
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
            if s.manage == StreamManage::Verify {
                Action::Missing
            } else {
                stream
                    .create_consumer(want)
                    .await
                    .map_err(|e| js_error(&what, s, code_of_consumer(&e), e.to_string()))?;
                Action::Created
            }
        }
        Err(e) => {
            let code = match e.kind() {
                ConsumerInfoErrorKind::JetStream(j) => Some(j.error_code()),
                _ => None,
            };
            return Err(js_error(&what, s, code, e.to_string()));
        }
    };
    Ok(ConsumerReport {
        name: c.durable_name.clone(),
        action,
    })
}

/// Every stream on the server (of this account) with the subjects it
/// captures.
pub async fn live_subjects(
    js: &jetstream::Context,
) -> Result<Vec<(String, Vec<String>)>, InfraError> {
    js.streams()
        .map_ok(|info| (info.config.name, info.config.subjects))
        .try_collect()
        .await
        .map_err(|e| InfraError::Unavailable {
            what: "the stream list".into(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    fn raw(replicas: usize) -> RawStream {
        RawStream {
            name: "MARKET".into(),
            manage: StreamManage::Reconcile,
            subjects: vec!["market.>".into(), "extra.>".into()],
            storage: Storage::File,
            retention: Retention::Limits,
            max_age: Some(Dur(Duration::from_secs(3600))),
            max_bytes: None,
            max_messages: Some(1000),
            max_msgs_per_subject: None,
            allow_direct: false,
            allow_batched: false,
            replicas,
            duplicate_window: None,
            discard: Discard::Old,
            consumers: Vec::new(),
        }
    }

    #[test]
    fn equal_settings_give_no_diff_and_subject_order_does_not_matter() {
        let file = stream_config(&raw(3));
        let mut live = file.clone();
        live.subjects.reverse();
        assert!(diff(&live, &file).is_empty());
    }

    #[test]
    fn each_differing_field_is_named_with_both_values() {
        let file = stream_config(&raw(3));
        let mut live = file.clone();
        live.num_replicas = 1;
        live.subjects = vec!["market.venue-a.>".into()];
        live.max_age = Duration::ZERO;
        live.max_messages = -1;
        live.storage = stream::StorageType::Memory;
        let d: Vec<String> = diff(&live, &file).iter().map(|d| d.to_string()).collect();
        assert_eq!(
            d,
            [
                "subjects: live [market.venue-a.>], file [market.>, extra.>]",
                "storage: live memory, file file",
                "max_age: live none, file 1h",
                "max_messages: live none, file 1000",
                "replicas: live 1, file 3",
            ]
        );
    }

    #[test]
    fn replica_refusals_say_what_to_do() {
        let single = explain(ErrorCode(10074), &raw(3)).unwrap();
        assert!(single.contains("replicas = 3") && single.contains("cluster"));
        let short = explain(ErrorCode(10023), &raw(3)).unwrap();
        assert!(short.contains("3 JetStream servers"), "{short}");
        assert!(
            explain(ErrorCode(10065), &raw(1))
                .unwrap()
                .contains("overlap")
        );
        assert!(explain(ErrorCode(10059), &raw(1)).is_none());
        let e = js_error(
            "stream `MARKET`",
            &raw(3),
            Some(ErrorCode(10074)),
            "replicas > 1 not supported in non-clustered mode".into(),
        );
        assert!(matches!(e, InfraError::JetStream { .. }));
        assert!(
            e.to_string().contains("JetStream said: replicas > 1"),
            "{e}"
        );
        let e = js_error(
            "stream `MARKET`",
            &raw(3),
            Some(ErrorCode::CLUSTER_NOT_AVAILABLE),
            "jetstream temporarily unavailable".into(),
        );
        assert!(matches!(e, InfraError::Unavailable { .. }));
    }

    #[test]
    fn placement_with_a_peer_offline_is_retried_and_without_one_refused() {
        let offline = js_error(
            "stream `MARKET`",
            &raw(3),
            Some(ErrorCode(10005)),
            "no suitable peers for placement, peer offline".into(),
        );
        assert!(
            matches!(offline, InfraError::Unavailable { .. }),
            "{offline}"
        );
        assert!(offline.to_string().contains("start the missing servers"));
        let too_few = js_error(
            "stream `MARKET`",
            &raw(3),
            Some(ErrorCode(10005)),
            "no suitable peers for placement".into(),
        );
        assert!(matches!(too_few, InfraError::JetStream { .. }), "{too_few}");
    }
}
