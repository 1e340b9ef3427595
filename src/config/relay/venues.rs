//! The venue-level half of the relay config: each `[[venues]]` entry with
//! its compiled venue file becomes a [`VenueSetup`] (subscriptions or
//! `select` filters, book snapshots and tops, liveness overrides, backoff,
//! breaker), every problem located.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::raw::*;
use crate::config::Problems;
use crate::domain::DataType;
use crate::engine::venue::Venue;

/// One configured venue with its compiled definition.
#[derive(Clone)]
pub struct VenueSetup {
    /// Venue id.
    pub id: String,
    /// Whether it runs.
    pub enabled: bool,
    /// WebSocket URL override.
    pub url: Option<String>,
    /// REST origin override.
    pub rest_url: Option<String>,
    /// Reconnect backoff.
    pub reconnect: Reconnect,
    /// Circuit breaker.
    pub breaker: Breaker,
    /// Subscriptions: the explicit ones, then those the `select` filters
    /// chose from the last good reference data.
    pub subscriptions: Vec<Subscription>,
    /// Subscriptions by filter (`select`), resolved against the venue's
    /// reference data at start and every `reference_refresh`.
    pub selections: Vec<super::select::Selection>,
    /// How often the reference data is refreshed.
    pub reference_refresh: Duration,
    /// Per-instrument liveness overrides by data type (`[venues.liveness]`).
    pub liveness: BTreeMap<DataType, crate::config::Expect>,
    /// The compiled venue file.
    pub venue: Arc<Venue>,
}

impl VenueSetup {
    /// The data types the relay publishes for this venue: the subscribed
    /// ones, `status`, and `l2_top` where a subscription wants it.
    pub fn published_types(&self) -> Vec<DataType> {
        let mut types: std::collections::BTreeSet<DataType> = self
            .subscriptions
            .iter()
            .flat_map(|s| s.types.iter().copied())
            .chain(self.selections.iter().flat_map(|s| s.types.iter().copied()))
            .collect();
        types.insert(DataType::Status);
        if self.subscriptions.iter().any(|s| s.book_top.is_some())
            || self.selections.iter().any(|s| s.book_top.is_some())
        {
            types.insert(DataType::L2Top);
        }
        types.into_iter().collect()
    }
}

/// Like the derived form, with tokens in URL query strings and
/// `user:password@` parts hidden.
impl std::fmt::Debug for VenueSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |u: &Option<String>| u.as_deref().map(crate::config::redact_url);
        f.debug_struct("VenueSetup")
            .field("id", &self.id)
            .field("enabled", &self.enabled)
            .field("url", &redact(&self.url))
            .field("rest_url", &redact(&self.rest_url))
            .field("reconnect", &self.reconnect)
            .field("breaker", &self.breaker)
            .field("subscriptions", &self.subscriptions)
            .field("selections", &self.selections)
            .field("liveness", &self.liveness)
            .field("venue", &self.venue)
            .finish()
    }
}

/// Reconnect backoff settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconnect {
    /// First delay.
    pub initial_delay: Duration,
    /// Largest delay.
    pub max_delay: Duration,
    /// Growth factor.
    pub multiplier: f32,
    /// Randomized delays.
    pub jitter: bool,
}

/// Circuit breaker settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Breaker {
    /// Failures that open it.
    pub failure_threshold: u32,
    /// Open time before a probe.
    pub open_duration: Duration,
    /// Successful probes that close it.
    pub half_open_probes: u32,
}

/// One subscription: an instrument and the data types wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Venue instrument.
    pub instrument: String,
    /// Canonical symbol given in the config.
    pub symbol: Option<String>,
    /// Market (for multi-market venues).
    pub market: Option<String>,
    /// Data types.
    pub types: Vec<DataType>,
    /// Periodic top-N snapshots of the maintained book, if wanted.
    pub book_top: Option<BookTop>,
    /// Full-depth `l2_snapshot`s of the book, if wanted.
    pub book_snapshot: Option<SnapshotPolicy>,
}

/// When full-depth `l2_snapshot`s of a book are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// On wall-clock multiples of this, when the book changed.
    pub interval: Duration,
    /// And after this many book events published since the last one.
    pub max_updates: u32,
}

/// `max_updates` of `book_snapshot` when not given.
pub const DEFAULT_SNAPSHOT_MAX_UPDATES: u32 = 500;

/// How often reference data is refreshed when `reference_refresh` is not
/// given.
pub(super) const DEFAULT_REFERENCE_REFRESH: Duration = Duration::from_secs(15 * 60);

/// Interval of `l2_snapshot`s when `book_snapshot` gives none.
pub(super) const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(10);

/// Periodic top-N snapshots of one instrument's book (`book_top`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookTop {
    /// Levels per side.
    pub depth: usize,
    /// Period; snapshots fall on wall-clock multiples of it.
    pub interval: Duration,
}

/// Whether a venue file has a route producing `t` (books may also come from
/// the REST snapshot alone).
fn venue_maps(venue: &Venue, t: DataType) -> bool {
    venue.routes.iter().any(|r| r.data_type == t)
        || (t == DataType::L2Orderbook && venue.book.snapshot.is_some())
}

/// A subscription's snapshot interval: its own `book_snapshot`, else the
/// venue's (for subscriptions with books).
fn book_snapshot(
    at: &str,
    own: Option<&RawBookSnapshot>,
    venue: Option<&RawBookSnapshot>,
    types: &[DataType],
    p: &mut Problems<'_>,
) -> Option<SnapshotPolicy> {
    let books = types.contains(&DataType::L2Orderbook);
    if own.is_some_and(|o| o.enabled) && !books {
        p.at(
            None,
            format!("{at}.book_snapshot"),
            "needs `l2_orderbook` in `types` (the book is built from it)",
        );
    }
    let wish = own.or(venue).filter(|w| w.enabled && books)?;
    let interval = wish.interval.map_or(DEFAULT_SNAPSHOT_INTERVAL, |d| d.0);
    if interval.as_millis() < 100 || interval.subsec_nanos() % 1_000_000 != 0 {
        p.at(
            None,
            format!("{at}.book_snapshot.interval"),
            "must be at least 100ms, in whole milliseconds",
        );
    }
    let max_updates = wish.max_updates.unwrap_or(DEFAULT_SNAPSHOT_MAX_UPDATES);
    if max_updates == 0 {
        p.at(
            None,
            format!("{at}.book_snapshot.max_updates"),
            "must be at least 1",
        );
    }
    Some(SnapshotPolicy {
        interval,
        max_updates,
    })
}

/// Each data type of a subscription has a channel and a route on the venue,
/// on the subscription's market.
fn check_types(sat: &str, s: &RawSubscription, venue: &Venue, p: &mut Problems<'_>) {
    for t in &s.types {
        match venue.channels.get(t) {
            None => p.at(
                None,
                format!("{sat}.types"),
                format!("venue `{}` has no channel for {t}", venue.id),
            ),
            Some(_) if !venue_maps(venue, *t) => {
                // A venue file with a channel but no route for the type
                // (truncated, or its routes renamed away) would drop
                // every such frame as unrouted.
                p.at(
                    None,
                    format!("{sat}.types"),
                    format!(
                        "venue `{}` has no route that maps {t}: its frames would all be dropped (fix the venue file, or remove {t} from this subscription)",
                        venue.id
                    ),
                )
            }
            Some(ch) => {
                if let Some(m) = &s.market
                    && !ch.markets.is_empty()
                    && !ch.markets.contains(m)
                {
                    p.at(
                        None,
                        format!("{sat}.types"),
                        format!("{t} is not offered on market `{m}` of `{}`", venue.id),
                    );
                }
            }
        }
    }
}

pub(super) fn venue_setup(
    at: &str,
    raw: RawVenue,
    venue: Arc<Venue>,
    p: &mut Problems<'_>,
) -> Option<VenueSetup> {
    if let Some(u) = &raw.url
        && !(u.starts_with("ws://") || u.starts_with("wss://"))
    {
        p.at(
            None,
            format!("{at}.url"),
            format!("`{u}` is not a ws:// or wss:// URL"),
        );
    }
    let r = &raw.reconnect;
    if r.initial_delay.0.is_zero() || r.max_delay.0 < r.initial_delay.0 || r.multiplier < 1.0 {
        p.at(
            None,
            format!("{at}.reconnect"),
            "need 0 < initial_delay <= max_delay and multiplier >= 1",
        );
    }
    if raw.circuit_breaker.failure_threshold == 0 || raw.circuit_breaker.half_open_probes == 0 {
        p.at(
            None,
            format!("{at}.circuit_breaker"),
            "failure_threshold and half_open_probes must be at least 1",
        );
    }
    let reference_refresh = reference_refresh(at, &raw, p);
    let mut subscriptions = Vec::new();
    let mut selections = Vec::new();
    for (j, s) in raw.subscriptions.into_iter().enumerate() {
        let sat = format!("{at}.subscriptions[{j}]");
        let filter = by_filter(&sat, &s, &venue, p);
        if s.types.is_empty() {
            p.at(None, format!("{sat}.types"), "list at least one data type");
        }
        check_types(&sat, &s, &venue, p);
        match (&s.market, venue.markets.is_empty()) {
            (Some(m), true) => p.at(
                None,
                format!("{sat}.market"),
                format!(
                    "venue `{}` has no markets (remove `market = \"{m}\"`)",
                    venue.id
                ),
            ),
            (Some(m), false) if !venue.markets.contains_key(m) => p.at(
                None,
                format!("{sat}.market"),
                format!(
                    "unknown market `{m}`; `{}` has: {}",
                    venue.id,
                    venue.markets.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
            (None, false) => p.at(
                None,
                format!("{sat}.market"),
                format!("venue `{}` has several markets: say which", venue.id),
            ),
            _ => {}
        }
        let book_top = s.book_top.as_ref().map(|t| {
            if !s.types.contains(&DataType::L2Orderbook) {
                p.at(
                    None,
                    format!("{sat}.book_top"),
                    "needs `l2_orderbook` in `types` (the book is built from it)",
                );
            }
            if !(1..=1000).contains(&t.depth) {
                p.at(None, format!("{sat}.book_top.depth"), "must be 1..=1000");
            }
            let ms = t.interval.0.as_millis();
            if ms < 100 || t.interval.0.subsec_nanos() % 1_000_000 != 0 {
                p.at(
                    None,
                    format!("{sat}.book_top.interval"),
                    "must be at least 100ms, in whole milliseconds",
                );
            }
            BookTop {
                depth: t.depth,
                interval: t.interval.0,
            }
        });
        let book_snapshot = book_snapshot(
            &sat,
            s.book_snapshot.as_ref(),
            raw.book_snapshot.as_ref(),
            &s.types,
            p,
        );
        if let Some(filter) = filter {
            selections.push(super::select::Selection::new(
                filter,
                &s,
                book_top,
                book_snapshot,
            ));
            continue;
        }
        subscriptions.push(Subscription {
            instrument: s.instrument.unwrap_or_default(),
            symbol: s.symbol,
            market: s.market,
            types: s.types,
            book_top,
            book_snapshot,
        });
    }
    for t in raw.liveness.keys() {
        if !venue.channels.contains_key(t) {
            let why = if DataType::MARKET.contains(t) {
                format!("venue `{}` has no channel for {t}", venue.id)
            } else {
                format!(
                    "`{t}` events come from the relay, not from a venue channel: no liveness to check"
                )
            };
            p.at(None, format!("{at}.liveness.{t}"), why);
        }
    }
    Some(VenueSetup {
        id: raw.id,
        enabled: raw.enabled,
        url: raw.url,
        rest_url: raw.rest_url,
        reconnect: Reconnect {
            initial_delay: r.initial_delay.0,
            max_delay: r.max_delay.0,
            multiplier: r.multiplier,
            jitter: r.jitter,
        },
        breaker: Breaker {
            failure_threshold: raw.circuit_breaker.failure_threshold,
            open_duration: raw
                .circuit_breaker
                .open_duration
                .map_or(r.max_delay.0, |d| d.0),
            half_open_probes: raw.circuit_breaker.half_open_probes,
        },
        subscriptions,
        selections,
        reference_refresh,
        liveness: raw.liveness,
        venue,
    })
}

/// `reference_refresh`, checked.
fn reference_refresh(at: &str, raw: &RawVenue, p: &mut Problems<'_>) -> Duration {
    let every = raw
        .reference_refresh
        .map_or(DEFAULT_REFERENCE_REFRESH, |d| d.0);
    if every < Duration::from_secs(1) {
        p.at(
            None,
            format!("{at}.reference_refresh"),
            "must be at least 1s",
        );
    }
    every
}

/// For a `select` subscription, its compiled filter (`Some(None)` when the
/// filter is missing or does not compile: reported, and the subscription
/// selects nothing); `None` for an explicit one.
fn by_filter(
    sat: &str,
    s: &RawSubscription,
    venue: &Venue,
    p: &mut Problems<'_>,
) -> Option<Option<crate::engine::expr::Expr>> {
    match (&s.instrument, &s.select) {
        (Some(_), Some(j)) => {
            p.at(
                Some(j.span()),
                format!("{sat}.select"),
                "give either `instrument` or `select`, not both",
            );
            None
        }
        (None, None) => {
            p.at(
                None,
                format!("{sat}.instrument"),
                "missing `instrument` (or `select` to choose instruments by filter)",
            );
            None
        }
        (Some(_), None) => {
            if s.limit.is_some() || s.sort.is_some() || s.descending || s.statuses.is_some() {
                p.at(
                    None,
                    format!("{sat}.limit"),
                    "`limit`, `sort`, `descending` and `statuses` go with `select`",
                );
            }
            None
        }
        (None, Some(j)) => {
            if venue.reference.is_empty() {
                p.at(
                    Some(j.span()),
                    format!("{sat}.select"),
                    format!(
                        "venue `{}` declares no reference data (`[[reference]]` in its file) to select from",
                        venue.id
                    ),
                );
            }
            if s.symbol.is_some() {
                p.at(
                    None,
                    format!("{sat}.symbol"),
                    "`symbol` goes with `instrument` (selected instruments take their canonical symbol from the reference data)",
                );
            }
            if s.limit == Some(0) {
                p.at(None, format!("{sat}.limit"), "must be at least 1");
            }
            if s.statuses.as_ref().is_some_and(Vec::is_empty) {
                p.at(
                    None,
                    format!("{sat}.statuses"),
                    "is empty: nothing would be selected (leave it out for [\"trading\"])",
                );
            }
            Some(super::select::compile_at(j, &format!("{sat}.select"), p))
        }
    }
}
