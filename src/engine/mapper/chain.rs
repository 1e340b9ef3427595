//! Ids for book events the venue gives no id to.
//!
//! A book delta with no update id (and no mapped `event_key`) is keyed by a
//! hash of its content and exchange time. Two legitimately identical deltas
//! — a venue whose deltas carry neither an id nor a time, a level set back
//! to the same size — would then share an id, and JetStream would drop the
//! second as a duplicate, corrupting every consumer's book (measured: 202 of
//! 2,149 events of one recorded session). So such events are chained: each
//! key hashes the previous key of the same instrument on this connection
//! with the content hash, making every id unique within a connection and
//! still deterministic for the same frames from the same start.
//!
//! What this means for redundant relays: two relays on the same venue
//! produce the same chain only when they see the same frames from the same
//! first one. For venues without book update ids their book events are
//! then stored once per relay (not deduplicated); trades, tickers and books
//! of venues with update ids are deduplicated as before. (Books the relay
//! also snapshots — `book_snapshot` — go further: their events are keyed by
//! the relay's own marks, so each relay's book stream is complete on its own
//! and a consumer follows one; see docs/consumers.md.)

use xxhash_rust::xxh3::Xxh3;

use crate::domain::Event;

/// The last chained key per instrument of one connection.
#[derive(Debug, Default)]
pub(super) struct Chains {
    last: foldhash::HashMap<String, u64>,
}

impl Chains {
    /// Re-key a content-keyed book event (`...:h<16 hex>`) as
    /// `...:c<16 hex>`, chained on the instrument's previous one.
    pub(super) fn chain(&mut self, ev: &mut Event) {
        let id = ev.id.as_str();
        let Some((_, key)) = id.rsplit_once(':') else {
            return;
        };
        let Some(content) = key
            .strip_prefix('h')
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        else {
            return;
        };
        let name = ev.instrument.venue_instrument.as_str();
        let prev = self.last.get(name).copied().unwrap_or(0);
        let mut h = Xxh3::new();
        h.update(&prev.to_le_bytes());
        h.update(&content.to_le_bytes());
        let next = h.digest();
        match self.last.get_mut(name) {
            Some(v) => *v = next,
            None => {
                self.last.insert(name.to_owned(), next);
            }
        }
        ev.id.rekey('c', next);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::{BookKind, BookUpdate, DataType, EventId, Instrument, Payload, Timestamp};

    fn delta(inst: &str) -> Event {
        let payload = Payload::Book(BookUpdate {
            kind: BookKind::Delta,
            bids: vec![],
            asks: vec![],
            first_update_id: None,
            last_update_id: None,
            prev_update_id: None,
            checksum: None,
            mark: None,
        });
        Event {
            venue: Arc::from("v"),
            instrument: Arc::new(Instrument::new(inst, "A/B")),
            exchange_time: None,
            receive_time: Timestamp(0),
            id: EventId::new(
                "v",
                DataType::L2Orderbook,
                inst,
                &EventId::content_key(&payload, None),
            ),
            payload,
        }
    }

    #[test]
    fn identical_deltas_get_distinct_ids_deterministically() {
        let mut a = Chains::default();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let mut e = delta("X");
            a.chain(&mut e);
            ids.push(e.id.0);
        }
        assert_eq!(ids.len(), 3);
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
        assert!(ids[0].starts_with("v:l2_orderbook:X:c"));
        // The same frames from the same start: the same ids.
        let mut b = Chains::default();
        for id in &ids {
            let mut e = delta("X");
            b.chain(&mut e);
            assert_eq!(&e.id.0, id);
        }
        // Instruments chain separately.
        let mut e = delta("Y");
        b.chain(&mut e);
        assert!(e.id.0.ends_with(ids[0].rsplit(':').next().unwrap()));
    }
}
