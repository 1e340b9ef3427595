//! The bounded queues between venue connections and the publisher, one per
//! data type, each with its full-queue policy (block or drop the newest).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use super::metrics::{Metrics, TypeLabel};
use crate::config::relay::raw::WhenFull;
use crate::domain::{DataType, Event, Payload};
use crate::serialization::PayloadFormat;

/// An encoded event on its way to JetStream.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// NATS subject (shared bytes: retries clone it without copying).
    pub subject: async_nats::Subject,
    /// Deterministic event id (`Nats-Msg-Id`).
    pub id: String,
    /// Venue id.
    pub venue: Arc<str>,
    /// Data type.
    pub data_type: DataType,
    /// Encoded payload.
    pub payload: Bytes,
    /// When the frame that produced it was received (for ack latency).
    pub received: Instant,
}

impl Outgoing {
    /// Encode an event for the publisher (its id moves into the message),
    /// building its subject.
    pub fn encode(ev: Event, format: PayloadFormat, received: Instant) -> Outgoing {
        let subject = ev.subject().into();
        Self::encode_to(ev, subject, format, received)
    }

    /// Encode an event whose subject is known (see [`Subjects`]).
    pub fn encode_to(
        ev: Event,
        subject: async_nats::Subject,
        format: PayloadFormat,
        received: Instant,
    ) -> Outgoing {
        // About 320 bytes of envelope, plus up to ~48 per book level: one
        // allocation, no regrowth for all but the largest images.
        let levels = match &ev.payload {
            Payload::Book(u) | Payload::BookTop(u) => u.bids.len() + u.asks.len(),
            Payload::BookSnapshot(s) => s.book.bids.len() + s.book.asks.len(),
            _ => 0,
        };
        let mut buf = Vec::with_capacity(320 + 48 * levels);
        format.encode(&ev, &mut buf);
        Outgoing {
            subject,
            data_type: ev.data_type(),
            id: ev.id.0,
            venue: ev.venue,
            payload: Bytes::from(buf),
            received,
        }
    }
}

/// The subjects of one venue's events, built once per instrument and data
/// type: each event then takes a reference-counted copy (no string to
/// build, no bytes to copy or promote to shared when the publisher clones
/// it). Holds at most [`Subjects::MAX`] instruments; past that it starts
/// afresh (instrument sets change by reload and discovery).
#[derive(Default)]
pub struct Subjects {
    by_token: foldhash::HashMap<Box<str>, [Option<async_nats::Subject>; DataType::ALL.len()]>,
}

impl Subjects {
    /// Instruments kept before the cache is cleared.
    pub const MAX: usize = 4096;

    /// The subject of `ev` (whose venue is this cache's venue).
    pub fn of(&mut self, ev: &Event) -> async_nats::Subject {
        let t = ev.data_type();
        let token = &*ev.instrument.token;
        if let Some(s) = self
            .by_token
            .get(token)
            .and_then(|row| row[t.index()].as_ref())
        {
            return s.clone();
        }
        if self.by_token.len() >= Self::MAX && !self.by_token.contains_key(token) {
            self.by_token.clear();
        }
        let subject: async_nats::Subject = ev.subject().into();
        // The first clone of bytes built from a vector moves them to a
        // shared allocation; do it here, once, not on an event's clone.
        let kept = subject.clone();
        self.by_token.entry(token.into()).or_default()[t.index()] = Some(kept);
        subject
    }
}

/// The sending side of all queues (cheap to clone, one per connection).
#[derive(Clone)]
pub struct Queues {
    txs: Arc<[(mpsc::Sender<Outgoing>, WhenFull)]>,
}

/// The receiving sides, one per data type, for the publishers.
pub type Receivers = Vec<(DataType, mpsc::Receiver<Outgoing>)>;

/// Why an event was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotQueued {
    /// The queue was full and its policy is `drop_newest`.
    Dropped,
    /// The publisher is gone (shutting down).
    Closed,
}

impl Queues {
    /// Create the queues from `(capacity, policy)` per data type index.
    pub fn new(spec: &[(usize, WhenFull)]) -> (Queues, Receivers) {
        let mut txs = Vec::new();
        let mut rxs = Vec::new();
        for t in DataType::ALL {
            let (cap, policy) = spec
                .get(t.index())
                .copied()
                .unwrap_or((65_536, WhenFull::Block));
            let (tx, rx) = mpsc::channel(cap.max(1));
            txs.push((tx, policy));
            rxs.push((t, rx));
        }
        (Queues { txs: txs.into() }, rxs)
    }

    /// Keep `mdrelay_queue_depth` live: each read of the metrics counts what
    /// waits in each queue (the queues themselves are not kept open by it).
    pub fn report_depths(&self, metrics: &Metrics) {
        let weak: Vec<(DataType, mpsc::WeakSender<Outgoing>)> = DataType::ALL
            .iter()
            .map(|&t| (t, self.txs[t.index()].0.downgrade()))
            .collect();
        let gauges: Vec<_> = weak
            .iter()
            .map(|(t, _)| {
                metrics
                    .queue_depth
                    .get_or_create(&TypeLabel {
                        data_type: t.as_str().to_owned(),
                    })
                    .clone()
            })
            .collect();
        metrics.on_read(move || {
            for ((_, tx), gauge) in weak.iter().zip(&gauges) {
                let depth = tx
                    .upgrade()
                    .map_or(0, |tx| tx.max_capacity() - tx.capacity());
                gauge.set(depth as i64);
            }
        });
    }

    /// Queue an event according to its data type's policy. With `block`
    /// this waits for room, which stops the connection reading its socket.
    pub async fn push(&self, msg: Outgoing) -> Result<(), NotQueued> {
        let (tx, policy) = &self.txs[msg.data_type.index()];
        match policy {
            WhenFull::Block => tx.send(msg).await.map_err(|_| NotQueued::Closed),
            WhenFull::DropNewest => tx.try_send(msg).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => NotQueued::Dropped,
                mpsc::error::TrySendError::Closed(_) => NotQueued::Closed,
            }),
        }
    }

    /// Queue and count a drop in `drops` (indexed by data type).
    pub async fn push_counted(
        &self,
        msg: Outgoing,
        drops: &[Counter; DataType::ALL.len()],
    ) -> Result<(), NotQueued> {
        let t = msg.data_type.index();
        match self.push(msg).await {
            Err(NotQueued::Dropped) => {
                drops[t].inc();
                Err(NotQueued::Dropped)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::{EventId, Instrument, Side, Timestamp, Trade};

    fn trade(token_symbol: &str) -> Event {
        Event {
            venue: Arc::from("v"),
            instrument: Arc::new(Instrument::new("X", token_symbol)),
            exchange_time: None,
            receive_time: Timestamp(0),
            id: EventId("v:trade:X:1".into()),
            payload: Payload::Trade(Trade {
                price: rust_decimal::Decimal::ONE,
                quantity: rust_decimal::Decimal::ONE,
                side: Side::Buy,
                trade_id: None,
            }),
        }
    }

    #[test]
    fn cached_subjects_equal_built_ones_and_share_their_bytes() {
        let mut subjects = Subjects::default();
        let ev = trade("BTC/USDT");
        let first = subjects.of(&ev);
        assert_eq!(first.as_str(), ev.subject());
        assert_eq!(first.as_str(), "market.v.btc-usdt.trade");
        let again = subjects.of(&ev);
        assert_eq!(again.as_ptr(), first.as_ptr(), "one allocation, shared");
        let mut other = trade("ETH/USDT");
        assert_eq!(subjects.of(&other).as_str(), "market.v.eth-usdt.trade");
        other.payload = Payload::Liquidation(crate::domain::Liquidation {
            side: Side::Sell,
            price: rust_decimal::Decimal::ONE,
            quantity: rust_decimal::Decimal::ONE,
        });
        assert_eq!(
            subjects.of(&other).as_str(),
            "market.v.eth-usdt.liquidation"
        );
    }

    #[test]
    fn the_cache_starts_afresh_past_its_bound() {
        let mut subjects = Subjects::default();
        for i in 0..Subjects::MAX {
            subjects.of(&trade(&format!("A{i}/B")));
        }
        assert_eq!(subjects.by_token.len(), Subjects::MAX);
        let ev = trade("NEW/B");
        assert_eq!(subjects.of(&ev).as_str(), "market.v.new-b.trade");
        assert_eq!(subjects.by_token.len(), 1);
    }
}
