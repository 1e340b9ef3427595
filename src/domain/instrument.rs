//! Instrument reference data: what a venue lists about each instrument it
//! trades, in one canonical record per instrument (kind, assets, tick and
//! lot size, contract terms, status). Mapped from the venue's REST
//! reference-data response by the `[[reference]]` requests of its file.

use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Timestamp;

/// What kind of contract an instrument is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentKind {
    /// Spot: the base asset itself.
    Spot,
    /// A future with no expiry (a swap with funding).
    Perpetual,
    /// A future that expires.
    Future,
    /// An option.
    Option,
}

/// Call or put.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionType {
    /// The right to buy.
    Call,
    /// The right to sell.
    Put,
}

/// Whether the instrument trades.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TradingStatus {
    /// Listed and trading.
    Trading,
    /// Listed, not trading now (halted, suspended, pre-launch, restricted).
    Halted,
    /// Removed or being removed from trading (delisting, settled,
    /// delivered).
    Delisted,
}

macro_rules! names {
    ($t:ty { $($v:ident = $s:literal),* $(,)? }) => {
        impl $t {
            /// Every value.
            pub const ALL: &'static [$t] = &[$(<$t>::$v),*];
            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
            /// Parse a wire name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(<$t>::$v),)* _ => None }
            }
        }
    };
}
names!(InstrumentKind { Spot = "spot", Perpetual = "perpetual", Future = "future", Option = "option" });
names!(OptionType { Call = "call", Put = "put" });
names!(TradingStatus { Trading = "trading", Halted = "halted", Delisted = "delisted" });

/// The keys a reference mapping's record may have (every field of
/// [`InstrumentRecord`] a venue gives; `venue` and `market` come from the
/// request).
pub const RECORD_KEYS: [&str; 14] = [
    "symbol",
    "normalized",
    "kind",
    "base",
    "quote",
    "settle",
    "tick_size",
    "lot_size",
    "contract_size",
    "multiplier",
    "expiry",
    "strike",
    "option_type",
    "status",
];

/// One instrument's reference data, canonical. Decimals are exact
/// (`rust_decimal`), serialized as strings like every price on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrumentRecord {
    /// The venue id.
    pub venue: String,
    /// The venue's instrument name (what subscriptions use), e.g. `BTCUSDT`.
    pub symbol: String,
    /// The canonical symbol (`BTC/USDT`, `BTC/USDT:USDT`), the one in
    /// subjects.
    pub normalized: String,
    /// The market of the venue it trades on (multi-market venues).
    pub market: Option<String>,
    /// Spot, perpetual, future or option.
    pub kind: InstrumentKind,
    /// Base asset.
    pub base: String,
    /// Quote asset.
    pub quote: String,
    /// Settlement asset (derivatives).
    pub settle: Option<String>,
    /// Smallest price increment.
    pub tick_size: Option<Decimal>,
    /// Smallest quantity increment.
    pub lot_size: Option<Decimal>,
    /// Size of one contract, in the venue's contract unit.
    pub contract_size: Option<Decimal>,
    /// Price multiplier of a contract.
    pub multiplier: Option<Decimal>,
    /// When it expires (futures, options).
    #[serde(with = "rfc3339")]
    pub expiry: Option<Timestamp>,
    /// Strike price (options).
    pub strike: Option<Decimal>,
    /// Call or put (options).
    pub option_type: Option<OptionType>,
    /// Trading, halted or delisted.
    pub status: TradingStatus,
}

impl InstrumentRecord {
    /// The canonical JSON object (the KV value and the input of `select`
    /// filters).
    pub fn to_json(&self) -> String {
        // A struct of strings, decimals and enums always serializes.
        serde_json::to_string(self).expect("instrument records serialize")
    }

    /// The record with `status` changed (to compare everything else).
    pub fn with_status(&self, status: TradingStatus) -> Self {
        InstrumentRecord {
            status,
            ..self.clone()
        }
    }
}

mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::domain::Timestamp;

    pub(super) fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.to_rfc3339()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            Timestamp::from_rfc3339(&t)
                .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {t}")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_their_json() {
        let r = InstrumentRecord {
            venue: "v".into(),
            symbol: "BTC-27MAR26-70000-P".into(),
            normalized: "BTC/USD:BTC-260327-70000-P".into(),
            market: None,
            kind: InstrumentKind::Option,
            base: "BTC".into(),
            quote: "USD".into(),
            settle: Some("BTC".into()),
            tick_size: Some("0.0005".parse().unwrap()),
            lot_size: Some("0.1".parse().unwrap()),
            contract_size: Some(Decimal::ONE),
            multiplier: None,
            expiry: Timestamp::from_rfc3339("2026-03-27T08:00:00Z"),
            strike: Some(70000.into()),
            option_type: Some(OptionType::Put),
            status: TradingStatus::Trading,
        };
        let json = r.to_json();
        assert!(json.contains(r#""tick_size":"0.0005""#), "{json}");
        assert!(json.contains(r#""expiry":"2026-03-27T08:00:00"#), "{json}");
        let back: InstrumentRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
