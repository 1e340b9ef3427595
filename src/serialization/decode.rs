//! Reading published events back: the JSON and protobuf forms of
//! docs/wire-format.md into canonical [`Event`]s (for `mdrelay tail`,
//! `mdrelay book` and [`crate::client`]). The inverse of the encoders: a
//! test decodes every fixture event from both forms and gets it back
//! unchanged.
//!
//! Unknown fields are ignored (a newer relay may add some); anything that
//! does not make a valid event is an error, never a panic.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;

use prost::Message as _;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::protobuf::proto;
use crate::domain::{
    BookKind, BookSnapshot, BookUpdate, DataType, Event, EventId, FundingRate, Instrument, Level,
    Liquidation, Payload, RelayMark, SequenceRule, Side, Status, StatusState, Ticker, Timestamp,
    Trade,
};

/// Why a message is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not the JSON form of an event.
    #[error("not a JSON event: {0}")]
    Json(String),
    /// The bytes are not the protobuf form of an event.
    #[error("not a protobuf event: {0}")]
    Protobuf(String),
    /// Well formed, but a field is missing or has an impossible value.
    #[error("invalid event: {0}")]
    Invalid(String),
    /// A `Content-Type` this relay does not publish.
    #[error("unknown content type `{0}`")]
    ContentType(String),
}

/// The payload encoding named by a `Content-Type` header (`None`: guess
/// from the first byte, `{` meaning JSON).
fn is_json(content_type: Option<&str>, payload: &[u8]) -> Result<bool, DecodeError> {
    match content_type.map(str::trim) {
        Some(ct) if ct.starts_with("application/json") => Ok(true),
        Some(ct) if ct.starts_with("application/x-protobuf") => Ok(false),
        Some(ct) => Err(DecodeError::ContentType(ct.chars().take(80).collect())),
        None => Ok(payload.first() == Some(&b'{')),
    }
}

/// Decode a published message, by its `Content-Type` header.
pub fn decode(content_type: Option<&str>, payload: &[u8]) -> Result<Event, DecodeError> {
    if is_json(content_type, payload)? {
        from_json(payload)
    } else {
        from_protobuf(payload)
    }
}

fn invalid(what: impl Into<String>) -> DecodeError {
    DecodeError::Invalid(what.into())
}

fn decimal(field: &str, text: &str) -> Result<Decimal, DecodeError> {
    Decimal::from_str(text).map_err(|_| invalid(format!("{field}: `{text}` is not a decimal")))
}

fn opt_decimal(field: &str, text: Option<&str>) -> Result<Option<Decimal>, DecodeError> {
    text.map(|t| decimal(field, t)).transpose()
}

fn side(text: &str) -> Result<Side, DecodeError> {
    Side::parse(text).ok_or_else(|| invalid(format!("side `{text}`")))
}

fn status_state(text: &str) -> Result<StatusState, DecodeError> {
    Ok(match text {
        "connected" => StatusState::Connected,
        "disconnected" => StatusState::Disconnected,
        "resubscribed" => StatusState::Resubscribed,
        "gap" => StatusState::Gap,
        "stale" => StatusState::Stale,
        "live" => StatusState::Live,
        "unsubscribed" => StatusState::Unsubscribed,
        other => return Err(invalid(format!("status state `{other}`"))),
    })
}

fn rule(text: &str) -> Result<SequenceRule, DecodeError> {
    SequenceRule::from_name(text).ok_or_else(|| invalid(format!("sequence rule `{text}`")))
}

fn mark(epoch: Option<i64>, seq: Option<i64>) -> Result<Option<RelayMark>, DecodeError> {
    match (epoch, seq) {
        (Some(epoch), Some(seq)) => Ok(Some(RelayMark { epoch, seq })),
        (None, None) => Ok(None),
        _ => Err(invalid("relay_epoch and relay_seq go together")),
    }
}

fn envelope(
    venue: &str,
    symbol: &str,
    instrument: &str,
    event_id: &str,
    times: (Option<Timestamp>, Timestamp),
    payload: Payload,
) -> Result<Event, DecodeError> {
    if venue.is_empty() || instrument.is_empty() || event_id.is_empty() {
        return Err(invalid("venue, instrument and event_id are required"));
    }
    Ok(Event {
        venue: Arc::from(venue),
        instrument: Arc::new(Instrument::new(instrument, symbol)),
        exchange_time: times.0,
        receive_time: times.1,
        id: EventId(event_id.to_owned()),
        payload,
    })
}

/// The JSON form's fields (`data` holds the union of every payload's).
#[derive(Deserialize)]
struct JsonEvent<'a> {
    #[serde(borrow)]
    venue: Cow<'a, str>,
    #[serde(borrow)]
    symbol: Cow<'a, str>,
    #[serde(borrow)]
    instrument: Cow<'a, str>,
    #[serde(borrow)]
    data_type: Cow<'a, str>,
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow, default)]
    exchange_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    receive_time: Cow<'a, str>,
    #[serde(borrow)]
    data: JsonData<'a>,
}

type JsonLevel<'a> = (Cow<'a, str>, Cow<'a, str>);

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonData<'a> {
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    bids: Option<Vec<JsonLevel<'a>>>,
    #[serde(borrow)]
    asks: Option<Vec<JsonLevel<'a>>>,
    first_update_id: Option<i64>,
    last_update_id: Option<i64>,
    prev_update_id: Option<i64>,
    checksum: Option<i64>,
    relay_epoch: Option<i64>,
    relay_seq: Option<i64>,
    #[serde(borrow)]
    sequence: Option<Cow<'a, str>>,
    depth: Option<u32>,
    #[serde(borrow)]
    price: Option<Cow<'a, str>>,
    #[serde(borrow)]
    quantity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    side: Option<Cow<'a, str>>,
    #[serde(borrow)]
    trade_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    bid_price: Option<Cow<'a, str>>,
    #[serde(borrow)]
    bid_quantity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ask_price: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ask_quantity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    last_price: Option<Cow<'a, str>>,
    #[serde(borrow)]
    last_quantity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    open_24h: Option<Cow<'a, str>>,
    #[serde(borrow)]
    high_24h: Option<Cow<'a, str>>,
    #[serde(borrow)]
    low_24h: Option<Cow<'a, str>>,
    #[serde(borrow)]
    volume_24h: Option<Cow<'a, str>>,
    #[serde(borrow)]
    quote_volume_24h: Option<Cow<'a, str>>,
    #[serde(borrow)]
    mark_price: Option<Cow<'a, str>>,
    #[serde(borrow)]
    index_price: Option<Cow<'a, str>>,
    #[serde(borrow)]
    open_interest: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rate: Option<Cow<'a, str>>,
    #[serde(borrow)]
    next_funding_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    predicted_rate: Option<Cow<'a, str>>,
    #[serde(borrow)]
    state: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
}

fn need<'v>(field: &str, v: &'v Option<Cow<'_, str>>) -> Result<&'v str, DecodeError> {
    v.as_deref()
        .ok_or_else(|| invalid(format!("`{field}` is missing")))
}

fn json_time(field: &str, text: &str) -> Result<Timestamp, DecodeError> {
    Timestamp::from_rfc3339(text).ok_or_else(|| invalid(format!("{field}: `{text}`")))
}

fn json_levels(field: &str, ls: &Option<Vec<JsonLevel<'_>>>) -> Result<Vec<Level>, DecodeError> {
    let Some(ls) = ls else {
        return Err(invalid(format!("`{field}` is missing")));
    };
    ls.iter()
        .map(|(p, q)| {
            Ok(Level {
                price: decimal(field, p)?,
                quantity: decimal(field, q)?,
            })
        })
        .collect()
}

fn json_book(d: &JsonData<'_>) -> Result<BookUpdate, DecodeError> {
    Ok(BookUpdate {
        kind: match need("kind", &d.kind)? {
            "snapshot" => BookKind::Snapshot,
            "delta" => BookKind::Delta,
            other => return Err(invalid(format!("book kind `{other}`"))),
        },
        bids: json_levels("bids", &d.bids)?,
        asks: json_levels("asks", &d.asks)?,
        first_update_id: d.first_update_id,
        last_update_id: d.last_update_id,
        prev_update_id: d.prev_update_id,
        checksum: d.checksum,
        mark: mark(d.relay_epoch, d.relay_seq)?,
    })
}

fn json_payload(t: DataType, d: &JsonData<'_>) -> Result<Payload, DecodeError> {
    let dec = |f: &str, v: &Option<Cow<'_, str>>| opt_decimal(f, v.as_deref());
    Ok(match t {
        DataType::Trade => Payload::Trade(Trade {
            price: decimal("price", need("price", &d.price)?)?,
            quantity: decimal("quantity", need("quantity", &d.quantity)?)?,
            side: side(need("side", &d.side)?)?,
            trade_id: d.trade_id.as_deref().map(str::to_owned),
        }),
        DataType::Ticker => Payload::Ticker(Box::new(Ticker {
            bid_price: dec("bid_price", &d.bid_price)?,
            bid_quantity: dec("bid_quantity", &d.bid_quantity)?,
            ask_price: dec("ask_price", &d.ask_price)?,
            ask_quantity: dec("ask_quantity", &d.ask_quantity)?,
            last_price: dec("last_price", &d.last_price)?,
            last_quantity: dec("last_quantity", &d.last_quantity)?,
            open_24h: dec("open_24h", &d.open_24h)?,
            high_24h: dec("high_24h", &d.high_24h)?,
            low_24h: dec("low_24h", &d.low_24h)?,
            volume_24h: dec("volume_24h", &d.volume_24h)?,
            quote_volume_24h: dec("quote_volume_24h", &d.quote_volume_24h)?,
            mark_price: dec("mark_price", &d.mark_price)?,
            index_price: dec("index_price", &d.index_price)?,
            open_interest: dec("open_interest", &d.open_interest)?,
        })),
        DataType::L2Orderbook => Payload::Book(json_book(d)?),
        DataType::L2Top => Payload::BookTop(json_book(d)?),
        DataType::L2Snapshot => Payload::BookSnapshot(Box::new(BookSnapshot {
            book: json_book(d)?,
            sequence: d.sequence.as_deref().map(rule).transpose()?,
            depth: d.depth.map(|v| v as usize),
        })),
        DataType::FundingRate => Payload::Funding(FundingRate {
            rate: decimal("rate", need("rate", &d.rate)?)?,
            next_funding_time: d
                .next_funding_time
                .as_deref()
                .map(|t| json_time("next_funding_time", t))
                .transpose()?,
            predicted_rate: dec("predicted_rate", &d.predicted_rate)?,
            mark_price: dec("mark_price", &d.mark_price)?,
            index_price: dec("index_price", &d.index_price)?,
        }),
        DataType::Liquidation => Payload::Liquidation(Liquidation {
            side: side(need("side", &d.side)?)?,
            price: decimal("price", need("price", &d.price)?)?,
            quantity: decimal("quantity", need("quantity", &d.quantity)?)?,
        }),
        DataType::Status => Payload::Status(Status {
            state: status_state(need("state", &d.state)?)?,
            reason: d.reason.as_deref().unwrap_or_default().to_owned(),
        }),
    })
}

/// Decode the JSON form of an event.
pub fn from_json(payload: &[u8]) -> Result<Event, DecodeError> {
    let e: JsonEvent<'_> =
        serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
    let t = DataType::from_str(&e.data_type).map_err(|e| invalid(e.to_string()))?;
    let payload = json_payload(t, &e.data)?;
    let exchange = e
        .exchange_time
        .as_deref()
        .map(|t| json_time("exchange_time", t))
        .transpose()?;
    let receive = json_time("receive_time", &e.receive_time)?;
    envelope(
        &e.venue,
        &e.symbol,
        &e.instrument,
        &e.event_id,
        (exchange, receive),
        payload,
    )
}

fn proto_side(v: i32) -> Result<Side, DecodeError> {
    match proto::Side::try_from(v) {
        Ok(proto::Side::Unknown) => Ok(Side::Unknown),
        Ok(proto::Side::Buy) => Ok(Side::Buy),
        Ok(proto::Side::Sell) => Ok(Side::Sell),
        Err(_) => Err(invalid(format!("side {v}"))),
    }
}

fn proto_levels(field: &str, ls: &[proto::Level]) -> Result<Vec<Level>, DecodeError> {
    ls.iter()
        .map(|l| {
            Ok(Level {
                price: decimal(field, &l.price)?,
                quantity: decimal(field, &l.quantity)?,
            })
        })
        .collect()
}

fn proto_book(b: &proto::BookUpdate) -> Result<BookUpdate, DecodeError> {
    Ok(BookUpdate {
        kind: match proto::BookKind::try_from(b.kind) {
            Ok(proto::BookKind::Snapshot) => BookKind::Snapshot,
            Ok(proto::BookKind::Delta) => BookKind::Delta,
            Err(_) => return Err(invalid(format!("book kind {}", b.kind))),
        },
        bids: proto_levels("bids", &b.bids)?,
        asks: proto_levels("asks", &b.asks)?,
        first_update_id: b.first_update_id,
        last_update_id: b.last_update_id,
        prev_update_id: b.prev_update_id,
        checksum: b.checksum,
        mark: mark(b.relay_epoch, b.relay_seq)?,
    })
}

fn nanos(v: i64) -> Option<Timestamp> {
    (v != 0).then_some(Timestamp(v))
}

fn proto_payload(d: &proto::event::Data) -> Result<Payload, DecodeError> {
    use proto::event::Data as D;
    let dec = |f: &str, v: &Option<String>| opt_decimal(f, v.as_deref());
    Ok(match d {
        D::Trade(t) => Payload::Trade(Trade {
            price: decimal("price", &t.price)?,
            quantity: decimal("quantity", &t.quantity)?,
            side: proto_side(t.side)?,
            trade_id: t.trade_id.clone(),
        }),
        D::Ticker(t) => Payload::Ticker(Box::new(Ticker {
            bid_price: dec("bid_price", &t.bid_price)?,
            bid_quantity: dec("bid_quantity", &t.bid_quantity)?,
            ask_price: dec("ask_price", &t.ask_price)?,
            ask_quantity: dec("ask_quantity", &t.ask_quantity)?,
            last_price: dec("last_price", &t.last_price)?,
            last_quantity: dec("last_quantity", &t.last_quantity)?,
            open_24h: dec("open_24h", &t.open_24h)?,
            high_24h: dec("high_24h", &t.high_24h)?,
            low_24h: dec("low_24h", &t.low_24h)?,
            volume_24h: dec("volume_24h", &t.volume_24h)?,
            quote_volume_24h: dec("quote_volume_24h", &t.quote_volume_24h)?,
            mark_price: dec("mark_price", &t.mark_price)?,
            index_price: dec("index_price", &t.index_price)?,
            open_interest: dec("open_interest", &t.open_interest)?,
        })),
        D::L2Orderbook(b) => Payload::Book(proto_book(b)?),
        D::L2Top(b) => Payload::BookTop(proto_book(b)?),
        D::L2Snapshot(b) => Payload::BookSnapshot(Box::new(BookSnapshot {
            book: proto_book(b)?,
            sequence: b.sequence.as_deref().map(rule).transpose()?,
            depth: b.depth.map(|v| v as usize),
        })),
        D::FundingRate(f) => Payload::Funding(FundingRate {
            rate: decimal("rate", &f.rate)?,
            next_funding_time: nanos(f.next_funding_time_ns),
            predicted_rate: dec("predicted_rate", &f.predicted_rate)?,
            mark_price: dec("mark_price", &f.mark_price)?,
            index_price: dec("index_price", &f.index_price)?,
        }),
        D::Liquidation(l) => Payload::Liquidation(Liquidation {
            side: proto_side(l.side)?,
            price: decimal("price", &l.price)?,
            quantity: decimal("quantity", &l.quantity)?,
        }),
        D::Status(s) => Payload::Status(Status {
            state: match proto::StatusState::try_from(s.state) {
                Ok(proto::StatusState::Connected) => StatusState::Connected,
                Ok(proto::StatusState::Disconnected) => StatusState::Disconnected,
                Ok(proto::StatusState::Resubscribed) => StatusState::Resubscribed,
                Ok(proto::StatusState::Gap) => StatusState::Gap,
                Ok(proto::StatusState::Stale) => StatusState::Stale,
                Ok(proto::StatusState::Live) => StatusState::Live,
                Ok(proto::StatusState::Unsubscribed) => StatusState::Unsubscribed,
                Err(_) => return Err(invalid(format!("status state {}", s.state))),
            },
            reason: s.reason.clone(),
        }),
    })
}

/// Decode the protobuf form of an event (`mdrelay.v1.Event`).
pub fn from_protobuf(payload: &[u8]) -> Result<Event, DecodeError> {
    let e = proto::Event::decode(payload).map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    let data = e
        .data
        .as_ref()
        .ok_or_else(|| invalid("the event has no data"))?;
    let payload = proto_payload(data)?;
    if e.data_type != proto_data_type(payload.data_type()) as i32 {
        return Err(invalid(format!(
            "data_type {} does not match its data ({})",
            e.data_type,
            payload.data_type()
        )));
    }
    envelope(
        &e.venue,
        &e.symbol,
        &e.instrument,
        &e.event_id,
        (nanos(e.exchange_time_ns), Timestamp(e.receive_time_ns)),
        payload,
    )
}

fn proto_data_type(t: DataType) -> proto::DataType {
    match t {
        DataType::Trade => proto::DataType::Trade,
        DataType::Ticker => proto::DataType::Ticker,
        DataType::L2Orderbook => proto::DataType::L2Orderbook,
        DataType::FundingRate => proto::DataType::FundingRate,
        DataType::Liquidation => proto::DataType::Liquidation,
        DataType::Status => proto::DataType::Status,
        DataType::L2Top => proto::DataType::L2Top,
        DataType::L2Snapshot => proto::DataType::L2Snapshot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serialization::{to_json, to_protobuf};

    fn book_event() -> Event {
        let l = |p: &str, q: &str| Level {
            price: Decimal::from_str(p).unwrap(),
            quantity: Decimal::from_str(q).unwrap(),
        };
        Event {
            venue: Arc::from("okx"),
            instrument: Arc::new(Instrument::new("BTC-USDT", "BTC/USDT")),
            exchange_time: Some(Timestamp(1_652_459_224_818_000_000)),
            receive_time: Timestamp(1_652_459_224_900_123_456),
            id: EventId("okx:l2_snapshot:BTC-USDT:5".into()),
            payload: Payload::BookSnapshot(Box::new(BookSnapshot {
                book: BookUpdate {
                    kind: BookKind::Snapshot,
                    bids: vec![l("30236.10", "0.5000")],
                    asks: vec![l("30237", "1"), l("30238", "0.0002")],
                    first_update_id: None,
                    last_update_id: Some(5),
                    prev_update_id: None,
                    checksum: None,
                    mark: Some(RelayMark { epoch: 9, seq: 3 }),
                },
                sequence: Some(SequenceRule::Step),
                depth: Some(400),
            })),
        }
    }

    #[test]
    fn both_forms_decode_back_to_the_event() {
        let e = book_event();
        let (mut j, mut p) = (Vec::new(), Vec::new());
        to_json(&e, &mut j);
        to_protobuf(&e, &mut p);
        assert_eq!(decode(Some("application/json"), &j).unwrap(), e);
        assert_eq!(
            decode(Some("application/x-protobuf; proto=mdrelay.v1.Event"), &p).unwrap(),
            e
        );
        // Without a header, the first byte tells.
        assert_eq!(decode(None, &j).unwrap(), e);
        assert_eq!(decode(None, &p).unwrap(), e);
    }

    #[test]
    fn damaged_or_mislabelled_payloads_are_errors() {
        let e = book_event();
        let (mut j, mut p) = (Vec::new(), Vec::new());
        to_json(&e, &mut j);
        to_protobuf(&e, &mut p);
        for cut in [1, j.len() / 2, j.len() - 1] {
            assert!(matches!(
                decode(Some("application/json"), &j[..cut]),
                Err(DecodeError::Json(_))
            ));
        }
        for cut in [1, p.len() / 2, p.len() - 1] {
            assert!(decode(Some("application/x-protobuf"), &p[..cut]).is_err());
        }
        assert!(decode(Some("application/json"), &p).is_err());
        assert!(decode(Some("application/x-protobuf"), &j).is_err());
        assert!(matches!(
            decode(Some("text/plain"), &j),
            Err(DecodeError::ContentType(_))
        ));
        let bad = String::from_utf8(j.clone())
            .unwrap()
            .replace("\"30237\"", "\"30x37\"");
        assert!(matches!(
            decode(None, bad.as_bytes()),
            Err(DecodeError::Invalid(_))
        ));
    }
}
