//! `select` filters of the relay config: jq predicates over canonical
//! instrument records, where each record field can also be named bare
//! (`kind == "perpetual" and quote == "USDT"` is `.kind == "perpetual" and
//! .quote == "USDT"`).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{Jq, Problems};
use crate::domain::{DataType, InstrumentRecord};
use crate::engine::expr::{Expr, JqCompileError, Scope, V};
use crate::engine::json::OwnedDoc;

use super::BookTop;

/// The record fields a filter may name bare: the request's `venue` and
/// `market`, and the mapped record's keys.
fn fields() -> impl Iterator<Item = &'static str> {
    ["venue", "market"]
        .into_iter()
        .chain(crate::domain::RECORD_KEYS)
}

/// The order in which a `limit` keeps instruments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    /// By venue symbol (default).
    #[default]
    Symbol,
    /// By canonical symbol.
    Normalized,
    /// By expiry (none last), then symbol.
    Expiry,
    /// By strike (none last), then symbol.
    Strike,
    /// As the venue lists them.
    Venue,
}

/// A subscription by filter: every instrument of the venue's reference data
/// the filter accepts, with the same data types and book options.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The filter (`None`: every instrument).
    pub filter: Option<Expr>,
    /// Keep at most this many (after sorting).
    pub limit: Option<usize>,
    /// Sort key.
    pub sort: SortKey,
    /// Sort descending.
    pub descending: bool,
    /// The trading statuses selected (default: trading only).
    pub statuses: Vec<crate::domain::TradingStatus>,
    /// Only instruments of this market (multi-market venues).
    pub market: Option<String>,
    /// Data types.
    pub types: Vec<DataType>,
    /// Periodic top-N snapshots.
    pub book_top: Option<BookTop>,
    /// Interval of full-depth snapshots.
    pub book_snapshot: Option<super::SnapshotPolicy>,
}

impl PartialEq for Selection {
    fn eq(&self, o: &Self) -> bool {
        self.filter.as_ref().map(Expr::source) == o.filter.as_ref().map(Expr::source)
            && self.limit == o.limit
            && self.sort == o.sort
            && self.descending == o.descending
            && self.statuses == o.statuses
            && self.market == o.market
            && self.types == o.types
            && self.book_top == o.book_top
            && self.book_snapshot == o.book_snapshot
    }
}

impl Selection {
    /// A selection from its subscription entry, with the book options
    /// already checked.
    pub(super) fn new(
        filter: Option<Expr>,
        s: &super::raw::RawSubscription,
        book_top: Option<BookTop>,
        book_snapshot: Option<super::SnapshotPolicy>,
    ) -> Self {
        Selection {
            filter,
            limit: s.limit,
            sort: s.sort.unwrap_or_default(),
            descending: s.descending,
            statuses: s
                .statuses
                .clone()
                .unwrap_or_else(|| vec![crate::domain::TradingStatus::Trading]),
            market: s.market.clone(),
            types: s.types.clone(),
            book_top,
            book_snapshot,
        }
    }
}

fn prelude() -> String {
    fields().map(|f| format!("def {f}: .{f}; ")).collect()
}

/// Compile a filter; error offsets are into `text`.
pub fn compile_select(text: &str) -> Result<Expr, Vec<JqCompileError>> {
    let prelude = prelude();
    Expr::compile(&format!("{prelude}{text}")).map_err(|errs| {
        errs.into_iter()
            .map(|e| JqCompileError {
                offset: e.offset.saturating_sub(prelude.len()),
                message: e.message,
            })
            .collect()
    })
}

/// Compile a filter from the config, recording errors at their place.
pub(super) fn compile_at(jq: &Jq, field: &str, p: &mut Problems<'_>) -> Option<Expr> {
    match compile_select(jq.text()) {
        Ok(e) => Some(e),
        Err(errs) => {
            for e in errs {
                let at = jq.offset_in_file(p.src(), e.offset);
                p.at(Some(at..at), field, format!("jq: {}", e.message));
            }
            None
        }
    }
}

/// Whether `filter` accepts `record` (an error or no output: no).
pub fn accepts(filter: &Expr, record: &InstrumentRecord) -> Result<bool, String> {
    // A record always serializes to valid JSON.
    let doc = OwnedDoc::parse(record.to_json()).map_err(|e| e.to_string())?;
    match filter.first(&V::from_doc(doc.root()), &Scope::new()) {
        Ok(v) => Ok(v.is_some_and(|v| v.truthy())),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{InstrumentKind, TradingStatus};

    fn rec(symbol: &str, kind: InstrumentKind, quote: &str) -> InstrumentRecord {
        InstrumentRecord {
            venue: "v".into(),
            symbol: symbol.into(),
            normalized: symbol.into(),
            market: None,
            kind,
            base: "BTC".into(),
            quote: quote.into(),
            settle: None,
            tick_size: Some("0.1".parse().unwrap()),
            lot_size: None,
            contract_size: None,
            multiplier: None,
            expiry: None,
            strike: None,
            option_type: None,
            status: TradingStatus::Trading,
        }
    }

    #[test]
    fn bare_field_names_and_paths_both_work() {
        let f = compile_select(r#"kind == "perpetual" and quote == "USDT""#).unwrap();
        let g = compile_select(r#".kind == "perpetual" and (.tick_size | tonumber) < 1"#).unwrap();
        let a = rec("BTCUSDT", InstrumentKind::Perpetual, "USDT");
        let b = rec("BTCUSD", InstrumentKind::Perpetual, "USD");
        let c = rec("BTC-USDT", InstrumentKind::Spot, "USDT");
        assert_eq!(accepts(&f, &a), Ok(true));
        assert_eq!(accepts(&f, &b), Ok(false));
        assert_eq!(accepts(&f, &c), Ok(false));
        assert_eq!(accepts(&g, &a), Ok(true));
    }

    #[test]
    fn errors_point_into_the_filter_text() {
        let errs = compile_select(r#"kind == "perpetual" and nosuch"#).unwrap_err();
        assert!(errs.iter().any(|e| e.offset == 24), "{errs:?}");
    }
}
