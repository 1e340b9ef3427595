//! The last messages of many subjects in a few requests: JetStream's batch
//! direct get with `multi_last` (ADR-31), on servers 2.11 and later, for
//! streams with `allow_direct`.
//!
//! One request on `<api prefix>.DIRECT.GET.<stream>` with the body
//! `{"multi_last": [subjects], "batch": n}` asks for the last message of
//! each subject. The server answers on the request's reply inbox: one
//! message per subject that has one (headers `Nats-Subject`,
//! `Nats-Sequence`, `Nats-Time-Stamp`, `Nats-Num-Pending`), in stream
//! order, then an end of batch (status `204 EOB`, whose `Nats-Num-Pending`
//! counts the matching messages it did not send). A subject without a
//! message is simply absent; a request none of whose subjects has one is
//! answered `404 No Results`. The server refuses (`413 Too Many Results`) a
//! request matching more than [`MAX_SUBJECTS`] subjects, so the subjects
//! are asked in chunks of at most that many, and it ends a batch early when
//! the batch passes its pending-bytes limit (an end of batch with messages
//! pending): the subjects not answered are asked again.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, message::StreamMessage};
use async_nats::{StatusCode, Subscriber};
use futures_util::StreamExt;

/// The most subjects one request may ask: the server answers a request
/// matching more with `413 Too Many Results` (`maxAllowedResponses` in the
/// server's multi-last handler, 1,024 since 2.11).
pub(super) const MAX_SUBJECTS: usize = 1024;

/// Chunks in flight at once. The server answers one connection's direct
/// gets one after the other, so more would only hold more replies in
/// memory.
const CHUNKS_IN_FLIGHT: usize = 4;

/// How long one request may take, to its end of batch, when the connection
/// sets no request timeout.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// The `204 EOB` status that ends a batch.
const END_OF_BATCH: u16 = 204;

/// What the batch get says of one subject.
#[derive(Debug, Clone)]
pub(super) enum Last {
    /// Its last message.
    Found(StreamMessage),
    /// The stream holds no message on it.
    Absent,
    /// The server refused the batch request (a server or replica without
    /// batch gets, or no direct-get responder): ask for this subject alone.
    Refused,
    /// The batch failed: why.
    Failed(String),
}

/// Why a request did not give its answer.
enum BatchError {
    /// See [`Last::Refused`].
    Refused,
    /// See [`Last::Failed`].
    Failed(String),
}

/// Whether `subject` can be asked by name in a batch: a plain subject, no
/// wildcard token (the server would expand it) and no space.
pub(super) fn plain(subject: &str) -> bool {
    !subject.is_empty()
        && !subject.contains(char::is_whitespace)
        && subject
            .split('.')
            .all(|t| !t.is_empty() && t != "*" && t != ">")
}

/// The last message of each of `subjects` (plain subjects of `stream`,
/// repeats allowed) in the order given, asked [`MAX_SUBJECTS`] at a time
/// with a few requests in flight; each request ends within the connection's
/// request timeout (10 s when it has none) or fails its subjects.
pub(super) async fn last_messages(
    js: &jetstream::Context,
    stream: &str,
    subjects: &[&str],
) -> Vec<Last> {
    let client = js.client();
    let wait = client.timeout().unwrap_or(DEFAULT_WAIT);
    // The body is about the subjects' length plus a few bytes each: keep a
    // request well under the largest message the server takes.
    let max_bytes = client.server_info().max_payload.max(64 * 1024) / 2;
    let mut distinct: Vec<&str> = subjects.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let chunks = chunked(&distinct, MAX_SUBJECTS, max_bytes);
    let answers: Vec<_> = futures_util::stream::iter(
        chunks
            .iter()
            .map(|chunk| async move { (*chunk, last_of_chunk(js, stream, chunk, wait).await) }),
    )
    .buffer_unordered(CHUNKS_IN_FLIGHT)
    .collect()
    .await;
    let mut by_subject: HashMap<&str, Last> = HashMap::with_capacity(distinct.len());
    for (chunk, mut answer) in answers {
        for subject in chunk {
            let last = match &mut answer {
                Ok(messages) => messages.remove(*subject).map_or(Last::Absent, Last::Found),
                Err(BatchError::Refused) => Last::Refused,
                Err(BatchError::Failed(why)) => Last::Failed(why.clone()),
            };
            by_subject.insert(subject, last);
        }
    }
    subjects
        .iter()
        .map(|s| by_subject.get(s).cloned().unwrap_or(Last::Absent))
        .collect()
}

/// `subjects` cut into runs of at most `most` subjects and about
/// `max_bytes` of request body.
fn chunked<'a>(subjects: &'a [&'a str], most: usize, max_bytes: usize) -> Vec<&'a [&'a str]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, s) in subjects.iter().enumerate() {
        // A quoted, comma-separated entry of the JSON array.
        let size = s.len() + 3;
        if i > start && (i - start == most || bytes + size > max_bytes) {
            chunks.push(&subjects[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < subjects.len() {
        chunks.push(&subjects[start..]);
    }
    chunks
}

/// The last messages of `subjects` (sorted, distinct, at most
/// [`MAX_SUBJECTS`]) that
/// have one, by subject. A batch ended early is followed by a request for
/// the subjects not answered yet; each such round answers at least one more,
/// so there are at most `subjects.len() + 1` of them.
async fn last_of_chunk(
    js: &jetstream::Context,
    stream: &str,
    subjects: &[&str],
    wait: Duration,
) -> Result<HashMap<String, StreamMessage>, BatchError> {
    let mut found: HashMap<String, StreamMessage> = HashMap::with_capacity(subjects.len());
    let mut asked: Vec<&str> = subjects.to_vec();
    for _ in 0..=subjects.len() {
        let before = found.len();
        let pending = request(js, stream, &asked, wait, &mut found).await?;
        if pending == 0 {
            return Ok(found);
        }
        if found.len() == before {
            return Err(BatchError::Failed(format!(
                "batch direct get on stream `{stream}`: the server ended a batch with {pending} messages pending and sent none"
            )));
        }
        asked.retain(|s| !found.contains_key(*s));
    }
    Err(BatchError::Failed(format!(
        "batch direct get on stream `{stream}`: the server kept ending batches early"
    )))
}

/// One batch request for `subjects` (sorted): their messages go into
/// `found` (those asked only); the number of messages the server said it
/// did not send.
async fn request(
    js: &jetstream::Context,
    stream: &str,
    subjects: &[&str],
    wait: Duration,
    found: &mut HashMap<String, StreamMessage>,
) -> Result<u64, BatchError> {
    let failed =
        |what: String| BatchError::Failed(format!("batch direct get on `{stream}`: {what}"));
    let client = js.client();
    let inbox = client.new_inbox();
    let mut replies: Subscriber = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| failed(format!("subscribing to the reply inbox: {e}")))?;
    let body = serde_json::json!({ "multi_last": subjects, "batch": subjects.len() });
    let body = serde_json::to_vec(&body).map_err(|e| failed(e.to_string()))?;
    js.send_request(
        format!("DIRECT.GET.{stream}"),
        async_nats::Request::new().inbox(inbox).payload(body.into()),
    )
    .await
    .map_err(|e| failed(format!("sending the request: {e}")))?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut received = 0;
    // At most one message per subject, then the end of the batch.
    for _ in 0..=subjects.len() {
        let msg = match tokio::time::timeout_at(deadline, replies.next()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => return Err(failed("the connection closed during the batch".into())),
            Err(_) => {
                return Err(failed(format!(
                    "no end of batch within {wait:?} ({received} of at most {} messages came)",
                    subjects.len()
                )));
            }
        };
        let description = msg.description.clone().unwrap_or_default();
        match msg.status {
            None | Some(StatusCode::OK) => {
                let msg = StreamMessage::try_from(msg)
                    .map_err(|e| failed(format!("a reply without its stream headers: {e}")))?;
                received += 1;
                if subjects.binary_search(&msg.subject.as_str()).is_ok() {
                    found.insert(msg.subject.to_string(), msg);
                }
            }
            Some(s) if s.as_u16() == END_OF_BATCH => {
                let pending = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Num-Pending"))
                    .and_then(|v| v.as_str().parse().ok())
                    .unwrap_or(0);
                return Ok(pending);
            }
            Some(StatusCode::NOT_FOUND) if received == 0 && description == "No Results" => {
                return Ok(0);
            }
            // 408: a server that does not know `multi_last` sees an empty
            // request; 503: nothing serves direct gets for the stream.
            Some(StatusCode::TIMEOUT | StatusCode::NO_RESPONDERS) => {
                return Err(BatchError::Refused);
            }
            Some(s) => return Err(failed(format!("the server answered {s} {description}"))),
        }
    }
    Err(failed(format!(
        "more than {} replies and no end of batch",
        subjects.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_subjects() {
        assert!(plain("market.okx.btc-usdt.l2_snapshot"));
        assert!(!plain("market.*.btc-usdt.l2_snapshot"));
        assert!(!plain("market.>"));
        assert!(!plain("market..x"));
        assert!(!plain("market.a b.x"));
        assert!(!plain(""));
    }

    #[test]
    fn chunks_by_count_and_bytes() {
        let subjects: Vec<String> = (0..2500).map(|i| format!("s.{i:04}")).collect();
        let refs: Vec<&str> = subjects.iter().map(String::as_str).collect();
        let chunks = chunked(&refs, MAX_SUBJECTS, usize::MAX);
        assert_eq!(
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [1024, 1024, 452]
        );
        assert_eq!(chunks.concat(), refs);
        // Each entry is 6 + 3 bytes: 10 fit in 95.
        let chunks = chunked(&refs[..25], MAX_SUBJECTS, 95);
        assert_eq!(
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        assert!(chunked(&[], MAX_SUBJECTS, 10).is_empty());
        // A subject longer than the budget still goes, alone.
        assert_eq!(chunked(&refs[..2], MAX_SUBJECTS, 1).len(), 2);
    }
}
