//! The payloads of canonical events, one struct per data type.

use rust_decimal::Decimal;
use serde::Serialize;

use super::{DataType, Timestamp};

/// The taker's side of a trade, or the side of a liquidation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The aggressor bought (lifted the ask).
    Buy,
    /// The aggressor sold (hit the bid).
    Sell,
    /// The venue does not say.
    Unknown,
}

impl Side {
    /// Parse a mapping's side value: `buy`/`sell`/`unknown`, any case, also
    /// `b`/`s`, `bid`/`ask`. Returns `None` for anything else.
    pub fn parse(text: &str) -> Option<Side> {
        const TABLE: [(&str, Side); 7] = [
            ("buy", Side::Buy),
            ("sell", Side::Sell),
            ("unknown", Side::Unknown),
            ("b", Side::Buy),
            ("s", Side::Sell),
            ("bid", Side::Buy),
            ("ask", Side::Sell),
        ];
        TABLE
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|(_, side)| *side)
    }

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
            Side::Unknown => "unknown",
        }
    }
}

/// A public trade. `side` is the taker's side.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trade {
    /// Trade price.
    pub price: Decimal,
    /// Traded quantity, in the venue's unit (base asset or contracts).
    pub quantity: Decimal,
    /// The taker's side.
    pub side: Side,
    /// The venue's trade id, when it gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_id: Option<String>,
}

/// Best bid/ask and optional 24 h statistics and derivatives marks.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Ticker {
    /// Best bid price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bid_price: Option<Decimal>,
    /// Quantity at the best bid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bid_quantity: Option<Decimal>,
    /// Best ask price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ask_price: Option<Decimal>,
    /// Quantity at the best ask.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ask_quantity: Option<Decimal>,
    /// Last trade price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_price: Option<Decimal>,
    /// Last trade quantity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_quantity: Option<Decimal>,
    /// Price 24 h ago.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_24h: Option<Decimal>,
    /// Highest price over 24 h.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_24h: Option<Decimal>,
    /// Lowest price over 24 h.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_24h: Option<Decimal>,
    /// Traded volume over 24 h in the base asset (or contracts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_24h: Option<Decimal>,
    /// Traded volume over 24 h in the quote asset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quote_volume_24h: Option<Decimal>,
    /// Mark price (derivatives).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark_price: Option<Decimal>,
    /// Index price (derivatives).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_price: Option<Decimal>,
    /// Open interest (derivatives), in contracts or base asset as the venue gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_interest: Option<Decimal>,
}

/// One price level. A quantity of zero deletes the level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Level {
    /// Price of the level.
    pub price: Decimal,
    /// Total quantity at the price; zero means "remove this level".
    pub quantity: Decimal,
}

/// Whether a book message replaces the book or changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BookKind {
    /// The complete book (or its top N levels): replace what you hold.
    Snapshot,
    /// Changes to apply: set each level's quantity, remove quantity-zero levels.
    Delta,
}

/// An L2 order-book snapshot or delta, with the venue's sequence fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BookUpdate {
    /// Snapshot or delta.
    pub kind: BookKind,
    /// Bid levels as given by the venue.
    pub bids: Vec<Level>,
    /// Ask levels as given by the venue.
    pub asks: Vec<Level>,
    /// First update id covered by this message (e.g. Binance `U`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_update_id: Option<i64>,
    /// Last update id covered by this message (e.g. Binance `u`, OKX `seqId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_id: Option<i64>,
    /// The last update id of the previous message (e.g. Binance futures `pu`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_update_id: Option<i64>,
    /// The venue's checksum of the book after this message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<i64>,
    /// The relay's position mark (books of venues without a sequence rule
    /// whose subscription publishes `l2_snapshot`s); `None` otherwise.
    #[serde(skip)]
    pub mark: Option<RelayMark>,
}

/// Where a book event sits in the relay's own numbering of an instrument's
/// book stream, for venues whose updates carry no usable sequence ids.
///
/// An epoch starts at every published book snapshot (and at the first book
/// event of a connection session); epochs only grow within a relay process.
/// `seq` counts the instrument's published book events within the epoch
/// (the snapshot that starts it is 0). A delta `(e, s)` follows `(e, s - 1)`;
/// an `l2_snapshot` marked `(e, s)` contains every book event `(e, s')` with
/// `s' <= s` and every event of an older epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelayMark {
    /// The epoch (microseconds since the Unix epoch when it started, made
    /// strictly increasing within the process).
    pub epoch: i64,
    /// The event's number within the epoch.
    pub seq: i64,
}

/// A full-depth snapshot of the book the relay maintains for an instrument
/// (`l2_snapshot`), with what a consumer needs to continue it from the
/// `l2_orderbook` stream.
#[derive(Clone, Debug, PartialEq)]
pub struct BookSnapshot {
    /// Every level the relay holds (`kind` snapshot). `last_update_id` is the
    /// last venue update id applied (venues with a sequence rule); `mark` is
    /// the relay mark of the last book event applied (venues without one).
    pub book: BookUpdate,
    /// The venue's sequence rule: how each later delta links to the one
    /// before (absent: the venue has none; use the marks).
    pub sequence: Option<super::SequenceRule>,
    /// Levels per side the relay keeps (the venue caps its book): after
    /// applying a delta, drop the levels beyond it, as the relay does.
    pub depth: Option<usize>,
}

/// A funding-rate update of a perpetual contract.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FundingRate {
    /// The current funding rate (fraction per funding interval).
    pub rate: Decimal,
    /// When the current rate is next applied.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_rfc3339"
    )]
    pub next_funding_time: Option<Timestamp>,
    /// The venue's predicted rate for the following interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_rate: Option<Decimal>,
    /// Mark price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark_price: Option<Decimal>,
    /// Index price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_price: Option<Decimal>,
}

/// A liquidation order. `side` is the side of the liquidation order itself:
/// `sell` means a long position was liquidated, `buy` a short one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Liquidation {
    /// Side of the liquidation order.
    pub side: Side,
    /// Price (bankruptcy or order price, as the venue gives it).
    pub price: Decimal,
    /// Quantity, in the venue's unit.
    pub quantity: Decimal,
}

/// What happened to a venue connection or an instrument's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusState {
    /// A connection was established.
    Connected,
    /// A connection was lost; data may be missing until `resubscribed`.
    Disconnected,
    /// Subscriptions were re-established after a reconnect.
    Resubscribed,
    /// Data was missed (sequence gap, checksum mismatch); a resync follows.
    Gap,
    /// No event of a data type of the instrument for longer than expected
    /// while its connection lives; the relay resubscribes it.
    Stale,
    /// Events of a stale data type arrive again.
    Live,
    /// The instrument is no longer subscribed: a `select` filter stopped
    /// choosing it (delisted, halted, or no longer matching). No more
    /// events of it follow.
    Unsubscribed,
}

impl StatusState {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            StatusState::Connected => "connected",
            StatusState::Disconnected => "disconnected",
            StatusState::Resubscribed => "resubscribed",
            StatusState::Gap => "gap",
            StatusState::Stale => "stale",
            StatusState::Live => "live",
            StatusState::Unsubscribed => "unsubscribed",
        }
    }
}

/// A relay status event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    /// What happened.
    pub state: StatusState,
    /// Why, in words.
    pub reason: String,
}

/// The payload of an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// A trade.
    Trade(Trade),
    /// A ticker.
    Ticker(Box<Ticker>),
    /// An order-book update.
    Book(BookUpdate),
    /// A funding rate.
    Funding(FundingRate),
    /// A liquidation.
    Liquidation(Liquidation),
    /// A relay status event.
    Status(Status),
    /// A top-N snapshot of the book the relay maintains (`kind` snapshot).
    BookTop(BookUpdate),
    /// A full-depth snapshot of the book the relay maintains.
    BookSnapshot(Box<BookSnapshot>),
}

impl Ticker {
    /// Every field, in declaration order (= the protobuf field numbers 1–14
    /// and the order the content hash reads them).
    pub fn fields(&self) -> [&Option<Decimal>; 14] {
        [
            &self.bid_price,
            &self.bid_quantity,
            &self.ask_price,
            &self.ask_quantity,
            &self.last_price,
            &self.last_quantity,
            &self.open_24h,
            &self.high_24h,
            &self.low_24h,
            &self.volume_24h,
            &self.quote_volume_24h,
            &self.mark_price,
            &self.index_price,
            &self.open_interest,
        ]
    }
}

impl Payload {
    /// The data type of this payload.
    pub fn data_type(&self) -> DataType {
        match self {
            Payload::Trade(_) => DataType::Trade,
            Payload::Ticker(_) => DataType::Ticker,
            Payload::Book(_) => DataType::L2Orderbook,
            Payload::Funding(_) => DataType::FundingRate,
            Payload::Liquidation(_) => DataType::Liquidation,
            Payload::Status(_) => DataType::Status,
            Payload::BookTop(_) => DataType::L2Top,
            Payload::BookSnapshot(_) => DataType::L2Snapshot,
        }
    }
}

fn opt_rfc3339<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.to_rfc3339()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_parsing_is_case_insensitive_and_strict() {
        assert_eq!(Side::parse("Buy"), Some(Side::Buy));
        assert_eq!(Side::parse("SELL"), Some(Side::Sell));
        assert_eq!(Side::parse("ask"), Some(Side::Sell));
        assert_eq!(Side::parse("long"), None);
    }

    #[test]
    fn decimals_keep_the_venue_value_exactly() {
        // Scale (trailing zeros) and all digits survive the round trip.
        for text in [
            "0.35280000",
            "0.00000638",
            "1.7023900800000002",
            "60400",
            "-0.00154",
        ] {
            let d = Decimal::from_str_exact(text).unwrap();
            assert_eq!(d.to_string(), text);
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{text}\""));
        }
    }
}

/// A decimal's exact text (as `Display` writes it, scale included),
/// formatted on the stack: several times faster than `Decimal`'s own
/// `Display`, which matters once per price and quantity published.
pub struct DecimalText<'a>(pub &'a Decimal);

impl DecimalText<'_> {
    /// Render into `buf`, returning the text's length. 29 significant
    /// digits, a sign, a point and up to 28 zeros after it fit in 64 bytes.
    pub fn render(&self, buf: &mut [u8; 64]) -> usize {
        let d = self.0;
        let scale = d.scale() as usize;
        let m = d.mantissa();
        // itoa writes two digits per step (u128 covers the 96-bit mantissa).
        let mut itoa_buf = itoa::Buffer::new();
        let abs = m.unsigned_abs();
        let digits = match u64::try_from(abs) {
            Ok(v) => itoa_buf.format(v),
            Err(_) => itoa_buf.format(abs),
        }
        .as_bytes();
        let n = digits.len();
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            buf[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        if m < 0 {
            put(b"-");
        }
        if scale == 0 {
            put(digits);
        } else if n <= scale {
            put(b"0.");
            for _ in 0..scale - n {
                put(b"0");
            }
            put(digits);
        } else {
            put(&digits[..n - scale]);
            put(b".");
            put(&digits[n - scale..]);
        }
        len
    }

    /// Append the text to `out` without going through `fmt`.
    pub fn push_to(&self, out: &mut String) {
        let mut buf = [0u8; 64];
        let n = self.render(&mut buf);
        // Only ASCII was written.
        out.push_str(std::str::from_utf8(&buf[..n]).unwrap_or("0"));
    }
}

impl std::fmt::Display for DecimalText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0u8; 64];
        let n = self.render(&mut buf);
        f.write_str(std::str::from_utf8(&buf[..n]).unwrap_or("0"))
    }
}

/// Append a decimal's exact text to `out` (see [`DecimalText`]).
pub fn write_decimal(d: &Decimal, out: &mut String) {
    DecimalText(d).push_to(out);
}

#[cfg(test)]
mod decimal_text_tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn matches_display_exactly() {
        for t in [
            "0",
            "-0.5",
            "0.00000638",
            "60400",
            "1.7023900800000002",
            "-12.30",
            "0.0",
            "79228162514264337593543950335",
            "-0.0000000000000000000000000001",
        ] {
            let d = Decimal::from_str(t).unwrap();
            let mut s = String::new();
            write_decimal(&d, &mut s);
            assert_eq!(s, d.to_string(), "{t}");
        }
    }

    proptest::proptest! {
        #[test]
        fn matches_display_for_any_decimal(m in proptest::num::i64::ANY, scale in 0u32..20) {
            let d = Decimal::new(m, scale);
            let mut s = String::new();
            write_decimal(&d, &mut s);
            proptest::prop_assert_eq!(s, d.to_string());
        }
    }
}
