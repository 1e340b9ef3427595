//! The canonical fields a route can fill, per data type.

use crate::domain::DataType;

/// A canonical field a route maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The venue instrument name.
    Instrument,
    /// The canonical symbol, when the frame carries it.
    Symbol,
    /// The exchange timestamp.
    ExchangeTime,
    /// The venue key used in the event id.
    EventKey,
    /// Price (trades, liquidations).
    Price,
    /// Quantity (trades, liquidations).
    Quantity,
    /// Side (trades: taker; liquidations: the order).
    Side,
    /// The venue trade id.
    TradeId,
    /// Best bid price.
    BidPrice,
    /// Best bid quantity.
    BidQuantity,
    /// Best ask price.
    AskPrice,
    /// Best ask quantity.
    AskQuantity,
    /// Last trade price.
    LastPrice,
    /// Last trade quantity.
    LastQuantity,
    /// Price 24 h ago.
    Open24h,
    /// 24 h high.
    High24h,
    /// 24 h low.
    Low24h,
    /// 24 h base volume.
    Volume24h,
    /// 24 h quote volume.
    QuoteVolume24h,
    /// Mark price.
    MarkPrice,
    /// Index price.
    IndexPrice,
    /// Open interest.
    OpenInterest,
    /// Book message kind.
    Kind,
    /// Bid levels generator.
    Bids,
    /// Ask levels generator.
    Asks,
    /// Price of a level item.
    LevelPrice,
    /// Quantity of a level item.
    LevelQuantity,
    /// First update id.
    FirstUpdateId,
    /// Last update id.
    LastUpdateId,
    /// Previous message's last update id.
    PrevUpdateId,
    /// Venue book checksum.
    Checksum,
    /// Funding rate.
    Rate,
    /// Next funding time.
    NextFundingTime,
    /// Predicted funding rate.
    PredictedRate,
}

impl Field {
    /// Number of fields (size of per-route tables).
    pub const COUNT: usize = Field::PredictedRate as usize + 1;
}

/// What a field's value must convert to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// A decimal number, from a JSON number or numeric string; `""` and
    /// `null` mean absent.
    Decimal,
    /// Text; numbers are taken as their text.
    Text,
    /// A signed 64-bit integer (sequence numbers, checksums).
    Integer,
    /// A time: a number or numeric string in the route's `time_unit`, or an
    /// RFC 3339 string.
    Time,
    /// `buy` / `sell` / `unknown` (any case; also `b`/`s`, `bid`/`ask`).
    Side,
    /// `snapshot` or `delta`.
    BookKind,
    /// A generator of level items (each read with `level_price` and
    /// `level_quantity`).
    Levels,
}

/// A field as a route may declare it.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    /// The field.
    pub field: Field,
    /// Its name in the venue file (`[routes.fields]`).
    pub name: &'static str,
    /// What the value converts to.
    pub ty: FieldType,
    /// Whether the route must declare it.
    pub required: bool,
    /// The expression used when the route does not declare it.
    pub default: Option<&'static str>,
    /// One line of documentation.
    pub doc: &'static str,
}

const fn spec(
    field: Field,
    name: &'static str,
    ty: FieldType,
    required: bool,
    doc: &'static str,
) -> FieldSpec {
    FieldSpec {
        field,
        name,
        ty,
        required,
        default: None,
        doc,
    }
}

use FieldType as T;

macro_rules! with_common {
    ($($extra:expr),* $(,)?) => {
        &[
            spec(Field::Instrument, "instrument", T::Text, true, "The venue's instrument name of the item, e.g. `BTCUSDT`."),
            spec(Field::Symbol, "symbol", T::Text, false, "The canonical symbol, when the frame carries it; otherwise derived from the instrument by `[symbols]`."),
            spec(Field::ExchangeTime, "exchange_time", T::Time, false, "When the venue says the event happened."),
            spec(Field::EventKey, "event_key", T::Text, false, "The venue's unique key of the event (sequence, update id), used in the event id."),
            $($extra),*
        ]
    };
}

const TRADE: &[FieldSpec] = with_common![
    spec(Field::Price, "price", T::Decimal, true, "Trade price."),
    spec(
        Field::Quantity,
        "quantity",
        T::Decimal,
        true,
        "Traded quantity."
    ),
    spec(Field::Side, "side", T::Side, true, "The taker's side."),
    spec(
        Field::TradeId,
        "trade_id",
        T::Text,
        false,
        "The venue's trade id."
    ),
];

const TICKER: &[FieldSpec] = with_common![
    spec(
        Field::BidPrice,
        "bid_price",
        T::Decimal,
        false,
        "Best bid price."
    ),
    spec(
        Field::BidQuantity,
        "bid_quantity",
        T::Decimal,
        false,
        "Quantity at the best bid."
    ),
    spec(
        Field::AskPrice,
        "ask_price",
        T::Decimal,
        false,
        "Best ask price."
    ),
    spec(
        Field::AskQuantity,
        "ask_quantity",
        T::Decimal,
        false,
        "Quantity at the best ask."
    ),
    spec(
        Field::LastPrice,
        "last_price",
        T::Decimal,
        false,
        "Last trade price."
    ),
    spec(
        Field::LastQuantity,
        "last_quantity",
        T::Decimal,
        false,
        "Last trade quantity."
    ),
    spec(
        Field::Open24h,
        "open_24h",
        T::Decimal,
        false,
        "Price 24 h ago."
    ),
    spec(Field::High24h, "high_24h", T::Decimal, false, "24 h high."),
    spec(Field::Low24h, "low_24h", T::Decimal, false, "24 h low."),
    spec(
        Field::Volume24h,
        "volume_24h",
        T::Decimal,
        false,
        "24 h volume in the base asset or contracts."
    ),
    spec(
        Field::QuoteVolume24h,
        "quote_volume_24h",
        T::Decimal,
        false,
        "24 h volume in the quote asset."
    ),
    spec(
        Field::MarkPrice,
        "mark_price",
        T::Decimal,
        false,
        "Mark price."
    ),
    spec(
        Field::IndexPrice,
        "index_price",
        T::Decimal,
        false,
        "Index price."
    ),
    spec(
        Field::OpenInterest,
        "open_interest",
        T::Decimal,
        false,
        "Open interest."
    ),
];

const BOOK: &[FieldSpec] = with_common![
    spec(
        Field::Kind,
        "kind",
        T::BookKind,
        true,
        "`snapshot` or `delta`."
    ),
    spec(
        Field::Bids,
        "bids",
        T::Levels,
        false,
        "Generator of bid level items, e.g. `.b[]`."
    ),
    spec(
        Field::Asks,
        "asks",
        T::Levels,
        false,
        "Generator of ask level items, e.g. `.a[]`."
    ),
    FieldSpec {
        default: Some(".[0]"),
        ..spec(
            Field::LevelPrice,
            "level_price",
            T::Decimal,
            false,
            "Price of one level item (default `.[0]`)."
        )
    },
    FieldSpec {
        default: Some(".[1]"),
        ..spec(
            Field::LevelQuantity,
            "level_quantity",
            T::Decimal,
            false,
            "Quantity of one level item; 0 deletes (default `.[1]`)."
        )
    },
    spec(
        Field::FirstUpdateId,
        "first_update_id",
        T::Integer,
        false,
        "First update id in the message."
    ),
    spec(
        Field::LastUpdateId,
        "last_update_id",
        T::Integer,
        false,
        "Last update id in the message."
    ),
    spec(
        Field::PrevUpdateId,
        "prev_update_id",
        T::Integer,
        false,
        "Last update id of the previous message."
    ),
    spec(
        Field::Checksum,
        "checksum",
        T::Integer,
        false,
        "The venue's checksum of the book after the message."
    ),
];

const FUNDING: &[FieldSpec] = with_common![
    spec(
        Field::Rate,
        "rate",
        T::Decimal,
        true,
        "Current funding rate."
    ),
    spec(
        Field::NextFundingTime,
        "next_funding_time",
        T::Time,
        false,
        "When the rate is next applied."
    ),
    spec(
        Field::PredictedRate,
        "predicted_rate",
        T::Decimal,
        false,
        "Predicted next rate."
    ),
    spec(
        Field::MarkPrice,
        "mark_price",
        T::Decimal,
        false,
        "Mark price."
    ),
    spec(
        Field::IndexPrice,
        "index_price",
        T::Decimal,
        false,
        "Index price."
    ),
];

const LIQUIDATION: &[FieldSpec] = with_common![
    spec(
        Field::Side,
        "side",
        T::Side,
        true,
        "Side of the liquidation order (`sell` = a long was liquidated)."
    ),
    spec(Field::Price, "price", T::Decimal, true, "Price."),
    spec(Field::Quantity, "quantity", T::Decimal, true, "Quantity."),
];

/// The fields a route of `data_type` may declare.
pub fn fields_for(data_type: DataType) -> &'static [FieldSpec] {
    match data_type {
        DataType::Trade => TRADE,
        DataType::Ticker => TICKER,
        DataType::L2Orderbook => BOOK,
        DataType::FundingRate => FUNDING,
        DataType::Liquidation => LIQUIDATION,
        DataType::Status | DataType::L2Top | DataType::L2Snapshot => &[],
    }
}
