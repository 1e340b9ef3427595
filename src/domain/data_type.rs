//! The kinds of canonical events, with their wire names.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kind of a canonical event. The wire name (`trade`, `ticker`, ...) is the
/// last token of the NATS subject and the `data_type` field of every event.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// A public trade (one fill).
    Trade,
    /// Best bid/ask and 24 h statistics.
    Ticker,
    /// An L2 order-book snapshot or delta.
    L2Orderbook,
    /// A funding-rate update of a perpetual contract.
    FundingRate,
    /// A liquidation order.
    Liquidation,
    /// A relay status event (connected, disconnected, gap, ...). Published by
    /// the relay itself, never produced by a venue mapping or subscribed to.
    Status,
    /// A periodic top-N snapshot of the book the relay maintains from the
    /// venue's `l2_orderbook` stream (a subscription's `book_top`). Published
    /// by the relay itself.
    L2Top,
    /// A full-depth snapshot of the book the relay maintains, positioned in
    /// the `l2_orderbook` stream (a subscription's `book_snapshot`): where a
    /// late consumer starts. Published by the relay itself.
    L2Snapshot,
}

/// Error for a string that names no data type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown data type `{0}` (expected one of: trade, ticker, l2_orderbook, funding_rate, liquidation, status, l2_top, l2_snapshot)"
)]
pub struct UnknownDataType(pub String);

impl DataType {
    /// The five market data types a venue mapping can produce, in wire order.
    pub const MARKET: [DataType; 5] = [
        DataType::Trade,
        DataType::Ticker,
        DataType::L2Orderbook,
        DataType::FundingRate,
        DataType::Liquidation,
    ];

    /// Every data type, in [`DataType::index`] order: the market types,
    /// then the ones the relay publishes itself.
    pub const ALL: [DataType; 8] = [
        DataType::Trade,
        DataType::Ticker,
        DataType::L2Orderbook,
        DataType::FundingRate,
        DataType::Liquidation,
        DataType::Status,
        DataType::L2Top,
        DataType::L2Snapshot,
    ];

    /// The wire name, e.g. `l2_orderbook`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DataType::Trade => "trade",
            DataType::Ticker => "ticker",
            DataType::L2Orderbook => "l2_orderbook",
            DataType::FundingRate => "funding_rate",
            DataType::Liquidation => "liquidation",
            DataType::Status => "status",
            DataType::L2Top => "l2_top",
            DataType::L2Snapshot => "l2_snapshot",
        }
    }

    /// A dense index (0..8) for per-type tables.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = UnknownDataType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownDataType(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for t in DataType::MARKET {
            assert_eq!(t.as_str().parse::<DataType>().unwrap(), t);
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.as_str())
            );
        }
        assert!("trades".parse::<DataType>().is_err());
        for (i, t) in DataType::ALL.into_iter().enumerate() {
            assert_eq!(t.index(), i);
            assert_eq!(t.as_str().parse::<DataType>().unwrap(), t);
        }
    }
}
