//! The JSON form of an event, written by hand: the field order and spelling
//! are the contract of docs/wire-format.md, and every published event goes
//! through here, so it avoids `serde` and `Decimal`'s slow formatter (a
//! test checks the output against a serde-based rendering).

use std::fmt::Write as _;

use rust_decimal::Decimal;

use crate::domain::{BookUpdate, DecimalText, Event, Level, Payload, Timestamp};
use crate::engine::json::write_str;

struct Obj<'o> {
    out: &'o mut String,
    first: bool,
}

impl<'o> Obj<'o> {
    fn open(out: &'o mut String) -> Self {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str("\":");
        self.out
    }

    fn str(&mut self, k: &str, v: &str) {
        write_str(v, self.key(k));
    }

    fn dec(&mut self, k: &str, v: &Decimal) {
        let out = self.key(k);
        out.push('"');
        DecimalText(v).push_to(out);
        out.push('"');
    }

    fn opt_dec(&mut self, k: &str, v: &Option<Decimal>) {
        if let Some(v) = v {
            self.dec(k, v);
        }
    }

    fn int(&mut self, k: &str, v: Option<i64>) {
        if let Some(v) = v {
            let out = self.key(k);
            let _ = write!(out, "{v}");
        }
    }

    fn time(&mut self, k: &str, t: Option<Timestamp>) {
        if let Some(t) = t {
            let out = self.key(k);
            out.push('"');
            t.write_rfc3339(out);
            out.push('"');
        }
    }

    fn levels(&mut self, k: &str, ls: &[Level]) {
        let out = self.key(k);
        out.push('[');
        for (i, l) in ls.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("[\"");
            DecimalText(&l.price).push_to(out);
            out.push_str("\",\"");
            DecimalText(&l.quantity).push_to(out);
            out.push_str("\"]");
        }
        out.push(']');
    }

    fn close(self) {
        self.out.push('}');
    }
}

fn book(o: &mut Obj<'_>, b: &BookUpdate) {
    o.str(
        "kind",
        if b.kind == crate::domain::BookKind::Snapshot {
            "snapshot"
        } else {
            "delta"
        },
    );
    o.levels("bids", &b.bids);
    o.levels("asks", &b.asks);
    o.int("first_update_id", b.first_update_id);
    o.int("last_update_id", b.last_update_id);
    o.int("prev_update_id", b.prev_update_id);
    o.int("checksum", b.checksum);
    if let Some(m) = b.mark {
        o.int("relay_epoch", Some(m.epoch));
        o.int("relay_seq", Some(m.seq));
    }
}

fn data(p: &Payload, out: &mut String) {
    let mut o = Obj::open(out);
    match p {
        Payload::Trade(t) => {
            o.dec("price", &t.price);
            o.dec("quantity", &t.quantity);
            o.str("side", t.side.as_str());
            if let Some(id) = &t.trade_id {
                o.str("trade_id", id);
            }
        }
        Payload::Ticker(t) => {
            o.opt_dec("bid_price", &t.bid_price);
            o.opt_dec("bid_quantity", &t.bid_quantity);
            o.opt_dec("ask_price", &t.ask_price);
            o.opt_dec("ask_quantity", &t.ask_quantity);
            o.opt_dec("last_price", &t.last_price);
            o.opt_dec("last_quantity", &t.last_quantity);
            o.opt_dec("open_24h", &t.open_24h);
            o.opt_dec("high_24h", &t.high_24h);
            o.opt_dec("low_24h", &t.low_24h);
            o.opt_dec("volume_24h", &t.volume_24h);
            o.opt_dec("quote_volume_24h", &t.quote_volume_24h);
            o.opt_dec("mark_price", &t.mark_price);
            o.opt_dec("index_price", &t.index_price);
            o.opt_dec("open_interest", &t.open_interest);
        }
        Payload::Book(b) | Payload::BookTop(b) => book(&mut o, b),
        Payload::BookSnapshot(s) => {
            book(&mut o, &s.book);
            if let Some(rule) = s.sequence {
                o.str("sequence", rule.as_str());
            }
            o.int("depth", s.depth.map(|d| d as i64));
        }
        Payload::Funding(f) => {
            o.dec("rate", &f.rate);
            o.time("next_funding_time", f.next_funding_time);
            o.opt_dec("predicted_rate", &f.predicted_rate);
            o.opt_dec("mark_price", &f.mark_price);
            o.opt_dec("index_price", &f.index_price);
        }
        Payload::Liquidation(l) => {
            o.str("side", l.side.as_str());
            o.dec("price", &l.price);
            o.dec("quantity", &l.quantity);
        }
        Payload::Status(s) => {
            o.str("state", s.state.as_str());
            o.str("reason", &s.reason);
        }
    }
    o.close();
}

/// Write the JSON form of `event` into `out` (appended).
pub(super) fn write_event(event: &Event, out: &mut String) {
    let mut o = Obj::open(out);
    o.str("venue", &event.venue);
    o.str("symbol", &event.instrument.symbol);
    o.str("instrument", &event.instrument.venue_instrument);
    o.str("data_type", event.data_type().as_str());
    o.str("event_id", event.id.as_str());
    o.time("exchange_time", event.exchange_time);
    o.time("receive_time", Some(event.receive_time));
    data(&event.payload, o.key("data"));
    o.close();
}

/// Append the JSON form of `event` to `buf`.
pub fn to_json(event: &Event, buf: &mut Vec<u8>) {
    let mut s = String::with_capacity(384);
    write_event(event, &mut s);
    buf.extend_from_slice(s.as_bytes());
}

/// The JSON form as a `String` (for `mdrelay map` and fixtures).
pub fn to_json_line(event: &Event) -> String {
    let mut s = String::with_capacity(384);
    write_event(event, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::sync::Arc;

    use super::*;
    use crate::domain::*;

    fn ev(payload: Payload) -> Event {
        Event {
            venue: Arc::from("v"),
            instrument: Arc::new(Instrument::new("X\"Y\n", "X/Y")),
            exchange_time: Some(Timestamp(1_633_998_523_963_000_000)),
            receive_time: Timestamp(5),
            id: EventId("v:trade:X:1".into()),
            payload,
        }
    }

    fn reference_book(b: &BookUpdate) -> serde_json::Value {
        let lv = |ls: &[Level]| {
            ls.iter()
                .map(|l| serde_json::json!([l.price.to_string(), l.quantity.to_string()]))
                .collect::<Vec<_>>()
        };
        let mut v = serde_json::json!({"kind": b.kind, "bids": lv(&b.bids), "asks": lv(&b.asks)});
        for (k, x) in [
            ("first_update_id", b.first_update_id),
            ("last_update_id", b.last_update_id),
            ("prev_update_id", b.prev_update_id),
            ("checksum", b.checksum),
        ] {
            if let Some(x) = x {
                v[k] = x.into();
            }
        }
        if let Some(m) = b.mark {
            v["relay_epoch"] = m.epoch.into();
            v["relay_seq"] = m.seq.into();
        }
        v
    }

    /// What serde_json makes of the same data (the reference rendering).
    fn reference(e: &Event) -> serde_json::Value {
        let data = match &e.payload {
            Payload::Trade(t) => serde_json::to_value(t).unwrap(),
            Payload::Ticker(t) => serde_json::to_value(t).unwrap(),
            Payload::BookSnapshot(s) => {
                let mut v = reference_book(&s.book);
                if let Some(r) = s.sequence {
                    v["sequence"] = r.as_str().into();
                }
                if let Some(d) = s.depth {
                    v["depth"] = d.into();
                }
                v
            }
            Payload::Book(b) | Payload::BookTop(b) => reference_book(b),
            Payload::Funding(f) => serde_json::to_value(f).unwrap(),
            Payload::Liquidation(l) => serde_json::to_value(l).unwrap(),
            Payload::Status(s) => serde_json::to_value(s).unwrap(),
        };
        serde_json::json!({
            "venue": &*e.venue, "symbol": e.instrument.symbol, "instrument": e.instrument.venue_instrument,
            "data_type": e.data_type(), "event_id": e.id.0,
            "exchange_time": e.exchange_time.map(|t| t.to_rfc3339()),
            "receive_time": e.receive_time.to_rfc3339(), "data": data,
        })
    }

    #[test]
    fn agrees_with_serde() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let cases = [
            Payload::Trade(Trade {
                price: d("0.35280000"),
                quantity: d("58"),
                side: Side::Sell,
                trade_id: Some("a\\1".into()),
            }),
            Payload::Ticker(Box::new(Ticker {
                bid_price: Some(d("1.5")),
                open_interest: Some(d("-0.001")),
                ..Default::default()
            })),
            Payload::Book(BookUpdate {
                kind: BookKind::Delta,
                bids: vec![Level {
                    price: d("1"),
                    quantity: d("0.00000000"),
                }],
                asks: vec![],
                first_update_id: Some(-1),
                last_update_id: None,
                prev_update_id: Some(3),
                checksum: Some(-12),
                mark: Some(RelayMark { epoch: 7, seq: 0 }),
            }),
            Payload::BookSnapshot(Box::new(BookSnapshot {
                book: BookUpdate {
                    kind: BookKind::Snapshot,
                    bids: vec![Level {
                        price: d("2.5"),
                        quantity: d("1"),
                    }],
                    asks: vec![],
                    first_update_id: None,
                    last_update_id: Some(9),
                    prev_update_id: None,
                    checksum: None,
                    mark: None,
                },
                sequence: Some(SequenceRule::PrevMatches),
                depth: Some(400),
            })),
            Payload::Funding(FundingRate {
                rate: d("0.0001"),
                next_funding_time: Some(Timestamp(1_700_000_000_000_000_000)),
                predicted_rate: None,
                mark_price: Some(d("3")),
                index_price: None,
            }),
            Payload::Liquidation(Liquidation {
                side: Side::Buy,
                price: d("2"),
                quantity: d("3"),
            }),
            Payload::Status(Status {
                state: StatusState::Gap,
                reason: "tab\there \u{1}".into(),
            }),
        ];
        for p in cases {
            let e = ev(p);
            let ours: serde_json::Value = serde_json::from_str(&to_json_line(&e)).unwrap();
            let mut want = reference(&e);
            if want["exchange_time"].is_null() {
                want.as_object_mut().unwrap().remove("exchange_time");
            }
            assert_eq!(ours, want);
            assert_eq!(
                serde_json::to_string(&ours).unwrap().len(),
                to_json_line(&e).len(),
                "compact, same text"
            );
        }
    }
}
