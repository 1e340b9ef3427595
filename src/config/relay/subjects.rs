//! The subjects a relay config will publish: `market.<venue>.<token>.<type>`
//! for every enabled venue's subscriptions, with the token derived as the
//! running relay derives it (the config's `symbol`, else the venue file's
//! symbol rules). Used to check, before publishing, that some stream
//! captures each of them.
//!
//! A `select` subscription adds `market.<venue>.*.<type>` the same way.
//!
//! A channel that publishes any instrument it delivers (`instruments =
//! "any"` in the venue file) adds `market.<venue>.*.<type>`: the `*` stands
//! for instruments not known in advance, and only a stream filter with a
//! wildcard there (`market.>`, `market.<venue>.*.<type>`) captures it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::{Subscription, VenueSetup};
use crate::domain::{DataType, subject};
use crate::engine::mapper::Mapper;

/// The data types a subscription publishes: those it asks for, the relay's
/// status events, and top-N book snapshots when `book_top` is set.
pub fn published_types(s: &Subscription) -> BTreeSet<DataType> {
    let mut types: BTreeSet<DataType> = s.types.iter().copied().collect();
    types.insert(DataType::Status);
    if s.book_top.is_some() {
        types.insert(DataType::L2Top);
    }
    types
}

/// Every subject the enabled venues of a config will publish, sorted.
pub fn publish_subjects(venues: &[VenueSetup]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for v in venues.iter().filter(|v| v.enabled) {
        let id: Arc<str> = Arc::from(v.id.as_str());
        for s in &v.subscriptions {
            let pinned: HashMap<String, String> = s
                .symbol
                .iter()
                .map(|sym| (s.instrument.clone(), sym.clone()))
                .collect();
            let mut mapper = Mapper::new(id.clone(), s.market.clone(), pinned);
            let instrument = mapper.resolve_symbol(&v.venue, &s.instrument);
            for t in published_types(s) {
                out.insert(subject(&v.id, &instrument.token, t));
                if v.venue.channels.get(&t).is_some_and(|ch| ch.any_instrument) {
                    out.insert(subject(&v.id, "*", t));
                }
            }
        }
        // Instruments chosen by `select` are not known in advance.
        for sel in &v.selections {
            let mut types: BTreeSet<DataType> = sel.types.iter().copied().collect();
            types.insert(DataType::Status);
            if sel.book_top.is_some() {
                types.insert(DataType::L2Top);
            }
            for t in types {
                out.insert(subject(&v.id, "*", t));
            }
        }
    }
    out
}

/// The subjects of `subjects` that none of `patterns` (stream subject
/// filters, with NATS wildcards) captures.
pub fn uncaptured<'s>(
    subjects: impl IntoIterator<Item = &'s String>,
    patterns: &[String],
) -> Vec<String> {
    subjects
        .into_iter()
        .filter(|s| {
            !patterns
                .iter()
                .any(|p| crate::domain::subject_matches(p, s))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::relay::compile_relay;
    use std::path::Path;

    fn config(venues: &str) -> crate::config::relay::RelayConfig {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = format!(
            "venues_dir = \"{}\"\n{venues}",
            root.join("venues").display()
        );
        compile_relay(&root.join("config/test.toml"), &text, |_| None).unwrap()
    }

    #[test]
    fn a_channel_of_any_instrument_adds_a_wildcard_only_wildcards_capture() {
        let cfg = config(
            r#"
[[venues]]
id = "okx"
[[venues.subscriptions]]
instrument = "BTC-USDT-SWAP"
types = ["liquidation"]
"#,
        );
        let got = publish_subjects(&cfg.venues);
        assert!(got.contains("market.okx.*.liquidation"), "{got:?}");
        assert!(
            got.contains("market.okx.btc-usdt_usdt.liquidation"),
            "{got:?}"
        );
        let lacking = uncaptured(&got, &["market.okx.btc-usdt_usdt.>".into()]);
        assert_eq!(lacking, ["market.okx.*.liquidation"]);
        assert!(uncaptured(&got, &["market.okx.*.*".into()]).is_empty());
    }

    #[test]
    fn subjects_follow_the_venue_symbol_rules_and_the_config() {
        let cfg = config(
            r#"
[[venues]]
id = "okx"
[[venues.subscriptions]]
instrument = "BTC-USDT"
types = ["trade", "l2_orderbook"]
book_top = { depth = 5, interval = "1s" }
[[venues.subscriptions]]
instrument = "ODD-PAIR"
symbol = "X/Y"
types = ["ticker"]
[[venues]]
id = "bitfinex"
enabled = false
[[venues.subscriptions]]
instrument = "tBTCUSD"
types = ["trade"]
"#,
        );
        let got: Vec<String> = publish_subjects(&cfg.venues).into_iter().collect();
        assert_eq!(
            got,
            [
                "market.okx.btc-usdt.l2_orderbook",
                "market.okx.btc-usdt.l2_top",
                "market.okx.btc-usdt.status",
                "market.okx.btc-usdt.trade",
                "market.okx.x-y.status",
                "market.okx.x-y.ticker",
            ]
        );
        let missing = uncaptured(
            &publish_subjects(&cfg.venues),
            &["market.okx.*.trade".into(), "market.okx.x-y.>".into()],
        );
        assert_eq!(
            missing,
            [
                "market.okx.btc-usdt.l2_orderbook",
                "market.okx.btc-usdt.l2_top",
                "market.okx.btc-usdt.status",
            ]
        );
    }
}
