//! `select` filters → subscriptions.

use std::collections::HashSet;

use crate::config::relay::select::{Selection, SortKey, accepts};
use crate::config::relay::{Subscription, VenueSetup};
use crate::domain::InstrumentRecord;

/// The subscriptions `selections` make from `records`: for each selection,
/// the instruments of its `statuses` (trading, by default) its filter accepts (and of its market, if it
/// names one), sorted and limited, minus instruments an earlier
/// subscription already has. `explicit` are the config's own
/// subscriptions. Filter errors on a record count as "no" and are
/// returned (first few) for the log.
pub fn choose(
    selections: &[Selection],
    explicit: &[Subscription],
    records: &[InstrumentRecord],
) -> (Vec<Subscription>, Vec<String>) {
    let mut taken: HashSet<(Option<String>, String)> = explicit
        .iter()
        .map(|s| (s.market.clone(), s.instrument.clone()))
        .collect();
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for sel in selections {
        let mut chosen: Vec<&InstrumentRecord> = records
            .iter()
            .filter(|r| sel.statuses.contains(&r.status))
            .filter(|r| sel.market.is_none() || r.market == sel.market || r.market.is_none())
            .filter(|r| match &sel.filter {
                None => true,
                Some(f) => accepts(f, r).unwrap_or_else(|e| {
                    if errors.len() < 5 {
                        errors.push(format!("{}: {e}", r.symbol));
                    }
                    false
                }),
            })
            .collect();
        sort(&mut chosen, sel.sort, sel.descending);
        let mut n = 0;
        for r in chosen {
            if sel.limit.is_some_and(|l| n >= l) {
                break;
            }
            let market = sel.market.clone().or_else(|| r.market.clone());
            if !taken.insert((market.clone(), r.symbol.clone())) {
                continue;
            }
            n += 1;
            out.push(Subscription {
                instrument: r.symbol.clone(),
                symbol: Some(r.normalized.clone()),
                market,
                types: sel.types.clone(),
                book_top: sel.book_top,
                book_snapshot: sel.book_snapshot,
            });
        }
    }
    (out, errors)
}

fn sort(v: &mut [&InstrumentRecord], key: SortKey, descending: bool) {
    match key {
        SortKey::Venue => {}
        SortKey::Symbol => v.sort_by(|a, b| a.symbol.cmp(&b.symbol)),
        SortKey::Normalized => v.sort_by(|a, b| a.normalized.cmp(&b.normalized)),
        // `None` sorts after every value.
        SortKey::Expiry => v.sort_by(|a, b| {
            (a.expiry.is_none(), a.expiry, &a.symbol).cmp(&(
                b.expiry.is_none(),
                b.expiry,
                &b.symbol,
            ))
        }),
        SortKey::Strike => v.sort_by(|a, b| {
            (a.strike.is_none(), a.strike, &a.symbol).cmp(&(
                b.strike.is_none(),
                b.strike,
                &b.symbol,
            ))
        }),
    }
    if descending {
        v.reverse();
    }
}

/// `setup` (as compiled: explicit subscriptions only) with the
/// subscriptions its `select` filters choose from `records` appended.
pub fn with_selected(
    setup: &VenueSetup,
    records: &[InstrumentRecord],
) -> (VenueSetup, Vec<String>) {
    let mut s = setup.clone();
    // On a venue with several markets, an instrument must say which.
    let usable: Vec<InstrumentRecord>;
    let records = if s.venue.markets.is_empty() {
        records
    } else {
        usable = records
            .iter()
            .filter(|r| r.market.is_some())
            .cloned()
            .collect();
        &usable
    };
    let (chosen, errors) = choose(&s.selections, &s.subscriptions, records);
    s.subscriptions.extend(chosen);
    (s, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::relay::select::compile_select;
    use crate::domain::{DataType, InstrumentKind, TradingStatus};

    fn rec(symbol: &str, status: TradingStatus) -> InstrumentRecord {
        InstrumentRecord {
            venue: "v".into(),
            symbol: symbol.into(),
            normalized: symbol.into(),
            market: None,
            kind: InstrumentKind::Perpetual,
            base: "BTC".into(),
            quote: "USDT".into(),
            settle: None,
            tick_size: None,
            lot_size: None,
            contract_size: None,
            multiplier: None,
            expiry: None,
            strike: None,
            option_type: None,
            status,
        }
    }

    fn selection(statuses: &[TradingStatus]) -> Selection {
        Selection {
            filter: Some(compile_select(r#"kind == "perpetual""#).unwrap()),
            limit: None,
            sort: SortKey::Symbol,
            descending: false,
            statuses: statuses.to_vec(),
            market: None,
            types: vec![DataType::Trade],
            book_top: None,
            book_snapshot: None,
        }
    }

    fn chosen(statuses: &[TradingStatus], records: &[InstrumentRecord]) -> Vec<String> {
        let (subs, errors) = choose(&[selection(statuses)], &[], records);
        assert!(errors.is_empty(), "{errors:?}");
        subs.into_iter().map(|s| s.instrument).collect()
    }

    #[test]
    fn halted_instruments_are_selected_only_when_the_selection_asks_for_them() {
        let records = [
            rec("A", TradingStatus::Trading),
            rec("B", TradingStatus::Halted),
            rec("C", TradingStatus::Delisted),
        ];
        assert_eq!(chosen(&[TradingStatus::Trading], &records), ["A"]);
        assert_eq!(
            chosen(&[TradingStatus::Trading, TradingStatus::Halted], &records),
            ["A", "B"]
        );
        assert_eq!(chosen(&[TradingStatus::Halted], &records), ["B"]);
    }
}
