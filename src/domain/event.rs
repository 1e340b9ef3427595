//! The canonical event: an envelope around a payload, with a deterministic id.

use std::fmt;
use std::sync::Arc;

use rust_decimal::Decimal;
use xxhash_rust::xxh3::Xxh3;

use super::{DataType, Payload, Timestamp};

/// An instrument as the relay knows it: the venue's name for it, its
/// canonical symbol, and the symbol's subject token. Shared by all events of
/// the instrument.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Instrument {
    /// The venue's instrument name, e.g. `BTCUSDT` or `BTC-USDT-SWAP`.
    pub venue_instrument: String,
    /// The canonical symbol, e.g. `BTC/USDT:USDT` (see [`super::subject_token`]).
    pub symbol: String,
    /// The subject token derived from the symbol, e.g. `btc-usdt_usdt`.
    pub token: String,
}

impl Instrument {
    /// Build an instrument, deriving the subject token from the symbol.
    pub fn new(venue_instrument: impl Into<String>, symbol: impl Into<String>) -> Self {
        let symbol = symbol.into();
        let token = super::subject_token(&symbol);
        Instrument {
            venue_instrument: venue_instrument.into(),
            symbol,
            token,
        }
    }
}

/// The deterministic id of an event, used as the JetStream `Nats-Msg-Id` so
/// that a replayed or retried event is stored once.
///
/// Form: `<venue>:<data_type>:<venue instrument>:<key>`, where the key is the
/// mapping's `event_key` when given, else the venue's trade id (trades), the
/// book kind and last update id (books), or else `h` + a 64-bit xxh3 hash of
/// the payload and exchange time (stable across processes and versions).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventId(pub String);

impl EventId {
    /// Assemble an id from its parts.
    pub fn new(venue: &str, data_type: DataType, instrument: &str, key: &str) -> Self {
        Self::with_key(venue, data_type, instrument, key.len(), |s| s.push_str(key))
    }

    /// Assemble an id whose key `write` appends in place (about `key_len`
    /// bytes), so a composed key needs no string of its own.
    pub fn with_key(
        venue: &str,
        data_type: DataType,
        instrument: &str,
        key_len: usize,
        write: impl FnOnce(&mut String),
    ) -> Self {
        let mut s = String::with_capacity(venue.len() + instrument.len() + key_len + 16);
        s.push_str(venue);
        s.push(':');
        s.push_str(data_type.as_str());
        s.push(':');
        s.push_str(instrument);
        s.push(':');
        write(&mut s);
        EventId(s)
    }

    /// The content-hash key for a payload without a venue key
    /// (`h<16 hex>`; [`EventId::content_keyed`] writes it in place).
    pub fn content_key(payload: &Payload, exchange_time: Option<Timestamp>) -> String {
        let mut s = String::with_capacity(17);
        push_key(&mut s, 'h', content_hash(payload, exchange_time));
        s
    }

    /// The id of an event keyed by its content: `<prefix>:h<16 hex>`, the
    /// key written into the id's own string (one allocation).
    pub fn content_keyed(
        venue: &str,
        data_type: DataType,
        instrument: &str,
        payload: &Payload,
        exchange_time: Option<Timestamp>,
    ) -> Self {
        let hash = content_hash(payload, exchange_time);
        Self::with_key(venue, data_type, instrument, 17, |s| push_key(s, 'h', hash))
    }

    /// Replace the key (what follows the last `:`) with `tag` and `value`
    /// as 16 hex digits, in place: no allocation, the id's capacity holds
    /// a key of the same length.
    pub fn rekey(&mut self, tag: char, value: u64) {
        if let Some(colon) = self.0.rfind(':') {
            self.0.truncate(colon + 1);
            push_key(&mut self.0, tag, value);
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Append `tag` and `value` as 16 lower-case hex digits.
fn push_key(s: &mut String, tag: char, value: u64) {
    use std::fmt::Write as _;
    s.push(tag);
    // Writing into a String cannot fail.
    let _ = write!(s, "{value:016x}");
}

/// The 64-bit xxh3 hash of a payload and its exchange time.
fn content_hash(payload: &Payload, exchange_time: Option<Timestamp>) -> u64 {
    let mut h = Xxh3::new();
    h.update(&exchange_time.map_or(i64::MIN, |t| t.0).to_le_bytes());
    hash_payload(&mut h, payload);
    h.digest()
}

fn dec(h: &mut Xxh3, d: &Decimal) {
    // The 16-byte serialization is rust_decimal's documented stable format.
    h.update(&d.serialize());
}

fn opt(h: &mut Xxh3, d: &Option<Decimal>) {
    match d {
        Some(d) => dec(h, d),
        None => h.update(&[0xff]),
    }
}

fn hash_book(h: &mut Xxh3, b: &crate::domain::BookUpdate) {
    h.update(&[b.kind as u8]);
    for side in [&b.bids, &b.asks] {
        h.update(&(side.len() as u64).to_le_bytes());
        for l in side {
            dec(h, &l.price);
            dec(h, &l.quantity);
        }
    }
}

fn hash_payload(h: &mut Xxh3, payload: &Payload) {
    h.update(payload.data_type().as_str().as_bytes());
    match payload {
        Payload::Trade(t) => {
            dec(h, &t.price);
            dec(h, &t.quantity);
            h.update(t.side.as_str().as_bytes());
        }
        Payload::Ticker(t) => {
            for f in t.fields() {
                opt(h, f);
            }
        }
        Payload::Book(b) | Payload::BookTop(b) => hash_book(h, b),
        Payload::BookSnapshot(s) => hash_book(h, &s.book),
        Payload::Funding(f) => {
            dec(h, &f.rate);
            h.update(&f.next_funding_time.map_or(i64::MIN, |t| t.0).to_le_bytes());
            opt(h, &f.predicted_rate);
            opt(h, &f.mark_price);
            opt(h, &f.index_price);
        }
        Payload::Liquidation(l) => {
            h.update(l.side.as_str().as_bytes());
            dec(h, &l.price);
            dec(h, &l.quantity);
        }
        Payload::Status(s) => {
            h.update(&[s.state as u8]);
            h.update(s.reason.as_bytes());
        }
    }
}

/// One canonical event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The venue id (the venue file's stem), e.g. `binance-spot`.
    pub venue: Arc<str>,
    /// The instrument, with its canonical symbol and subject token.
    pub instrument: Arc<Instrument>,
    /// When the venue says the event happened, if it says.
    pub exchange_time: Option<Timestamp>,
    /// When the relay received the frame (injected by the caller).
    pub receive_time: Timestamp,
    /// The deterministic id (see [`EventId`]).
    pub id: EventId,
    /// The data.
    pub payload: Payload,
}

impl Event {
    /// The data type of the event.
    pub fn data_type(&self) -> DataType {
        self.payload.data_type()
    }

    /// The NATS subject of the event.
    pub fn subject(&self) -> String {
        super::subject(&self.venue, &self.instrument.token, self.data_type())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Side, Trade};
    use std::str::FromStr;

    fn trade(price: &str) -> Payload {
        Payload::Trade(Trade {
            price: Decimal::from_str(price).unwrap(),
            quantity: Decimal::ONE,
            side: Side::Buy,
            trade_id: None,
        })
    }

    #[test]
    fn an_id_keyed_in_place_equals_one_assembled_from_its_key() {
        let t = Some(Timestamp(5));
        let p = trade("1.5");
        let id = EventId::content_keyed("v", DataType::Trade, "X", &p, t);
        let key = EventId::content_key(&p, t);
        assert_eq!(id, EventId::new("v", DataType::Trade, "X", &key));
        assert!(key.starts_with('h') && key.len() == 17, "{key}");
        let mut re = id;
        let (at, cap) = (re.0.as_ptr(), re.0.capacity());
        re.rekey('c', 0xab);
        assert_eq!(re.as_str(), "v:trade:X:c00000000000000ab");
        assert_eq!(
            (re.0.as_ptr(), re.0.capacity()),
            (at, cap),
            "re-keyed in place"
        );
    }

    #[test]
    fn content_keys_are_deterministic_and_sensitive() {
        let t = Some(Timestamp(5));
        assert_eq!(
            EventId::content_key(&trade("1.5"), t),
            EventId::content_key(&trade("1.5"), t)
        );
        assert_ne!(
            EventId::content_key(&trade("1.5"), t),
            EventId::content_key(&trade("1.6"), t)
        );
        assert_ne!(
            EventId::content_key(&trade("1.5"), t),
            EventId::content_key(&trade("1.5"), None)
        );
        // Pinned so that a change of the hash input (which would break
        // deduplication across versions) is noticed.
        assert_eq!(EventId::content_key(&trade("1.5"), t).len(), 17);
    }

    #[test]
    fn ids_name_venue_type_and_instrument() {
        let id = EventId::new("venue-a", DataType::Trade, "BTC-USDT", "338476307");
        assert_eq!(id.as_str(), "venue-a:trade:BTC-USDT:338476307");
    }
}
