//! The protobuf form of an event (`mdrelay.v1.Event`).

use prost::Message;

use crate::domain::{BookKind, Event, Level, Payload, Side, StatusState};

/// Types generated from `proto/market_data.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/mdrelay.v1.rs"));
}

fn side(s: Side) -> i32 {
    match s {
        Side::Unknown => proto::Side::Unknown as i32,
        Side::Buy => proto::Side::Buy as i32,
        Side::Sell => proto::Side::Sell as i32,
    }
}

fn dec(d: Option<rust_decimal::Decimal>) -> Option<String> {
    d.map(|d| d.to_string())
}

fn levels(ls: &[Level]) -> Vec<proto::Level> {
    ls.iter()
        .map(|l| proto::Level {
            price: l.price.to_string(),
            quantity: l.quantity.to_string(),
        })
        .collect()
}

fn data(p: &Payload) -> proto::event::Data {
    use proto::event::Data as D;
    match p {
        Payload::Trade(t) => D::Trade(proto::Trade {
            price: t.price.to_string(),
            quantity: t.quantity.to_string(),
            side: side(t.side),
            trade_id: t.trade_id.clone(),
        }),
        Payload::Ticker(t) => D::Ticker(proto::Ticker {
            bid_price: dec(t.bid_price),
            bid_quantity: dec(t.bid_quantity),
            ask_price: dec(t.ask_price),
            ask_quantity: dec(t.ask_quantity),
            last_price: dec(t.last_price),
            last_quantity: dec(t.last_quantity),
            open_24h: dec(t.open_24h),
            high_24h: dec(t.high_24h),
            low_24h: dec(t.low_24h),
            volume_24h: dec(t.volume_24h),
            quote_volume_24h: dec(t.quote_volume_24h),
            mark_price: dec(t.mark_price),
            index_price: dec(t.index_price),
            open_interest: dec(t.open_interest),
        }),
        Payload::Book(b) => D::L2Orderbook(book(b)),
        Payload::BookTop(b) => D::L2Top(book(b)),
        Payload::BookSnapshot(s) => D::L2Snapshot(proto::BookUpdate {
            sequence: s.sequence.map(|r| r.as_str().to_owned()),
            depth: s.depth.map(|d| u32::try_from(d).unwrap_or(u32::MAX)),
            ..book(&s.book)
        }),
        Payload::Funding(f) => D::FundingRate(proto::FundingRate {
            rate: f.rate.to_string(),
            next_funding_time_ns: f.next_funding_time.map_or(0, |t| t.0),
            predicted_rate: dec(f.predicted_rate),
            mark_price: dec(f.mark_price),
            index_price: dec(f.index_price),
        }),
        Payload::Liquidation(l) => D::Liquidation(proto::Liquidation {
            side: side(l.side),
            price: l.price.to_string(),
            quantity: l.quantity.to_string(),
        }),
        Payload::Status(s) => D::Status(proto::Status {
            state: match s.state {
                StatusState::Connected => proto::StatusState::Connected as i32,
                StatusState::Disconnected => proto::StatusState::Disconnected as i32,
                StatusState::Resubscribed => proto::StatusState::Resubscribed as i32,
                StatusState::Gap => proto::StatusState::Gap as i32,
                StatusState::Stale => proto::StatusState::Stale as i32,
                StatusState::Live => proto::StatusState::Live as i32,
                StatusState::Unsubscribed => proto::StatusState::Unsubscribed as i32,
            },
            reason: s.reason.clone(),
        }),
    }
}

fn book(b: &crate::domain::BookUpdate) -> proto::BookUpdate {
    proto::BookUpdate {
        kind: match b.kind {
            BookKind::Snapshot => proto::BookKind::Snapshot as i32,
            BookKind::Delta => proto::BookKind::Delta as i32,
        },
        bids: levels(&b.bids),
        asks: levels(&b.asks),
        first_update_id: b.first_update_id,
        last_update_id: b.last_update_id,
        prev_update_id: b.prev_update_id,
        checksum: b.checksum,
        relay_epoch: b.mark.map(|m| m.epoch),
        relay_seq: b.mark.map(|m| m.seq),
        sequence: None,
        depth: None,
    }
}

fn data_type(e: &Event) -> i32 {
    use crate::domain::DataType as T;
    (match e.data_type() {
        T::Trade => proto::DataType::Trade,
        T::Ticker => proto::DataType::Ticker,
        T::L2Orderbook => proto::DataType::L2Orderbook,
        T::FundingRate => proto::DataType::FundingRate,
        T::Liquidation => proto::DataType::Liquidation,
        T::Status => proto::DataType::Status,
        T::L2Top => proto::DataType::L2Top,
        T::L2Snapshot => proto::DataType::L2Snapshot,
    }) as i32
}

/// The protobuf message for an event.
pub fn to_message(e: &Event) -> proto::Event {
    proto::Event {
        venue: e.venue.to_string(),
        symbol: e.instrument.symbol.clone(),
        instrument: e.instrument.venue_instrument.clone(),
        data_type: data_type(e),
        event_id: e.id.as_str().to_owned(),
        exchange_time_ns: e.exchange_time.map_or(0, |t| t.0),
        receive_time_ns: e.receive_time.0,
        data: Some(data(&e.payload)),
    }
}

/// Append the protobuf encoding of `event` to `buf`, written straight from
/// the event (the same bytes as [`to_protobuf_via_prost`]).
pub fn to_protobuf(event: &Event, buf: &mut Vec<u8>) {
    super::protobuf_direct::encode(event, buf);
}

/// Append prost's encoding of [`to_message`] to `buf` (the reference for
/// [`to_protobuf`]).
pub fn to_protobuf_via_prost(event: &Event, buf: &mut Vec<u8>) {
    let msg = to_message(event);
    buf.reserve(msg.encoded_len());
    // Encoding into a Vec only fails for lack of capacity, reserved above.
    msg.encode(buf).expect("capacity reserved");
}
