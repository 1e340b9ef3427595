//! Subjects of a book, and fetching its last snapshot (one book, or many at
//! once when a program starts with a whole universe: batched by
//! `batch_get` where the server can).

use async_nats::jetstream::{self, message::StreamMessage, stream::Stream};
use futures_util::StreamExt;

use super::ClientError;
use super::batch_get::{self, Last};
use crate::domain::{BookSnapshot, Event, Payload, Timestamp, subject_token};
use crate::infrastructure::nats::ServerFeatures;
use crate::serialization::decode;

/// The subject token of `symbol`: kept as is when it already is one
/// (`btc-usdt_usdt`), else derived from a canonical symbol (`BTC/USDT:USDT`).
pub fn token_of(symbol: &str) -> String {
    let is_token = !symbol.is_empty()
        && symbol
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~'));
    if is_token {
        symbol.to_owned()
    } else {
        subject_token(symbol)
    }
}

/// The subjects of one book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    /// `market.<venue>.<token>.l2_snapshot`
    pub snapshot: String,
    /// `market.<venue>.<token>.l2_orderbook`
    pub book: String,
    /// `market.<venue>.<token>.status`
    pub status: String,
    /// `market.<venue>.<token>.*`: what the replay reads (one filter subject
    /// works on every JetStream server; other data types are skipped).
    pub instrument: String,
}

impl Subjects {
    /// The subjects of `venue`'s book of `symbol` (a token or a canonical
    /// symbol).
    pub fn new(venue: &str, symbol: &str) -> Self {
        let base = format!("market.{venue}.{}", token_of(symbol));
        Subjects {
            snapshot: format!("{base}.l2_snapshot"),
            book: format!("{base}.l2_orderbook"),
            status: format!("{base}.status"),
            instrument: format!("{base}.*"),
        }
    }
}

/// A snapshot as stored.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The decoded event (its payload is a [`Payload::BookSnapshot`]).
    pub event: Event,
    /// Its sequence in the snapshot stream.
    pub sequence: u64,
    /// When the stream stored it (the server's clock).
    pub stored: Timestamp,
}

impl Fetched {
    /// The snapshot.
    pub fn snapshot(&self) -> &BookSnapshot {
        match &self.event.payload {
            Payload::BookSnapshot(s) => s,
            _ => unreachable!("checked when fetched"),
        }
    }
}

/// The stream capturing `subject`.
pub(super) async fn stream_for(
    js: &jetstream::Context,
    subject: &str,
) -> Result<Stream, ClientError> {
    use jetstream::context::GetStreamByNameErrorKind as K;
    let name = js
        .stream_by_subject(subject)
        .await
        .map_err(|e| match e.kind() {
            K::NotFound => ClientError::NoStream {
                subject: subject.to_owned(),
            },
            _ => ClientError::JetStream(format!("finding the stream of `{subject}`: {e}")),
        })?;
    js.get_stream(&name)
        .await
        .map_err(|e| ClientError::JetStream(format!("stream `{name}`: {e}")))
}

/// The last message on `subject` in `stream`, decoded as a snapshot.
pub(super) async fn last_in(stream: &Stream, subject: &str) -> Result<Fetched, ClientError> {
    let no_snapshot = || ClientError::NoSnapshot {
        subject: subject.to_owned(),
    };
    let msg = if stream.cached_info().config.allow_direct {
        use jetstream::stream::DirectGetErrorKind as K;
        stream
            .direct_get_last_for_subject(subject)
            .await
            .map_err(|e| match e.kind() {
                K::NotFound => no_snapshot(),
                _ => ClientError::JetStream(format!("direct get of `{subject}`: {e}")),
            })?
    } else {
        use jetstream::stream::LastRawMessageErrorKind as K;
        stream
            .get_last_raw_message_by_subject(subject)
            .await
            .map_err(|e| match e.kind() {
                K::NoMessageFound => no_snapshot(),
                _ => ClientError::JetStream(format!("last message of `{subject}`: {e}")),
            })?
    };
    snapshot_of(subject, &msg)
}

/// A stored message of `subject`, decoded as a snapshot.
fn snapshot_of(subject: &str, msg: &StreamMessage) -> Result<Fetched, ClientError> {
    let bad = |reason: String| ClientError::BadSnapshot {
        subject: subject.to_owned(),
        reason,
    };
    let ct = msg.headers.get("Content-Type").map(|v| v.as_str());
    let event = decode(ct, &msg.payload).map_err(|e| bad(e.to_string()))?;
    if !matches!(event.payload, Payload::BookSnapshot(_)) {
        return Err(bad(format!("it is a {} event", event.data_type())));
    }
    let stored = i64::try_from(msg.time.unix_timestamp_nanos()).unwrap_or(i64::MAX);
    Ok(Fetched {
        event,
        sequence: msg.sequence,
        stored: Timestamp(stored),
    })
}

/// The last snapshot of `venue`'s book of `symbol`.
pub async fn last_snapshot(
    js: &jetstream::Context,
    venue: &str,
    symbol: &str,
) -> Result<Fetched, ClientError> {
    let subject = Subjects::new(venue, symbol).snapshot;
    let stream = stream_for(js, &subject).await?;
    last_in(&stream, &subject).await
}

/// The last snapshots of many books, in the order of `books`.
///
/// On servers 2.11 and later, when the snapshot stream allows direct reads,
/// the books it captures are read with batch direct gets (`multi_last`,
/// up to 1,024 subjects a request, a few requests in flight, each bounded
/// by the connection's request timeout). Otherwise (older servers, streams
/// without `allow_direct`, books of other streams, a batch the server
/// refuses) each book is one request, `concurrency` in flight. The stream
/// is looked up once for the first book and reused for every book it
/// captures.
pub async fn last_snapshots(
    js: &jetstream::Context,
    books: &[(String, String)],
    concurrency: usize,
) -> Vec<Result<Fetched, ClientError>> {
    let first = match books.first() {
        Some((v, s)) => stream_for(js, &Subjects::new(v, s).snapshot).await,
        None => return Vec::new(),
    };
    let subjects: Vec<String> = books
        .iter()
        .map(|(venue, symbol)| Subjects::new(venue, symbol).snapshot)
        .collect();
    // The default layout has one snapshot stream: reuse it when it captures
    // the subject, else look up the subject's stream.
    let captured = |subject: &str| {
        first.as_ref().ok().filter(|s| {
            s.cached_info()
                .config
                .subjects
                .iter()
                .any(|f| matches(f, subject))
        })
    };
    let mut results: Vec<Option<Result<Fetched, ClientError>>> =
        subjects.iter().map(|_| None).collect();
    if let Ok(stream) = &first
        && batch_reads(js, stream)
    {
        let batched: Vec<usize> = (0..subjects.len())
            .filter(|&i| batch_get::plain(&subjects[i]) && captured(&subjects[i]).is_some())
            .collect();
        let asked: Vec<&str> = batched.iter().map(|&i| subjects[i].as_str()).collect();
        let name = &stream.cached_info().config.name;
        let answers = batch_get::last_messages(js, name, &asked).await;
        for (&i, last) in batched.iter().zip(answers) {
            let subject = &subjects[i];
            results[i] = match last {
                Last::Found(msg) => Some(snapshot_of(subject, &msg)),
                Last::Absent => Some(Err(ClientError::NoSnapshot {
                    subject: subject.clone(),
                })),
                Last::Failed(why) => Some(Err(ClientError::JetStream(why))),
                Last::Refused => None,
            };
        }
    }
    let rest: Vec<usize> = (0..subjects.len())
        .filter(|&i| results[i].is_none())
        .collect();
    let one_by_one: Vec<_> = futures_util::stream::iter(rest.iter().map(|&i| {
        let subject = &subjects[i];
        let stream = captured(subject);
        async move {
            match stream {
                Some(stream) => last_in(stream, subject).await,
                None => last_in(&stream_for(js, subject).await?, subject).await,
            }
        }
    }))
    .buffered(concurrency.max(1))
    .collect()
    .await;
    for (i, r) in rest.into_iter().zip(one_by_one) {
        results[i] = Some(r);
    }
    results.into_iter().flatten().collect()
}

/// Whether `stream`'s last messages can be read with batch direct gets: the
/// server is 2.11 or later and the stream allows direct reads.
fn batch_reads(js: &jetstream::Context, stream: &Stream) -> bool {
    ServerFeatures::of_client(&js.client()).batch_direct_get
        && stream.cached_info().config.allow_direct
}

/// Whether NATS subject filter `filter` matches `subject` (`*`: one token,
/// `>`: the rest).
pub(super) fn matches(filter: &str, subject: &str) -> bool {
    let mut s = subject.split('.');
    for f in filter.split('.') {
        match (f, s.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (f, Some(t)) if f == t => {}
            _ => return false,
        }
    }
    s.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_subjects() {
        assert_eq!(token_of("btc-usdt_usdt"), "btc-usdt_usdt");
        assert_eq!(token_of("BTC/USDT:USDT"), "btc-usdt_usdt");
        let s = Subjects::new("okx", "BTC/USDT");
        assert_eq!(s.snapshot, "market.okx.btc-usdt.l2_snapshot");
        assert_eq!(s.instrument, "market.okx.btc-usdt.*");
    }

    #[test]
    fn subject_filters() {
        assert!(matches(
            "market.*.*.l2_snapshot",
            "market.okx.btc-usdt.l2_snapshot"
        ));
        assert!(matches("market.>", "market.okx.btc-usdt.l2_snapshot"));
        assert!(!matches(
            "market.*.*.trade",
            "market.okx.btc-usdt.l2_snapshot"
        ));
        assert!(!matches("market.*", "market.okx.btc-usdt"));
        assert!(!matches("market.okx.btc-usdt.x.y", "market.okx.btc-usdt.x"));
    }
}
