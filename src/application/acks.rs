//! Publish acks matched by reply subject. Each message goes out with its own
//! reply subject `<inbox>.<n>`; one subscription on `<inbox>.*` receives
//! every JetStream ack, and this table finds the message it answers. That
//! replaces a request (an inbox string, a response channel and a timer) per
//! message with one map entry; acks that never come are found by a sweep in
//! send order.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;

use super::pipeline::Outgoing;

/// A message waiting for its ack (or to be sent again).
pub(super) struct Flight {
    /// The message (kept for a retry).
    pub m: Outgoing,
    /// Retries after JetStream refused it.
    pub attempt: usize,
    /// Transient failures in a row (paces the next attempt).
    pub transient: u32,
    /// Whether any attempt was handed to the client (it may then have been
    /// stored even without an ack).
    pub sent: bool,
    /// Its place in the in-flight window, held until the flight is dropped.
    pub _slot: OwnedSemaphorePermit,
}

/// Why an attempt did not end in an ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    /// The broker could not answer now (disconnected, no ack in time, no
    /// responders): send again with the same id, without limit.
    Transient(String),
    /// JetStream answered with an error: it did not store the message.
    Refused(String),
}

/// The messages in flight on one publisher, by reply subject number.
pub(super) struct Inflight {
    prefix: String,
    next: u64,
    timeout: Duration,
    flights: HashMap<u64, Flight, foldhash::fast::RandomState>,
    /// Send order, for the timeout sweep (entries already acked are skipped).
    order: VecDeque<(u64, Instant)>,
}

impl Inflight {
    /// A table for replies under `inbox`, expiring after `timeout`.
    pub(super) fn new(inbox: &str, timeout: Duration) -> Self {
        Inflight {
            prefix: format!("{inbox}."),
            next: 0,
            timeout,
            flights: HashMap::default(),
            order: VecDeque::new(),
        }
    }

    /// The subject to subscribe to for every reply.
    pub(super) fn wildcard(&self) -> String {
        format!("{}*", self.prefix)
    }

    /// Reserve the next reply subject: its number and text.
    pub(super) fn reply(&mut self) -> (u64, String) {
        self.next += 1;
        let mut s = String::with_capacity(self.prefix.len() + 20);
        s.push_str(&self.prefix);
        s.push_str(itoa::Buffer::new().format(self.next));
        (self.next, s)
    }

    /// Record a message sent with reply number `n`.
    pub(super) fn insert(&mut self, n: u64, flight: Flight, now: Instant) {
        self.flights.insert(n, flight);
        self.order.push_back((n, now + self.timeout));
    }

    /// The message a reply on `subject` answers, if still waiting.
    pub(super) fn take(&mut self, subject: &str) -> Option<Flight> {
        let n = subject.strip_prefix(&self.prefix)?.parse().ok()?;
        let f = self.flights.remove(&n);
        // Keep the sweep queue short when acks come in order.
        while let Some((front, _)) = self.order.front() {
            if self.flights.contains_key(front) {
                break;
            }
            self.order.pop_front();
        }
        f
    }

    /// The oldest message whose ack is overdue at `now`.
    pub(super) fn expired(&mut self, now: Instant) -> Option<Flight> {
        while let Some(&(n, deadline)) = self.order.front() {
            if !self.flights.contains_key(&n) {
                self.order.pop_front();
                continue;
            }
            if deadline > now {
                return None;
            }
            self.order.pop_front();
            return self.flights.remove(&n);
        }
        None
    }

    /// How many messages wait for their ack.
    pub(super) fn len(&self) -> usize {
        self.flights.len()
    }

    /// Whether nothing is waiting.
    pub(super) fn is_empty(&self) -> bool {
        self.flights.is_empty()
    }

    /// Take every waiting message (shutdown).
    pub(super) fn drain(&mut self) -> impl Iterator<Item = Flight> + '_ {
        self.order.clear();
        self.flights.drain().map(|(_, f)| f)
    }
}

#[derive(Deserialize)]
struct Ack {
    #[serde(default)]
    duplicate: bool,
    error: Option<AckError>,
}

#[derive(Deserialize)]
struct AckError {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    err_code: u16,
    #[serde(default)]
    description: String,
}

/// JetStream's error code for a store that failed (a stream limit reached
/// with `discard = "new"`).
const STORE_FAILED: u16 = 10077;
/// JetStream's error code for a server out of storage resources.
const INSUFFICIENT_RESOURCES: u16 = 10023;

/// What a JetStream reply says: stored (`Ok(duplicate)`), refused, or no
/// answer yet.
pub(super) fn outcome(msg: &async_nats::Message) -> Result<bool, Failure> {
    if let Some(status) = msg.status
        && msg.payload.is_empty()
    {
        // 503: no stream listens on the subject (no responders), as while a
        // stream leader is being elected: the broker cannot answer now.
        return Err(Failure::Transient(format!(
            "no JetStream ack: status {status}"
        )));
    }
    match serde_json::from_slice::<Ack>(&msg.payload) {
        // 503 inside an error ack is JetStream itself unavailable (no
        // quorum, leader election): retry. Other codes, and the 503s that
        // say the stream cannot take the message (store failed: a limit
        // with `discard = "new"`; insufficient resources), are refusals.
        Ok(Ack { error: Some(e), .. })
            if e.code == 503 && !matches!(e.err_code, STORE_FAILED | INSUFFICIENT_RESOURCES) =>
        {
            Err(Failure::Transient(format!(
                "{} (code {})",
                e.description, e.code
            )))
        }
        Ok(Ack { error: Some(e), .. }) => Err(Failure::Refused(format!(
            "{} (code {})",
            e.description, e.code
        ))),
        Ok(a) => Ok(a.duplicate),
        Err(e) => Err(Failure::Refused(format!("unreadable ack: {e}"))),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::sync::Arc;

    pub(crate) fn flight(permits: &Arc<tokio::sync::Semaphore>, id: &str) -> Flight {
        Flight {
            m: Outgoing {
                subject: "market.v.x.trade".into(),
                id: id.into(),
                venue: Arc::from("v"),
                data_type: crate::domain::DataType::Trade,
                payload: bytes::Bytes::new(),
                received: Instant::now(),
            },
            attempt: 0,
            transient: 0,
            sent: true,
            _slot: permits.clone().try_acquire_owned().unwrap(),
        }
    }

    #[test]
    fn replies_find_their_message_and_silence_expires_in_send_order() {
        let permits = Arc::new(tokio::sync::Semaphore::new(8));
        let mut t = Inflight::new("_INBOX.abc", Duration::from_secs(5));
        assert_eq!(t.wildcard(), "_INBOX.abc.*");
        let t0 = Instant::now();
        let mut subjects = Vec::new();
        for id in ["a", "b", "c"] {
            let (n, s) = t.reply();
            t.insert(n, flight(&permits, id), t0);
            subjects.push(s);
        }
        assert_eq!(subjects[1], "_INBOX.abc.2");
        assert_eq!(t.take(&subjects[1]).unwrap().m.id, "b");
        assert!(t.take(&subjects[1]).is_none(), "answered once");
        assert!(t.take("_INBOX.other.1").is_none());
        assert!(t.expired(t0 + Duration::from_secs(1)).is_none());
        let late = t0 + Duration::from_secs(6);
        assert_eq!(t.expired(late).unwrap().m.id, "a");
        assert_eq!(t.expired(late).unwrap().m.id, "c");
        assert!(t.expired(late).is_none() && t.is_empty());
        assert_eq!(
            permits.available_permits(),
            8,
            "permits released with the flights"
        );
    }

    #[test]
    fn acks_errors_and_missing_responders_are_told_apart() {
        let msg = |payload: &str, status: Option<u16>| async_nats::Message {
            subject: "_INBOX.x.1".into(),
            reply: None,
            payload: bytes::Bytes::from(payload.to_owned()),
            headers: None,
            status: status.map(|s| async_nats::StatusCode::from_u16(s).unwrap()),
            description: None,
            length: payload.len(),
        };
        assert_eq!(outcome(&msg(r#"{"stream":"M","seq":7}"#, None)), Ok(false));
        let transient = |r: Result<bool, Failure>| matches!(r, Err(Failure::Transient(_)));
        assert!(transient(outcome(&msg(
            r#"{"error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}"#,
            None
        ))));
        assert_eq!(
            outcome(&msg(r#"{"stream":"M","seq":7,"duplicate":true}"#, None)),
            Ok(true)
        );
        let refused = outcome(&msg(
            r#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#,
            None,
        ));
        assert!(
            matches!(refused, Err(Failure::Refused(m)) if m.contains("maximum messages exceeded"))
        );
        assert!(transient(outcome(&msg("", Some(503)))));
    }
}
