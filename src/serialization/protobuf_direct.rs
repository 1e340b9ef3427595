//! The protobuf encoding of an event written straight from the event, like
//! the JSON writer: no intermediate prost message, no `String` per decimal.
//! Byte-for-byte the same as prost's encoding of [`super::protobuf::to_message`]
//! (fields in number order, proto3 defaults omitted, `optional` fields
//! present when set), which the tests check on every fixture event.

use rust_decimal::Decimal;

use crate::domain::{BookKind, BookUpdate, DecimalText, Event, Level, Payload, Side, StatusState};

const VARINT: u8 = 0;
const LEN: u8 = 2;

/// `v` as a varint, on the stack (at most 10 bytes), and its length.
fn varint_bytes(mut v: u64) -> ([u8; 10], usize) {
    let (mut b, mut n) = ([0u8; 10], 0);
    while v >= 0x80 {
        b[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    b[n] = v as u8;
    (b, n + 1)
}

fn varint(buf: &mut Vec<u8>, v: u64) {
    let (b, n) = varint_bytes(v);
    buf.extend_from_slice(&b[..n]);
}

fn key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes(buf: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(buf, field, LEN);
    varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// A proto3 `string` (omitted when empty).
fn string(buf: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        bytes(buf, field, s.as_bytes());
    }
}

/// An `optional string` (present when set, even if empty).
fn opt_string(buf: &mut Vec<u8>, field: u32, s: Option<&str>) {
    if let Some(s) = s {
        bytes(buf, field, s.as_bytes());
    }
}

/// A decimal as a string field (its text is never empty).
fn decimal(buf: &mut Vec<u8>, field: u32, d: &Decimal) {
    let mut text = [0u8; 64];
    let n = DecimalText(d).render(&mut text);
    bytes(buf, field, &text[..n]);
}

fn opt_decimal(buf: &mut Vec<u8>, field: u32, d: &Option<Decimal>) {
    if let Some(d) = d {
        decimal(buf, field, d);
    }
}

/// A proto3 `int64` / enum (omitted when zero).
fn int(buf: &mut Vec<u8>, field: u32, v: i64) {
    if v != 0 {
        key(buf, field, VARINT);
        varint(buf, v as u64);
    }
}

fn opt_int(buf: &mut Vec<u8>, field: u32, v: Option<i64>) {
    if let Some(v) = v {
        key(buf, field, VARINT);
        varint(buf, v as u64);
    }
}

/// A nested message: its length is written in front once known. One byte
/// is reserved (most nested messages are shorter than 128 bytes); longer
/// ones shift their body to make room for the longer length.
fn nested(buf: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, LEN);
    let at = buf.len();
    buf.push(0);
    let start = buf.len();
    body(buf);
    let len = buf.len() - start;
    if len < 0x80 {
        buf[at] = len as u8;
        return;
    }
    let (prefix, n) = varint_bytes(len as u64);
    let extra = n - 1;
    buf.resize(buf.len() + extra, 0);
    buf.copy_within(start..start + len, start + extra);
    buf[at..at + n].copy_from_slice(&prefix[..n]);
}

fn side(s: Side) -> i64 {
    match s {
        Side::Unknown => 0,
        Side::Buy => 1,
        Side::Sell => 2,
    }
}

fn levels(buf: &mut Vec<u8>, field: u32, ls: &[Level]) {
    for l in ls {
        nested(buf, field, |b| {
            decimal(b, 1, &l.price);
            decimal(b, 2, &l.quantity);
        });
    }
}

fn book(b: &mut Vec<u8>, u: &BookUpdate) {
    int(
        b,
        1,
        match u.kind {
            BookKind::Snapshot => 0,
            BookKind::Delta => 1,
        },
    );
    levels(b, 2, &u.bids);
    levels(b, 3, &u.asks);
    opt_int(b, 4, u.first_update_id);
    opt_int(b, 5, u.last_update_id);
    opt_int(b, 6, u.prev_update_id);
    opt_int(b, 7, u.checksum);
    if let Some(m) = u.mark {
        opt_int(b, 8, Some(m.epoch));
        opt_int(b, 9, Some(m.seq));
    }
}

fn data(buf: &mut Vec<u8>, p: &Payload) {
    match p {
        Payload::Trade(t) => nested(buf, 10, |b| {
            decimal(b, 1, &t.price);
            decimal(b, 2, &t.quantity);
            int(b, 3, side(t.side));
            opt_string(b, 4, t.trade_id.as_deref());
        }),
        Payload::Ticker(t) => nested(buf, 11, |b| {
            for (i, d) in t.fields().into_iter().enumerate() {
                opt_decimal(b, i as u32 + 1, d);
            }
        }),
        Payload::Book(u) => nested(buf, 12, |b| book(b, u)),
        Payload::BookTop(u) => nested(buf, 16, |b| book(b, u)),
        Payload::BookSnapshot(s) => nested(buf, 17, |b| {
            book(b, &s.book);
            opt_string(b, 10, s.sequence.map(|r| r.as_str()));
            if let Some(d) = s.depth {
                key(b, 11, VARINT);
                varint(b, u64::from(u32::try_from(d).unwrap_or(u32::MAX)));
            }
        }),
        Payload::Funding(f) => nested(buf, 13, |b| {
            decimal(b, 1, &f.rate);
            int(b, 2, f.next_funding_time.map_or(0, |t| t.0));
            opt_decimal(b, 3, &f.predicted_rate);
            opt_decimal(b, 4, &f.mark_price);
            opt_decimal(b, 5, &f.index_price);
        }),
        Payload::Liquidation(l) => nested(buf, 14, |b| {
            int(b, 1, side(l.side));
            decimal(b, 2, &l.price);
            decimal(b, 3, &l.quantity);
        }),
        Payload::Status(s) => nested(buf, 15, |b| {
            int(
                b,
                1,
                match s.state {
                    StatusState::Connected => 0,
                    StatusState::Disconnected => 1,
                    StatusState::Resubscribed => 2,
                    StatusState::Gap => 3,
                    StatusState::Stale => 4,
                    StatusState::Live => 5,
                    StatusState::Unsubscribed => 6,
                },
            );
            string(b, 2, &s.reason);
        }),
    }
}

fn data_type(e: &Event) -> i64 {
    use crate::domain::DataType as T;
    match e.data_type() {
        T::Trade => 1,
        T::Ticker => 2,
        T::L2Orderbook => 3,
        T::FundingRate => 4,
        T::Liquidation => 5,
        T::Status => 6,
        T::L2Top => 7,
        T::L2Snapshot => 8,
    }
}

/// Append the protobuf encoding of `e` (`mdrelay.v1.Event`) to `buf`.
pub(super) fn encode(e: &Event, buf: &mut Vec<u8>) {
    string(buf, 1, &e.venue);
    string(buf, 2, &e.instrument.symbol);
    string(buf, 3, &e.instrument.venue_instrument);
    int(buf, 4, data_type(e));
    string(buf, 5, e.id.as_str());
    int(buf, 6, e.exchange_time.map_or(0, |t| t.0));
    int(buf, 7, e.receive_time.0);
    data(buf, &e.payload);
}
