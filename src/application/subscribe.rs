//! Subscriptions: from the relay config's instruments and data types to
//! subscription items, connections (split by the venue's per-connection
//! limit), and the subscribe messages built by the venue's templates.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::config::relay::{BookTop, SnapshotPolicy, VenueSetup};
use crate::domain::DataType;
use crate::engine::expr::{Expr, Scope, V, Var};
use crate::engine::json::OwnedDoc;
use crate::engine::mapper::message_text;
use crate::engine::venue::{Batch, Venue};

/// One subscription item, as the templates see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// The first data type that asked for this channel.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// The venue's channel name.
    pub channel: String,
    /// The venue instrument.
    pub instrument: String,
    /// The canonical symbol from the relay config, if given.
    pub symbol: Option<String>,
    /// The market.
    pub market: Option<String>,
    /// The channel's extra parameters.
    pub params: serde_json::Value,
}

/// What one connection carries.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnPlan {
    /// The market (for multi-market venues).
    pub market: Option<String>,
    /// Subscription items.
    pub items: Vec<Item>,
    /// Data types wanted on this connection (events of other types are
    /// not published).
    pub types: BTreeSet<DataType>,
    /// Instrument → symbol given in the relay config.
    pub pinned: HashMap<String, String>,
    /// The instruments, for status events.
    pub instruments: Vec<String>,
    /// Instrument → periodic top-N snapshots wanted (its book is on this
    /// connection).
    pub book_tops: BTreeMap<String, BookTop>,
    /// Instrument → interval of full-depth `l2_snapshot`s (its book is on
    /// this connection).
    pub book_snapshots: BTreeMap<String, SnapshotPolicy>,
    /// Per-instrument liveness overrides from the relay config.
    pub liveness: BTreeMap<DataType, crate::config::Expect>,
}

/// A venue's subscription items per market, each channel of each
/// instrument once, in the order of the relay config.
pub fn market_items(setup: &VenueSetup) -> BTreeMap<Option<String>, Vec<Item>> {
    let venue = &setup.venue;
    let mut by_market: BTreeMap<Option<String>, Vec<Item>> = BTreeMap::new();
    for s in &setup.subscriptions {
        let items = by_market.entry(s.market.clone()).or_default();
        for t in &s.types {
            let Some(ch) = venue.channels.get(t) else {
                continue;
            };
            let item = Item {
                data_type: *t,
                channel: ch.name.clone(),
                instrument: s.instrument.clone(),
                symbol: s.symbol.clone(),
                market: s.market.clone(),
                params: ch.params.clone(),
            };
            if !items.iter().any(|i| i.same_stream(&item)) {
                items.push(item);
            }
        }
    }
    by_market
}

impl Item {
    /// Whether `other` is the same stream (channel, instrument, parameters).
    pub fn same_stream(&self, other: &Item) -> bool {
        self.channel == other.channel
            && self.instrument == other.instrument
            && self.params == other.params
            && self.market == other.market
    }
}

impl ConnPlan {
    /// The plan of a connection carrying `items` of `market`; the rest
    /// (data types, pinned symbols, book wishes, liveness) from `setup`.
    pub fn for_items(setup: &VenueSetup, market: Option<String>, items: Vec<Item>) -> ConnPlan {
        let venue = &setup.venue;
        let in_market = || setup.subscriptions.iter().filter(|s| s.market == market);
        let mut types = BTreeSet::new();
        let mut pinned = HashMap::new();
        let mut tops = HashMap::new();
        let mut snapshots = HashMap::new();
        for s in in_market() {
            types.extend(s.types.iter().filter(|t| venue.channels.contains_key(t)));
            if let Some(sym) = &s.symbol {
                pinned.insert(s.instrument.clone(), sym.clone());
            }
            if let Some(top) = s.book_top {
                tops.insert(s.instrument.as_str(), top);
            }
            if let Some(every) = s.book_snapshot {
                snapshots.insert(s.instrument.as_str(), every);
            }
        }
        let books = || {
            items
                .iter()
                .filter(|i| i.data_type == DataType::L2Orderbook)
                .map(|i| i.instrument.as_str())
        };
        let book_tops = books()
            .filter_map(|i| Some((i.to_owned(), *tops.get(i)?)))
            .collect();
        let book_snapshots = books()
            .filter_map(|i| Some((i.to_owned(), *snapshots.get(i)?)))
            .collect();
        let instruments: BTreeSet<&str> = items.iter().map(|i| i.instrument.as_str()).collect();
        let instruments = instruments.into_iter().map(str::to_owned).collect();
        ConnPlan {
            market,
            types,
            pinned,
            instruments,
            book_tops,
            book_snapshots,
            liveness: setup.liveness.clone(),
            items,
        }
    }

    /// The intervals of the top-N and full-depth book snapshots it keeps
    /// (the session's snapshot timers).
    pub fn book_intervals(&self) -> (Vec<std::time::Duration>, Vec<std::time::Duration>) {
        (
            self.book_tops.values().map(|t| t.interval).collect(),
            self.book_snapshots.values().map(|s| s.interval).collect(),
        )
    }

    /// The most items a connection of this venue may carry (`max_streams`).
    pub fn capacity(setup: &VenueSetup) -> usize {
        setup
            .venue
            .connection
            .max_streams
            .unwrap_or(usize::MAX)
            .max(1)
    }
}

/// Split a venue's subscriptions into connection plans: one group per
/// market, split further so no connection exceeds `max_streams` items.
pub fn plan_connections(setup: &VenueSetup) -> Vec<ConnPlan> {
    let max = ConnPlan::capacity(setup);
    let mut plans = Vec::new();
    for (market, items) in market_items(setup) {
        for chunk in items.chunks(max) {
            plans.push(ConnPlan::for_items(setup, market.clone(), chunk.to_vec()));
        }
    }
    plans
}

/// Group items into message batches per the venue's batch mode.
pub fn batches<'i>(venue: &Venue, market: Option<&str>, items: &'i [Item]) -> Vec<Vec<&'i Item>> {
    let max = market
        .and_then(|m| venue.markets.get(m))
        .and_then(|m| m.max_items_per_message)
        .or(venue.subscribe.max_items_per_message)
        .unwrap_or(usize::MAX)
        .max(1);
    let mut groups: Vec<(String, Vec<&Item>)> = Vec::new();
    for item in items {
        let key = match venue.subscribe.batch {
            Batch::All => String::new(),
            Batch::Channel => item.channel.clone(),
            Batch::Instrument => item.instrument.clone(),
            Batch::None => format!("{}\u{0}{}", item.channel, item.instrument),
        };
        match groups
            .iter_mut()
            .find(|(k, g)| *k == key && g.len() < max && venue.subscribe.batch != Batch::None)
        {
            Some((_, g)) => g.push(item),
            None => groups.push((key, vec![item])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// Variables for templates.
pub struct TemplateVars<'v> {
    /// Venue id.
    pub venue: &'v str,
    /// Market.
    pub market: Option<&'v str>,
    /// Next request id (incremented per message).
    pub request_id: &'v mut u64,
    /// Wall-clock milliseconds.
    pub now_ms: i64,
}

/// Evaluate a template on `input` (JSON text) and return the messages.
pub fn render(
    template: &Expr,
    input_json: &str,
    vars: &mut TemplateVars<'_>,
) -> Result<Vec<String>, String> {
    let doc = OwnedDoc::parse(input_json.to_owned()).map_err(|e| e.to_string())?;
    *vars.request_id += 1;
    let mut scope = Scope::new();
    scope
        .set(Var::Venue, V::Str(vars.venue.into()))
        .set(Var::RequestId, V::Num(vars.request_id.to_string().into()))
        .set(Var::NowMs, V::Num(vars.now_ms.to_string().into()));
    if let Some(m) = vars.market {
        scope.set(Var::Market, V::Str(m.into()));
    }
    let out = template
        .collect(&V::from_doc(doc.root()), &scope)
        .map_err(|e| e.to_string())?;
    Ok(out.iter().map(message_text).collect())
}

/// The subscribe (or unsubscribe) messages for a connection's items.
pub fn subscribe_messages(
    venue: &Venue,
    template: &Expr,
    market: Option<&str>,
    items: &[Item],
    request_id: &mut u64,
) -> Result<Vec<String>, String> {
    let mut messages = Vec::new();
    for group in batches(venue, market, items) {
        let json = serde_json::to_string(&group).map_err(|e| e.to_string())?;
        let mut vars = TemplateVars {
            venue: &venue.id,
            market,
            request_id,
            now_ms: crate::domain::Timestamp::now().as_millis(),
        };
        messages.extend(render(template, &json, &mut vars)?);
    }
    Ok(messages)
}

/// The connection URL: the override, else the market's, else the venue's,
/// with the venue's `url_query` (built from all items) appended.
pub fn connection_url(
    venue: &Venue,
    url_override: Option<&str>,
    market: Option<&str>,
    items: &[Item],
) -> Result<String, String> {
    let base = url_override
        .map(str::to_owned)
        .or_else(|| {
            market
                .and_then(|m| venue.markets.get(m))
                .map(|m| m.url.clone())
        })
        .or_else(|| venue.connection.url.clone())
        .ok_or_else(|| "no URL for this market".to_owned())?;
    let Some(q) = &venue.connection.url_query else {
        return Ok(base);
    };
    let json = serde_json::to_string(items).map_err(|e| e.to_string())?;
    let mut id = 0;
    let mut vars = TemplateVars {
        venue: &venue.id,
        market,
        request_id: &mut id,
        now_ms: 0,
    };
    let query = render(q, &json, &mut vars)?.join("&");
    Ok(if query.is_empty() {
        base
    } else if base.contains('?') {
        format!("{base}&{query}")
    } else {
        format!("{base}?{query}")
    })
}
