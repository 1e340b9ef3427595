//! Stage two for the relay config: raw sections → [`RelayConfig`], with the
//! venue files it names compiled too. Every problem, in this file and in the
//! venue files, is reported together.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::raw::*;
use crate::config::source::read;
use crate::config::venue::load_venue;
use crate::config::{ConfigError, Problem, Problems, env};
use crate::domain::DataType;
use crate::engine::venue::Venue;

const SECTIONS: [&str; 8] = [
    "fixtures_dir",
    "service",
    "http",
    "nats",
    "health",
    "pipeline",
    "venues_dir",
    "venues",
];

/// Default queue capacity per data type.
pub(super) const DEFAULT_QUEUE_CAPACITY: usize = 1_024;

/// The checked relay configuration.
#[derive(Debug)]
pub struct RelayConfig {
    /// The file it was read from.
    pub file: PathBuf,
    /// `[service]`
    pub service: RawService,
    /// `/health` and `/metrics` listen address.
    pub http_listen: SocketAddr,
    /// `[nats]`
    pub nats: RawNats,
    /// `[health]`
    pub health: HealthSettings,
    /// Queue per data type, indexed by [`DataType::index`].
    pub queues: Vec<(usize, WhenFull)>,
    /// Where venue files live.
    pub venues_dir: PathBuf,
    /// Where their recorded fixture cases live, if anywhere (the hot-reload
    /// gate).
    pub fixtures_dir: Option<PathBuf>,
    /// The venues, compiled.
    pub venues: Vec<VenueSetup>,
}

/// How `/health` judges connections (`[health]` in the relay config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthSettings {
    /// A connection with no frame for this fraction of its venue's
    /// `silence_timeout` makes its venue degraded (at the whole timeout the
    /// connection is replaced).
    pub silence_fraction: f64,
    /// How long an error frame from a venue keeps its venue degraded.
    pub error_memory: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            silence_fraction: 0.5,
            error_memory: Duration::from_secs(300),
        }
    }
}

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

/// Read, substitute environment variables, and compile the relay config.
pub fn load_relay(path: &Path) -> Result<RelayConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        file: path.to_owned(),
        message: e.to_string(),
    })?;
    compile_relay(path, &text, |k| std::env::var(k).ok()).map_err(ConfigError::Invalid)
}

/// Read only the `[nats]` section of a relay config (environment variables
/// substituted), for the commands that read the bus (`mdrelay tail`,
/// `mdrelay book`): they need the relay's NATS and its auth, not its venues.
pub fn load_nats(path: &Path) -> Result<RawNats, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        file: path.to_owned(),
        message: e.to_string(),
    })?;
    let lookup = |k: &str| std::env::var(k).ok();
    let (src, unresolved) = env::substitute(&text, lookup);
    let mut raw_problems = Problems::new(path, &text);
    for u in unresolved {
        raw_problems.at(Some(u.span), "", u.message);
    }
    let mut problems = raw_problems.into_vec();
    let mut p = Problems::new(path, &src);
    let nats = match DeTable::parse(&src) {
        Ok(t) => {
            let section = t
                .into_inner()
                .into_iter()
                .find(|(k, _)| k.get_ref() == "nats")
                .map(|(_, v)| v);
            let nats: Option<RawNats> = opt(section, "nats", &mut p);
            check_nats(nats.as_ref().unwrap_or(&RawNats::default()), &mut p);
            nats
        }
        Err(e) => {
            p.at(e.span(), "", format!("TOML syntax: {}", e.message()));
            None
        }
    };
    problems.extend(p.into_vec());
    if problems.is_empty() {
        Ok(nats.unwrap_or_default())
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// Compile relay config text; `lookup` resolves `${VAR}`.
pub fn compile_relay(
    path: &Path,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<RelayConfig, Vec<Problem>> {
    let (src, unresolved) = env::substitute(text, lookup);
    let mut raw_problems = Problems::new(path, text);
    for u in unresolved {
        raw_problems.at(Some(u.span), "", u.message);
    }
    let mut problems = raw_problems.into_vec();
    let mut p = Problems::new(path, &src);
    let table = match DeTable::parse(&src) {
        Ok(t) => t,
        Err(e) => {
            p.at(e.span(), "", format!("TOML syntax: {}", e.message()));
            problems.extend(p.into_vec());
            return Err(problems);
        }
    };
    let mut sections: HashMap<String, Spanned<DeValue<'_>>> = HashMap::new();
    for (key, value) in table.into_inner() {
        let name = key.get_ref().to_string();
        if SECTIONS.contains(&name.as_str()) {
            sections.insert(name, value);
        } else {
            p.at(
                Some(key.span()),
                &name,
                format!(
                    "unknown key `{name}`; expected one of: {}",
                    SECTIONS.join(", ")
                ),
            );
        }
    }
    let mut take = |k: &str| sections.remove(k);
    let service: RawService = opt(take("service"), "service", &mut p).unwrap_or_default();
    let http: RawHttp = opt(take("http"), "http", &mut p).unwrap_or_default();
    let nats: RawNats = opt(take("nats"), "nats", &mut p).unwrap_or_default();
    let health_raw: RawHealth = opt(take("health"), "health", &mut p).unwrap_or_default();
    let health = health_settings(&health_raw, &mut p);
    let pipeline: BTreeMap<DataType, RawQueue> =
        opt(take("pipeline"), "pipeline", &mut p).unwrap_or_default();
    let venues_dir: Option<PathBuf> = opt(take("venues_dir"), "venues_dir", &mut p);
    let fixtures_dir: Option<PathBuf> = opt(take("fixtures_dir"), "fixtures_dir", &mut p);
    let raw_venues: Vec<Option<RawVenue>> = match take("venues") {
        Some(v) => {
            let span = v.span();
            match v.into_inner() {
                DeValue::Array(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| read(item, &format!("venues[{i}]"), &mut p))
                    .collect(),
                _ => {
                    p.at(
                        Some(span),
                        "venues",
                        "`venues` must be an array of tables (`[[venues]]`)",
                    );
                    Vec::new()
                }
            }
        }
        None => Vec::new(),
    };

    let http_listen = match http.listen.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            p.at(
                None,
                "http.listen",
                format!("`{}` is not an address like 127.0.0.1:8080", http.listen),
            );
            None
        }
    };
    check_nats(&nats, &mut p);
    if service.worker_threads == Some(0) {
        p.at(
            None,
            "service.worker_threads",
            "must be at least 1 (leave it out for one per core)",
        );
    }
    let queues = queues(pipeline, &mut p);
    let venues_dir = venues_dir.unwrap_or_else(|| PathBuf::from("venues"));
    let fixtures_dir = match fixtures_dir {
        Some(d) if !d.is_dir() => {
            p.at(
                None,
                "fixtures_dir",
                format!("{} is not a directory", d.display()),
            );
            None
        }
        Some(d) => Some(d),
        None => venues_dir
            .parent()
            .map(|p| p.join("fixtures"))
            .filter(|d| d.is_dir()),
    };
    let mut venues = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, raw) in raw_venues.into_iter().enumerate() {
        let Some(raw) = raw else { continue };
        let at = format!("venues[{i}]");
        if !seen.insert(raw.id.clone()) {
            p.at(
                None,
                format!("{at}.id"),
                format!("venue `{}` is configured twice", raw.id),
            );
            continue;
        }
        let file = venues_dir.join(format!("{}.toml", raw.id));
        match load_venue(&file) {
            Ok(venue) => {
                if let Some(v) = venue_setup(&at, raw, Arc::new(venue), &mut p) {
                    venues.push(v);
                }
            }
            Err(ConfigError::Read { .. }) => {
                p.at(
                    None,
                    format!("{at}.id"),
                    format!("no venue file {} for `{}`", file.display(), raw.id),
                );
            }
            Err(e) => problems.extend(e.problems()),
        }
    }
    problems.extend(p.into_vec());
    match (http_listen, problems.is_empty()) {
        (Some(http_listen), true) => Ok(RelayConfig {
            file: path.to_owned(),
            service,
            http_listen,
            nats,
            health,
            queues,
            venues_dir,
            fixtures_dir,
            venues,
        }),
        _ => Err(problems),
    }
}

/// Whether a venue file has a route producing `t` (books may also come from
/// the REST snapshot alone).
fn venue_maps(venue: &Venue, t: DataType) -> bool {
    venue.routes.iter().any(|r| r.data_type == t)
        || (t == DataType::L2Orderbook && venue.book.snapshot.is_some())
}

fn health_settings(raw: &RawHealth, p: &mut Problems<'_>) -> HealthSettings {
    let f = raw.silence_fraction;
    if !(f > 0.0 && f <= 1.0) {
        p.at(
            None,
            "health.silence_fraction",
            format!("must be above 0 and at most 1 (got {f})"),
        );
    }
    if raw.error_memory.0.is_zero() {
        p.at(None, "health.error_memory", "must be above 0");
    }
    HealthSettings {
        silence_fraction: f,
        error_memory: raw.error_memory.0,
    }
}

fn opt<T: DeserializeOwned>(
    v: Option<Spanned<DeValue<'_>>>,
    field: &str,
    p: &mut Problems<'_>,
) -> Option<T> {
    v.and_then(|v| read(v, field, p))
}

fn check_nats(n: &RawNats, p: &mut Problems<'_>) {
    if n.urls.is_empty() {
        p.at(None, "nats.urls", "at least one URL is required");
    }
    for u in &n.urls {
        if !(u.starts_with("nats://")
            || u.starts_with("tls://")
            || u.starts_with("ws://")
            || u.starts_with("wss://"))
        {
            p.at(
                None,
                "nats.urls",
                format!(
                    "`{}` is not a nats:// or tls:// URL",
                    crate::config::redact_url(u)
                ),
            );
        }
    }
    if let RawAuth::Credentials { path } = &n.auth
        && !path.exists()
    {
        p.at(
            None,
            "nats.auth.path",
            format!("credentials file {} does not exist", path.display()),
        );
    }
    if let Some(tls) = &n.tls {
        for (name, f) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
            if let Some(f) = f
                && !f.exists()
            {
                p.at(
                    None,
                    format!("nats.tls.{name}"),
                    format!("{} does not exist", f.display()),
                );
            }
        }
        if tls.cert.is_some() != tls.key.is_some() {
            p.at(None, "nats.tls", "`cert` and `key` go together");
        }
    }
    if n.publish.max_in_flight == 0 {
        p.at(None, "nats.publish.max_in_flight", "must be at least 1");
    }
    if n.publish.batch_flow == 0 {
        p.at(None, "nats.publish.batch_flow", "must be at least 1");
    }
    if n.publish.ack_timeout.0.is_zero() {
        p.at(None, "nats.publish.ack_timeout", "must be positive");
    }
    if n.connect_timeout.0.is_zero() {
        p.at(None, "nats.connect_timeout", "must be positive");
    }
    let mut names = BTreeSet::new();
    for (i, s) in n.streams.iter().enumerate() {
        let at = format!("nats.streams[{i}]");
        if s.name.is_empty() || s.name.contains(['.', ' ', '*', '>', '\t']) {
            p.at(
                None,
                format!("{at}.name"),
                format!("`{}` is not a valid stream name", s.name),
            );
        }
        if !names.insert(&s.name) {
            p.at(
                None,
                format!("{at}.name"),
                format!("stream `{}` is declared twice", s.name),
            );
        }
        if s.subjects.is_empty() {
            p.at(
                None,
                format!("{at}.subjects"),
                "at least one subject is required",
            );
        }
        if s.replicas == 0 {
            p.at(None, format!("{at}.replicas"), "must be at least 1");
        }
    }
}

fn queues(pipeline: BTreeMap<DataType, RawQueue>, p: &mut Problems<'_>) -> Vec<(usize, WhenFull)> {
    let mut q = vec![(DEFAULT_QUEUE_CAPACITY, WhenFull::Block); DataType::ALL.len()];
    for (t, raw) in pipeline {
        let cap = raw.capacity.unwrap_or(DEFAULT_QUEUE_CAPACITY);
        if cap == 0 {
            p.at(None, format!("pipeline.{t}.capacity"), "must be at least 1");
        }
        q[t.index()] = (cap.max(1), raw.when_full);
    }
    q
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

fn venue_setup(
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
            if s.limit.is_some() || s.sort.is_some() || s.descending {
                p.at(
                    None,
                    format!("{sat}.limit"),
                    "`limit`, `sort` and `descending` go with `select`",
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
            Some(super::select::compile_at(j, &format!("{sat}.select"), p))
        }
    }
}
