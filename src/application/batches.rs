//! Fast-ingest batches (nats-server 2.14+, streams with `allow_batched`):
//! the first attempt of each event in batched mode. JetStream stores each
//! message of a batch as it arrives and acks every `flow` messages instead
//! of each one; the publisher keeps at most two flow intervals
//! unacknowledged and ends the batch when its queue has been empty for a
//! moment (`BATCH_LINGER` in the publisher), so a quiet feed is confirmed
//! promptly by the batch's final ack.
//!
//! The protocol is carried in the reply subject of each message,
//! `<inbox>.<batch id>.<flow>.fail.<seq>.<op>.$FI` (op 0 start, 1 append,
//! 3 end without storing the message). The server answers on it:
//! `{"type":"ack","seq":N,"msgs":F}` (every message up to `N` is stored; next
//! ack after `F` more), `{"type":"err","seq":N,"error":…}` (message `N`
//! refused, the batch ends), `{"type":"gap",…}` (a message never arrived,
//! the batch ends) and, when the batch ends, `{"stream":…,"count":C}`
//! (messages `1..=C` stored) or an error without a type (the batch is
//! unknown: the server restarted or forgot it).
//!
//! Duplicates (measured on 2.15.1): a message whose `Nats-Msg-Id` the
//! stream already holds, from an earlier batch, a per-message publish or
//! the same batch, is skipped silently and acknowledged like any other;
//! the batch's `count` includes it. So resending an unconfirmed message
//! with its id can never store it twice, and a batch cannot say which of
//! its messages were duplicates: batched events are counted as published.
//!
//! Whatever a batch cannot confirm (its end, a disconnect, no progress
//! within the ack timeout) goes back to the publisher as a failure of each
//! unconfirmed message, which resends it alone with its per-message ack.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::acks::{Failure, Flight};

/// Operation codes in the reply subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// The first message: the server opens the batch and acks `seq 0`.
    Start = 0,
    /// Any later message.
    Append = 1,
    /// End the batch; this message is not stored.
    EndOfBatch = 3,
}

/// JetStream's error code for a stream without `allow_batched`.
const DISABLED: u16 = 10205;

/// A reply on the batch inbox.
#[derive(Debug, Deserialize)]
struct Reply {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    msgs: u16,
    count: Option<u64>,
    error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    err_code: u16,
    #[serde(default)]
    description: String,
}

impl ApiError {
    /// As an event's failure: JetStream itself unavailable is transient
    /// (the same rule as a per-message ack, [`super::acks::outcome`]).
    fn failure(&self) -> Failure {
        let text = format!("{} (code {})", self.description, self.code);
        if self.code == 503 && !matches!(self.err_code, 10077 | 10023) {
            Failure::Transient(text)
        } else {
            Failure::Refused(text)
        }
    }
}

/// What the publisher does with the events a reply or a check settles.
#[derive(Default)]
pub(super) struct Settled {
    /// Stored.
    pub stored: Vec<Flight>,
    /// Not confirmed: resend each with its per-message ack.
    pub failed: Vec<(Flight, Failure)>,
    /// The stream refuses batches: publish with acks from now on.
    pub disable: bool,
    /// The batch ended with its final ack.
    pub ended: bool,
}

/// One batch.
struct Batch {
    /// `<inbox>.<id>.<flow>.fail.`
    prefix: String,
    /// Last sequence sent.
    seq: u64,
    /// Highest sequence the server acked.
    acked: u64,
    /// Flow the server asked for.
    flow: u16,
    /// The server confirmed the start.
    started: bool,
    /// No more messages go into it (ended, or broken by an error).
    closed: bool,
    /// An end-of-batch message was sent.
    ended: bool,
    /// A message the server refused, with why.
    refused: Option<(u64, Failure)>,
    /// Subject of the first message (the end goes to the same stream).
    first: Option<async_nats::Subject>,
    /// Unconfirmed messages, in sequence order.
    flights: VecDeque<(u64, Flight)>,
    /// When it must have made progress.
    deadline: Instant,
}

/// The batches of one publisher: the open one, and the one before it while
/// its final ack is on its way (so a publisher never waits a round trip
/// between batches, and has at most two on the server).
pub(super) struct Batcher {
    inbox: String,
    tag: String,
    flow: u16,
    max_len: u64,
    timeout: Duration,
    n: u64,
    open: Option<Batch>,
    ending: Option<Batch>,
}

impl Batcher {
    /// Batches answered under `inbox` (two tokens, `_INBOX.<nuid>`),
    /// asking for a flow ack every `flow` messages.
    pub(super) fn new(inbox: &str, flow: u16, timeout: Duration) -> Self {
        let tag = inbox.rsplit('.').next().unwrap_or("b").to_owned();
        Batcher {
            inbox: inbox.to_owned(),
            tag,
            flow: flow.max(1),
            max_len: 1 << 20,
            timeout,
            n: 0,
            open: None,
            ending: None,
        }
    }

    /// The subject to subscribe to for every reply.
    pub(super) fn wildcard(&self) -> String {
        format!("{}.>", self.inbox)
    }

    /// Whether a batch is open or waiting for its end.
    pub(super) fn is_active(&self) -> bool {
        self.open.is_some() || self.ending.is_some()
    }

    /// Whether a batch is open and still takes messages.
    pub(super) fn is_open(&self) -> bool {
        self.open.as_ref().is_some_and(|b| !b.closed)
    }

    /// Whether the next message can be sent now.
    pub(super) fn can_send(&self) -> bool {
        match &self.open {
            None => true,
            Some(b) => {
                !b.closed
                    && b.seq < self.max_len
                    && (b.seq == 0 || b.started)
                    && b.acked + 2 * u64::from(b.flow) > b.seq + 1
            }
        }
    }

    /// Whether the open batch has messages and can end now (to do when the
    /// queue is empty, or when it is full).
    pub(super) fn should_end(&self) -> bool {
        self.ending.is_none()
            && self
                .open
                .as_ref()
                .is_some_and(|b| !b.closed && b.started && b.seq > 0)
    }

    /// Whether a flow ack is on its way for the open batch: the message
    /// that brings it has been sent, so stored events' slots come back
    /// without ending the batch. (An end costs a restart: the server gives
    /// a batch opened while another is open on its stream a flow of 1,
    /// doubled per ack.)
    pub(super) fn flow_ack_coming(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|b| b.started && !b.closed && b.seq >= b.acked + u64::from(b.flow))
    }

    /// Whether the open batch took its most messages: end it now.
    pub(super) fn full(&self) -> bool {
        self.should_end() && self.open.as_ref().is_some_and(|b| b.seq >= self.max_len)
    }

    /// Reserve the next message's place: its reply subject.
    pub(super) fn next_reply(&mut self, subject: &async_nats::Subject, now: Instant) -> String {
        let b = match &mut self.open {
            Some(b) => b,
            None => {
                self.n += 1;
                let prefix = format!("{}.{}n{}.{}.fail.", self.inbox, self.tag, self.n, self.flow);
                self.open.insert(Batch {
                    prefix,
                    seq: 0,
                    acked: 0,
                    flow: self.flow,
                    started: false,
                    closed: false,
                    ended: false,
                    refused: None,
                    first: None,
                    flights: VecDeque::new(),
                    deadline: now + self.timeout,
                })
            }
        };
        b.seq += 1;
        if b.first.is_none() {
            b.first = Some(subject.clone());
        }
        let op = if b.seq == 1 { Op::Start } else { Op::Append };
        reply(&b.prefix, b.seq, op)
    }

    /// Record the message sent with the last reserved reply.
    pub(super) fn sent(&mut self, flight: Flight) {
        if let Some(b) = &mut self.open {
            b.flights.push_back((b.seq, flight));
        }
    }

    /// The end-of-batch message to send: its subject and reply. The open
    /// batch becomes the ending one.
    pub(super) fn end(&mut self, now: Instant) -> Option<(async_nats::Subject, String)> {
        if self.ending.is_some() {
            return None;
        }
        let mut b = self.open.take()?;
        let Some(first) = b.first.clone() else {
            self.open = Some(b);
            return None;
        };
        b.closed = true;
        b.ended = true;
        b.seq += 1;
        b.deadline = now + self.timeout;
        let end = reply(&b.prefix, b.seq, Op::EndOfBatch);
        self.ending = Some(b);
        Some((first, end))
    }

    /// The slot of the batch a reply subject belongs to.
    fn slot(&mut self, subject: &str) -> Option<&mut Option<Batch>> {
        let matches =
            |b: &Option<Batch>| b.as_ref().is_some_and(|b| subject.starts_with(&b.prefix));
        if matches(&self.open) {
            Some(&mut self.open)
        } else if matches(&self.ending) {
            Some(&mut self.ending)
        } else {
            None
        }
    }

    /// Take a reply on the batch inbox.
    pub(super) fn on_reply(&mut self, msg: &async_nats::Message, now: Instant) -> Settled {
        let mut out = Settled::default();
        let timeout = self.timeout;
        // A reply to an earlier batch, already settled, finds no slot.
        let Some(slot) = self.slot(msg.subject.as_str()) else {
            return out;
        };
        if msg.payload.is_empty() {
            // No responders (no stream, or a leader being elected).
            let why = Failure::Transient(format!(
                "no JetStream ack: status {}",
                msg.status.map_or(0, |s| s.as_u16())
            ));
            fail_all(slot, &mut out, why);
            return out;
        }
        let r: Reply = match serde_json::from_slice(&msg.payload) {
            Ok(r) => r,
            Err(e) => {
                let why = Failure::Transient(format!("unreadable batch ack: {e}"));
                fail_all(slot, &mut out, why);
                return out;
            }
        };
        let Some(b) = slot.as_mut() else {
            return out;
        };
        match (r.kind.as_deref(), r.error) {
            (Some("ack"), _) => {
                b.started = true;
                b.flow = r.msgs.max(1);
                b.deadline = now + timeout;
                if r.seq > b.acked {
                    b.acked = r.seq;
                }
                while b.flights.front().is_some_and(|(s, _)| *s <= b.acked) {
                    out.stored.extend(b.flights.pop_front().map(|(_, f)| f));
                }
            }
            (Some("err"), Some(e)) => {
                b.closed = true;
                b.refused = Some((r.seq, e.failure()));
            }
            (Some(_), _) => b.closed = true,
            (None, None) => {
                // The end: messages 1..=count are stored.
                let count = r.count.unwrap_or(0);
                let mut b = slot.take().expect("matched above");
                out.ended = true;
                for (s, f) in b.flights.drain(..) {
                    if s <= count {
                        out.stored.push(f);
                    } else {
                        let why = match &b.refused {
                            Some((r, why)) if *r == s => why.clone(),
                            _ => Failure::Transient("fast batch ended before this event".into()),
                        };
                        out.failed.push((f, why));
                    }
                }
            }
            (None, Some(e)) => {
                out.disable = e.err_code == DISABLED;
                let why =
                    Failure::Transient(format!("fast batch: {} (code {})", e.description, e.code));
                fail_all(slot, &mut out, why);
            }
        }
        out
    }

    /// Give up on a batch that made no progress within the ack timeout, or
    /// on every batch when NATS is disconnected (a late reply is ignored).
    pub(super) fn expire(&mut self, now: Instant, connected: bool) -> Settled {
        let mut out = Settled::default();
        let why = if connected {
            "no fast batch ack within the ack timeout"
        } else {
            "NATS disconnected before the fast batch ack"
        };
        for slot in [&mut self.open, &mut self.ending] {
            if slot
                .as_ref()
                .is_some_and(|b| !connected || b.deadline <= now)
            {
                fail_all(slot, &mut out, Failure::Transient(why.into()));
            }
        }
        out
    }

    /// Take every waiting message (shutdown).
    pub(super) fn drain(&mut self) -> impl Iterator<Item = Flight> + use<> {
        [self.ending.take(), self.open.take()]
            .into_iter()
            .flatten()
            .flat_map(|b| b.flights.into_iter().map(|(_, f)| f))
    }
}

/// Settle every message of the batch in `slot` as failed, and forget it.
fn fail_all(slot: &mut Option<Batch>, out: &mut Settled, why: Failure) {
    if let Some(mut b) = slot.take() {
        out.failed
            .extend(b.flights.drain(..).map(|(_, f)| (f, why.clone())));
    }
}

fn reply(prefix: &str, seq: u64, op: Op) -> String {
    let mut s = String::with_capacity(prefix.len() + 26);
    s.push_str(prefix);
    s.push_str(itoa::Buffer::new().format(seq));
    s.push('.');
    s.push(char::from(b'0' + op as u8));
    s.push_str(".$FI");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::application::acks::tests::flight;
    use std::sync::Arc;

    fn reply_msg(subject: &str, payload: &str) -> async_nats::Message {
        async_nats::Message {
            subject: subject.into(),
            reply: None,
            payload: bytes::Bytes::from(payload.to_owned()),
            headers: None,
            status: None,
            description: None,
            length: payload.len(),
        }
    }

    fn ids(v: &[Flight]) -> Vec<&str> {
        v.iter().map(|f| f.m.id.as_str()).collect()
    }

    #[test]
    fn a_batch_starts_waits_for_its_start_ack_and_stalls_after_two_flows() {
        let permits = Arc::new(tokio::sync::Semaphore::new(64));
        let now = Instant::now();
        let mut b = Batcher::new("_INBOX.abc", 2, Duration::from_secs(5));
        assert_eq!(b.wildcard(), "_INBOX.abc.>");
        let subject: async_nats::Subject = "market.v.x.trade".into();
        let r1 = b.next_reply(&subject, now);
        assert_eq!(r1, "_INBOX.abc.abcn1.2.fail.1.0.$FI");
        b.sent(flight(&permits, "e1"));
        assert!(!b.can_send(), "waits for the start ack");
        let s = b.on_reply(&reply_msg(&r1, r#"{"type":"ack","seq":0,"msgs":2}"#), now);
        assert!(s.stored.is_empty() && b.can_send());
        for i in 2..=3 {
            let r = b.next_reply(&subject, now);
            assert!(r.ends_with(&format!(".{i}.1.$FI")));
            b.sent(flight(&permits, &format!("e{i}")));
        }
        assert!(!b.can_send(), "two flow intervals unacked");
        let s = b.on_reply(&reply_msg(&r1, r#"{"type":"ack","seq":2,"msgs":2}"#), now);
        assert_eq!(ids(&s.stored), ["e1", "e2"]);
        assert!(b.can_send() && b.should_end());
        let (to, end) = b.end(now).unwrap();
        assert_eq!(
            (to.as_str(), end.ends_with(".4.3.$FI")),
            ("market.v.x.trade", true)
        );
        let s = b.on_reply(
            &reply_msg(&end, r#"{"stream":"M","seq":9,"batch":"abcn1","count":3}"#),
            now,
        );
        assert_eq!(ids(&s.stored), ["e3"]);
        assert!(!b.is_active() && b.can_send());
        assert!(b.next_reply(&subject, now).contains(".abcn2.2.fail.1.0."));
    }

    #[test]
    fn the_next_batch_starts_while_the_last_one_waits_for_its_final_ack() {
        let permits = Arc::new(tokio::sync::Semaphore::new(64));
        let now = Instant::now();
        let mut b = Batcher::new("_INBOX.k", 10, Duration::from_secs(5));
        let subject: async_nats::Subject = "market.v.x.trade".into();
        let r1 = b.next_reply(&subject, now);
        b.sent(flight(&permits, "e1"));
        b.on_reply(&reply_msg(&r1, r#"{"type":"ack","seq":0,"msgs":10}"#), now);
        let (_, end1) = b.end(now).unwrap();
        assert!(b.can_send(), "a second batch may start");
        let r2 = b.next_reply(&subject, now);
        assert!(r2.contains(".kn2.10.fail.1.0."));
        b.sent(flight(&permits, "e2"));
        b.on_reply(&reply_msg(&r2, r#"{"type":"ack","seq":0,"msgs":10}"#), now);
        assert!(
            !b.should_end() && b.end(now).is_none(),
            "one ending at a time"
        );
        let s = b.on_reply(
            &reply_msg(&end1, r#"{"stream":"M","seq":1,"count":1}"#),
            now,
        );
        assert_eq!((ids(&s.stored), s.ended), (vec!["e1"], true));
        assert!(b.should_end() && b.is_active());
        let gone = b.expire(now, false);
        assert_eq!(
            ids(&gone.failed.into_iter().map(|(f, _)| f).collect::<Vec<_>>()),
            ["e2"]
        );
    }

    #[test]
    fn a_refused_message_fails_alone_and_the_rest_after_it_are_resent() {
        let permits = Arc::new(tokio::sync::Semaphore::new(64));
        let now = Instant::now();
        let mut b = Batcher::new("_INBOX.q", 10, Duration::from_secs(5));
        let subject: async_nats::Subject = "market.v.x.trade".into();
        let r1 = b.next_reply(&subject, now);
        b.sent(flight(&permits, "e1"));
        b.on_reply(&reply_msg(&r1, r#"{"type":"ack","seq":0,"msgs":10}"#), now);
        for i in 2..=4 {
            b.next_reply(&subject, now);
            b.sent(flight(&permits, &format!("e{i}")));
        }
        let err = r#"{"type":"err","seq":3,"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#;
        assert!(b.on_reply(&reply_msg(&r1, err), now).stored.is_empty());
        assert!(!b.can_send(), "a broken batch takes nothing more");
        let s = b.on_reply(
            &reply_msg(&r1, r#"{"stream":"M","seq":2,"batch":"qn1","count":2}"#),
            now,
        );
        assert_eq!(ids(&s.stored), ["e1", "e2"]);
        let failed: Vec<(&str, bool)> = s
            .failed
            .iter()
            .map(|(f, w)| (f.m.id.as_str(), matches!(w, Failure::Refused(_))))
            .collect();
        assert_eq!(failed, [("e3", true), ("e4", false)]);
        // A late reply to the settled batch changes nothing.
        let late =
            r#"{"error":{"code":400,"err_code":10208,"description":"batch publish ID unknown"}}"#;
        let s = b.on_reply(&reply_msg(&r1, late), now);
        assert!(s.stored.is_empty() && s.failed.is_empty());
    }

    #[test]
    fn silence_a_disconnect_or_a_disabled_stream_sends_everything_back() {
        let permits = Arc::new(tokio::sync::Semaphore::new(64));
        let now = Instant::now();
        let subject: async_nats::Subject = "market.v.x.trade".into();
        let mut b = Batcher::new("_INBOX.z", 10, Duration::from_secs(5));
        b.next_reply(&subject, now);
        b.sent(flight(&permits, "e1"));
        assert!(b.expire(now, true).failed.is_empty());
        assert_eq!(b.expire(now + Duration::from_secs(6), true).failed.len(), 1);
        let r = b.next_reply(&subject, now);
        b.sent(flight(&permits, "e2"));
        assert_eq!(b.expire(now, false).failed.len(), 1, "disconnected");
        let r2 = b.next_reply(&subject, now);
        assert_ne!(r, r2, "a new batch id");
        b.sent(flight(&permits, "e3"));
        let off = r#"{"error":{"code":400,"err_code":10205,"description":"batch publish not enabled on stream"}}"#;
        let s = b.on_reply(&reply_msg(&r2, off), now);
        assert!(s.disable && s.failed.len() == 1 && permits.available_permits() == 63);
    }

    #[test]
    fn a_flow_ack_is_coming_once_the_message_that_brings_it_is_sent() {
        let permits = Arc::new(tokio::sync::Semaphore::new(64));
        let now = Instant::now();
        let subject: async_nats::Subject = "market.v.x.trade".into();
        let mut b = Batcher::new("_INBOX.f", 4, Duration::from_secs(5));
        assert!(!b.flow_ack_coming(), "no batch");
        let r1 = b.next_reply(&subject, now);
        b.sent(flight(&permits, "e1"));
        assert!(!b.flow_ack_coming(), "not started");
        b.on_reply(&reply_msg(&r1, r#"{"type":"ack","seq":0,"msgs":4}"#), now);
        for i in 2..=3 {
            b.next_reply(&subject, now);
            b.sent(flight(&permits, &format!("e{i}")));
        }
        assert!(!b.flow_ack_coming(), "3 of a flow of 4 sent: no ack is due");
        b.next_reply(&subject, now);
        b.sent(flight(&permits, "e4"));
        assert!(b.flow_ack_coming(), "the 4th brings a flow ack");
        let s = b.on_reply(&reply_msg(&r1, r#"{"type":"ack","seq":4,"msgs":4}"#), now);
        assert_eq!(s.stored.len(), 4);
        assert!(
            !b.flow_ack_coming(),
            "confirmed; the next one is 4 messages away"
        );
        b.end(now);
        assert!(!b.flow_ack_coming(), "ended");
    }
}
