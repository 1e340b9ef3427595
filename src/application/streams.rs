//! Before publishing: reconcile the configured streams (each as its
//! `manage` allows), log how the live settings differ from the file, and
//! check that the streams on the server capture every subject the relay
//! will publish.

use std::collections::BTreeSet;

use async_nats::jetstream;
use tracing::{info, warn};

use crate::config::relay::raw::{MissingStream, PublishMode, RawStream, StreamManage};
use crate::config::relay::subjects::uncaptured;
use crate::domain::DataType;
use crate::infrastructure::InfraError;
use crate::infrastructure::nats::ServerFeatures;
use crate::infrastructure::streams::{self, Action, StreamReport};

/// Why the streams cannot take what the relay publishes.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// The server did not answer, or JetStream refused a stream or consumer
    /// definition.
    #[error(transparent)]
    Infra(#[from] InfraError),
    /// The live streams cannot carry the relay's subjects; each line says
    /// which stream or subjects and what to change.
    #[error("the JetStream streams cannot store what this relay publishes:\n  {}", .0.join("\n  "))]
    Refused(Vec<String>),
}

impl StreamsError {
    /// Whether trying again later may succeed (the server was not
    /// reachable or not ready), as opposed to a refusal to fix.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StreamsError::Infra(InfraError::Unavailable { .. } | InfraError::Connect { .. })
        )
    }
}

/// The most subjects named in one message.
const LISTED: usize = 12;

fn listing(subjects: &[String]) -> String {
    let mut s = subjects
        .iter()
        .take(LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if subjects.len() > LISTED {
        s.push_str(&format!(" and {} more", subjects.len() - LISTED));
    }
    s
}

fn manage_name(m: StreamManage) -> &'static str {
    match m {
        StreamManage::Reconcile => "reconcile",
        StreamManage::Create => "create",
        StreamManage::Verify => "verify",
    }
}

/// The configured streams as the connected server can have them: a
/// server older than 2.14 has no fast-ingest batches, so `allow_batched` is
/// left out there (each such stream logged once).
pub fn for_server(configured: &[RawStream], features: &ServerFeatures) -> Vec<RawStream> {
    let mut out = configured.to_vec();
    if features.fast_ingest {
        return out;
    }
    for s in out.iter_mut().filter(|s| s.allow_batched) {
        warn!(
            stream = %s.name,
            server_version = ?features.version,
            "allow_batched needs nats-server 2.14 or newer: the stream is kept without it, and its events are published with one ack each"
        );
        s.allow_batched = false;
    }
    out
}

/// Whether events of `data_type` go out in fast-ingest batches: the mode
/// asks for it, the server has it, and one configured stream with
/// `allow_batched` captures every subject of the type
/// (`market.*.*.<type>`; a batch goes to one stream). The choice is logged,
/// a fallback to acks as a warning when `mode = "batched"`.
pub fn batched_type(
    mode: PublishMode,
    streams: &[RawStream],
    features: &ServerFeatures,
    data_type: DataType,
) -> bool {
    if mode == PublishMode::Acks {
        return false;
    }
    let all = format!("market.*.*.{}", data_type.as_str());
    let stream = streams.iter().find(|s| {
        s.subjects
            .iter()
            .any(|f| crate::domain::subject_matches(f, &all))
    });
    let why_not = match stream {
        _ if !features.fast_ingest => Some("the server is older than 2.14".to_owned()),
        None => Some(format!("no configured stream captures every `{all}`")),
        Some(s) if !s.allow_batched => Some(format!("stream `{}` has no allow_batched", s.name)),
        Some(_) => None,
    };
    match (why_not, mode) {
        (None, _) => {
            info!(%data_type, "publishing in fast-ingest batches");
            true
        }
        (Some(why), PublishMode::Batched) => {
            warn!(%data_type, reason = %why, "publishing with one ack per event instead of fast-ingest batches");
            false
        }
        (Some(why), _) => {
            info!(%data_type, reason = %why, "publishing with one ack per event");
            false
        }
    }
}

/// Log what reconciling did, with the differences between live and file.
fn log_report(r: &StreamReport) {
    let manage = manage_name(r.manage);
    let diff: Vec<String> = r.diff.iter().map(ToString::to_string).collect();
    match r.action {
        Action::Created if diff.is_empty() => info!(stream = %r.name, manage, "stream created"),
        Action::Created => warn!(
            stream = %r.name, manage, diff = %diff.join("; "),
            "stream created, but the server keeps other settings than the file's"
        ),
        Action::Updated => warn!(
            stream = %r.name, manage, diff = %diff.join("; "),
            "live stream differed from the file: updated to the file's settings"
        ),
        Action::Unchanged => info!(stream = %r.name, manage, "stream as configured"),
        Action::LeftAsIs => warn!(
            stream = %r.name, manage, diff = %diff.join("; "),
            "live stream differs from the file: left as it is (only manage = \"reconcile\" changes a stream)"
        ),
        Action::Missing => {}
    }
    for c in &r.consumers {
        match c.action {
            Action::Missing => {
                warn!(stream = %r.name, consumer = %c.name, "consumer missing (manage = \"verify\" does not create it)")
            }
            Action::LeftAsIs => {
                warn!(stream = %r.name, consumer = %c.name, "consumer differs from the file: left as it is")
            }
            a => info!(stream = %r.name, consumer = %c.name, action = ?a, "consumer"),
        }
    }
}

/// Reconcile the configured streams, log the differences, and check that
/// every subject in `publish` is captured by a stream on the server.
///
/// Refused: a `verify` stream that is missing or does not capture the
/// relay's subjects its entry lists; and, unless `missing_stream = "warn"`,
/// any published subject that no live stream captures.
pub async fn reconcile_and_check(
    js: &jetstream::Context,
    configured: &[RawStream],
    missing_stream: MissingStream,
    publish: &BTreeSet<String>,
) -> Result<(), StreamsError> {
    let client = js.client();
    if client.server_info().version.is_empty() {
        // Not connected yet: the server's version decides what it can have.
        client.flush().await.map_err(|e| InfraError::Unavailable {
            what: "NATS".into(),
            message: e.to_string(),
        })?;
    }
    let configured = &for_server(configured, &ServerFeatures::of_client(&client));
    let reports = streams::reconcile(js, configured).await?;
    let mut refused = Vec::new();
    for (r, s) in reports.iter().zip(configured) {
        log_report(r);
        if r.manage != StreamManage::Verify {
            continue;
        }
        if r.action == Action::Missing {
            refused.push(format!(
                "stream `{}` does not exist, and manage = \"verify\" never creates it: create \
                 it, or let one relay own it with manage = \"reconcile\"",
                r.name
            ));
            continue;
        }
        // The relay's subjects this entry says the stream carries, that the
        // live stream does not capture.
        let meant: Vec<&String> = publish
            .iter()
            .filter(|p| {
                s.subjects
                    .iter()
                    .any(|f| crate::domain::subject_matches(f, p))
            })
            .collect();
        let lacking = uncaptured(meant, &r.live_subjects);
        if !lacking.is_empty() {
            refused.push(format!(
                "stream `{}` (manage = \"verify\") cannot carry {} subject(s) this relay \
                 publishes: subjects: live [{}], file [{}]; not captured: {}",
                r.name,
                lacking.len(),
                r.live_subjects.join(", "),
                s.subjects.join(", "),
                listing(&lacking)
            ));
        }
    }
    // The configured streams' subjects as their own info answered, and
    // every stream the server lists. In a cluster the list leaves out a
    // stream whose leader is not elected yet (a stream just created, or
    // during an election): look again before calling a subject uncaptured.
    let mut patterns: Vec<String> = reports
        .iter()
        .flat_map(|r| r.live_subjects.iter().cloned())
        .collect();
    let mut names: Vec<String> = reports
        .iter()
        .filter(|r| r.action != Action::Missing)
        .map(|r| r.name.clone())
        .collect();
    let mut missing = uncaptured(publish, &patterns);
    for attempt in 0..3 {
        if missing.is_empty() {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        for (name, subjects) in streams::live_subjects(js).await? {
            if !names.contains(&name) {
                names.push(name);
            }
            patterns.extend(subjects);
        }
        missing = uncaptured(&missing, &patterns);
    }
    if !missing.is_empty() {
        let text = format!(
            "{} subject(s) this relay publishes are captured by no stream on the server \
             (streams: [{}]), so their events cannot be stored: {}",
            missing.len(),
            names.join(", "),
            listing(&missing)
        );
        match missing_stream {
            MissingStream::Refuse if refused.is_empty() => refused.push(format!(
                "{text}; add them to a stream's subjects, or set [nats] missing_stream = \"warn\""
            )),
            MissingStream::Refuse => refused.push(text),
            MissingStream::Warn => warn!(
                subjects = %listing(&missing),
                count = missing.len(),
                "published subjects captured by no stream (missing_stream = \"warn\"): their events cannot be stored"
            ),
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(StreamsError::Refused(refused))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(name: &str, subjects: &[&str], allow_batched: bool) -> RawStream {
        let text = format!(
            "name = \"{name}\"\nsubjects = [{}]\nallow_batched = {allow_batched}\n",
            subjects
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn a_type_is_batched_only_where_mode_server_and_its_one_stream_allow_it() {
        let new = ServerFeatures::of("2.15.1");
        let old = ServerFeatures::of("2.9.10");
        let streams = [
            stream("MARKET", &["market.*.*.trade", "market.*.*.ticker"], true),
            stream("SNAP", &["market.*.*.l2_snapshot"], false),
            stream("PART", &["market.okx.*.l2_orderbook"], true),
        ];
        let batched = |mode, f: &ServerFeatures, t| batched_type(mode, &streams, f, t);
        assert!(batched(PublishMode::Batched, &new, DataType::Trade));
        assert!(batched(PublishMode::Auto, &new, DataType::Ticker));
        assert!(
            !batched(PublishMode::Acks, &new, DataType::Trade),
            "the default"
        );
        assert!(
            !batched(PublishMode::Batched, &old, DataType::Trade),
            "server too old"
        );
        assert!(
            !batched(PublishMode::Auto, &new, DataType::L2Snapshot),
            "stream without allow_batched"
        );
        assert!(
            !batched(PublishMode::Auto, &new, DataType::L2Orderbook),
            "no one stream takes every venue's books"
        );
        let everything = [stream("ALL", &["market.>"], true)];
        assert!(batched_type(
            PublishMode::Auto,
            &everything,
            &new,
            DataType::Status
        ));
    }

    #[test]
    fn an_old_server_gets_its_streams_without_allow_batched() {
        let streams = [stream("MARKET", &["market.>"], true)];
        assert!(!for_server(&streams, &ServerFeatures::of("2.9.10"))[0].allow_batched);
        assert!(for_server(&streams, &ServerFeatures::of("2.14.0"))[0].allow_batched);
    }
}
