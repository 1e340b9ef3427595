//! Stage two for venue files: raw sections → a compiled [`Venue`], with every
//! problem collected.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use xxhash_rust::xxh3::xxh3_64;

use super::fingerprint::fingerprint;
use super::raw::*;
use crate::config::source::read;
use crate::config::{ConfigError, Jq, Problem, Problems};
use crate::domain::DataType;
use crate::engine::expr::Expr;
use crate::engine::venue::{
    Bootstrap, Channel, Connection, ControlRule, Dispatch, Frames, Heartbeat, Market, Route,
    Subscribe, Symbols, Venue,
};

const SECTIONS: [&str; 14] = [
    "name",
    "docs",
    "connection",
    "markets",
    "subscribe",
    "channels",
    "symbols",
    "heartbeat",
    "frames",
    "control",
    "routes",
    "book",
    "rest",
    "reference",
];

/// Default largest frame: the recorded Coinbase book snapshots reach 5 MB.
const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
const DEFAULT_SILENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// Read and compile one venue file; the id is the file stem.
pub fn load_venue(path: &Path) -> Result<Venue, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        file: path.to_owned(),
        message: e.to_string(),
    })?;
    let id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    compile_venue(id, path, &src).map_err(ConfigError::Invalid)
}

/// Compile every `*.toml` in `dir`, returning the venues that compiled and
/// the problems of those that did not.
pub fn load_venues_dir(dir: &Path) -> (BTreeMap<String, Venue>, Vec<Problem>) {
    let mut venues = BTreeMap::new();
    let mut problems = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            let err = ConfigError::Read {
                file: dir.to_owned(),
                message: e.to_string(),
            };
            return (venues, err.problems());
        }
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        match load_venue(&path) {
            Ok(v) => {
                venues.insert(v.id.to_string(), v);
            }
            Err(e) => problems.extend(e.problems()),
        }
    }
    (venues, problems)
}

/// Compile a venue file's text. `path` is only used in problem reports.
pub fn compile_venue(id: &str, path: &Path, src: &str) -> Result<Venue, Vec<Problem>> {
    let mut p = Problems::new(path, src);
    if !valid_id(id) {
        p.at(
            None,
            "",
            format!("venue id `{id}` (the file name) must be lower-case letters, digits and `-`"),
        );
    }
    let table = match DeTable::parse(src) {
        Ok(t) => t,
        Err(e) => {
            p.at(e.span(), "", format!("TOML syntax: {}", e.message()));
            return Err(p.into_vec());
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
    let mut take = |key: &str| sections.remove(key);
    let name: Option<String> = section(take("name"), "name", true, &mut p);
    let _docs: Option<Vec<String>> = section(take("docs"), "docs", false, &mut p);
    let connection: Option<RawConnection> = section(take("connection"), "connection", true, &mut p);
    let markets: Option<BTreeMap<String, RawMarket>> =
        section(take("markets"), "markets", false, &mut p);
    let subscribe: Option<RawSubscribe> = section(take("subscribe"), "subscribe", false, &mut p);
    let channels: Option<BTreeMap<DataType, RawChannel>> =
        section(take("channels"), "channels", false, &mut p);
    let symbols: Option<RawSymbols> = section(take("symbols"), "symbols", false, &mut p);
    let heartbeat: Option<RawHeartbeat> = section(take("heartbeat"), "heartbeat", false, &mut p);
    let frames: Option<RawFrames> = section(take("frames"), "frames", false, &mut p);
    let control: Vec<Option<RawControl>> = array(take("control"), "control", &mut p);
    let routes: Vec<Option<RawRoute>> = array(take("routes"), "routes", &mut p);
    let book: Option<RawBook> = section(take("book"), "book", false, &mut p);
    let rest: Option<super::reference::RawRest> = section(take("rest"), "rest", false, &mut p);
    let reference: Vec<Option<super::reference::RawReference>> =
        array(take("reference"), "reference", &mut p);

    let fingerprint = fingerprint(&(&connection, &markets, &subscribe, &channels, &heartbeat));
    let mut c = Compiler { src, p };
    let markets = markets.unwrap_or_default();
    let connection = connection.map(|r| c.connection(r, &markets));
    let subscribe = c.subscribe(subscribe.unwrap_or_default(), connection.as_ref());
    let channels = c.channels(channels.unwrap_or_default(), &markets);
    let symbols = c.symbols(symbols.unwrap_or_default());
    let heartbeat = c.heartbeat(heartbeat.unwrap_or_default());
    let frames = c.frames(frames.unwrap_or_default());
    let book = c.book(book.unwrap_or_default());
    let rest = c.rest(rest.unwrap_or_default());
    let reference = c.reference(reference, &markets);
    let has_route_key = frames.route_key.is_some();
    let control: Vec<_> = control
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| c.control(i, r?, has_route_key))
        .collect();
    let routes: Vec<_> = routes
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| c.route(i, r?, has_route_key))
        .collect();
    c.check_book_sync(&book, &routes);

    let p = c.p;
    match (name, connection, p.is_empty()) {
        (Some(name), Some(connection), true) => {
            let markets: BTreeMap<String, Market> = markets
                .into_iter()
                .map(|(k, m)| {
                    (
                        k,
                        Market {
                            url: m.url,
                            max_items_per_message: m.max_items_per_message,
                        },
                    )
                })
                .collect();
            let control_index =
                Dispatch::new(control.iter().map(|r: &ControlRule| r.keys.as_slice()));
            let route_index = Dispatch::new(routes.iter().map(|r: &Route| r.keys.as_slice()));
            Ok(Venue {
                id: Arc::from(id),
                name,
                connection,
                markets,
                subscribe,
                channels,
                symbols,
                heartbeat,
                frames,
                control,
                control_index,
                routes,
                route_index,
                book,
                rest,
                reference,
                connection_fingerprint: fingerprint,
                source_hash: xxh3_64(src.as_bytes()),
            })
        }
        _ => Err(p.into_vec()),
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn section<T: DeserializeOwned>(
    value: Option<Spanned<DeValue<'_>>>,
    field: &str,
    required: bool,
    p: &mut Problems<'_>,
) -> Option<T> {
    match value {
        Some(v) => read(v, field, p),
        None => {
            if required {
                p.at(None, field, format!("missing required `{field}`"));
            }
            None
        }
    }
}

/// Read an array of tables element by element, so each bad element is
/// reported and the good ones still compile.
fn array<T: DeserializeOwned>(
    value: Option<Spanned<DeValue<'_>>>,
    field: &str,
    p: &mut Problems<'_>,
) -> Vec<Option<T>> {
    let Some(value) = value else {
        return Vec::new();
    };
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| read(item, &format!("{field}[{i}]"), p))
            .collect(),
        _ => {
            p.at(
                Some(span),
                field,
                format!("`{field}` must be an array of tables (`[[{field}]]`)"),
            );
            Vec::new()
        }
    }
}

pub(super) struct Compiler<'s> {
    pub(super) src: &'s str,
    pub(super) p: Problems<'s>,
}

impl Compiler<'_> {
    /// Compile a jq expression, recording its errors at their file position.
    pub(super) fn jq(&mut self, jq: &Jq, field: &str) -> Option<Expr> {
        match Expr::compile(jq.text()) {
            Ok(e) => Some(e),
            Err(errs) => {
                for e in errs {
                    let at = jq.offset_in_file(self.src, e.offset);
                    self.p.at(Some(at..at), field, format!("jq: {}", e.message));
                }
                None
            }
        }
    }

    pub(super) fn opt_jq(&mut self, jq: Option<&Jq>, field: &str) -> Option<Expr> {
        jq.and_then(|j| self.jq(j, field))
    }

    fn connection(
        &mut self,
        r: RawConnection,
        markets: &BTreeMap<String, RawMarket>,
    ) -> Connection {
        if r.url.is_none() && markets.is_empty() {
            self.p.at(
                None,
                "connection.url",
                "missing `url` (or a `[markets.<name>]` table with urls)",
            );
        }
        for url in r.url.iter().chain(markets.values().map(|m| &m.url)) {
            if !(url.starts_with("wss://") || url.starts_with("ws://")) {
                self.p.at(
                    None,
                    "connection.url",
                    format!("`{url}` is not a ws:// or wss:// URL"),
                );
            }
        }
        let url_query = self.opt_jq(r.url_query.as_ref(), "connection.url_query");
        let bootstrap = r.bootstrap.and_then(|b| {
            if !matches!(b.method.as_str(), "GET" | "POST") {
                self.p.at(
                    None,
                    "connection.bootstrap.method",
                    format!("`{}` is not GET or POST", b.method),
                );
            }
            let ws_url = self.jq(&b.ws_url, "connection.bootstrap.ws_url");
            let ping = self.opt_jq(
                b.ping_interval_ms.as_ref(),
                "connection.bootstrap.ping_interval_ms",
            );
            Some(Bootstrap {
                method: b.method,
                url: b.url,
                body: b.body,
                ws_url: ws_url?,
                ping_interval_ms: ping,
            })
        });
        Connection {
            url: r.url,
            url_query,
            max_streams: r.max_streams,
            max_messages_per_second: r.max_messages_per_second,
            max_lifetime: r.max_lifetime.map(|d| d.0),
            max_frame_bytes: r.max_frame_bytes.unwrap_or(DEFAULT_MAX_FRAME_BYTES),
            bootstrap,
        }
    }

    fn subscribe(&mut self, r: RawSubscribe, connection: Option<&Connection>) -> Subscribe {
        let message = self.opt_jq(r.message.as_ref(), "subscribe.message");
        if r.message.is_none() && connection.is_some_and(|c| c.url_query.is_none()) {
            self.p.at(
                None,
                "subscribe.message",
                "missing `message` (or `connection.url_query` to subscribe through the URL)",
            );
        }
        if r.max_items_per_message == Some(0) {
            self.p.at(
                None,
                "subscribe.max_items_per_message",
                "must be at least 1",
            );
        }
        let unsubscribe = self.opt_jq(r.unsubscribe.as_ref(), "subscribe.unsubscribe");
        let on_connect = r
            .on_connect
            .iter()
            .enumerate()
            .filter_map(|(i, j)| self.jq(j, &format!("subscribe.on_connect[{i}]")))
            .collect();
        Subscribe {
            batch: r.batch,
            max_items_per_message: r.max_items_per_message,
            message,
            unsubscribe,
            on_connect,
            ack_timeout: r
                .ack_timeout
                .map_or(std::time::Duration::from_secs(15), |d| d.0),
        }
    }

    fn channels(
        &mut self,
        r: BTreeMap<DataType, RawChannel>,
        markets: &BTreeMap<String, RawMarket>,
    ) -> BTreeMap<DataType, Channel> {
        let mut out = BTreeMap::new();
        for (t, ch) in r {
            let field = format!("channels.{t}");
            if !DataType::MARKET.contains(&t) {
                self.p.at(
                    None,
                    &field,
                    format!("`{t}` events come from the relay, not from a venue channel"),
                );
                continue;
            }
            for m in &ch.markets {
                if !markets.contains_key(m) {
                    self.p.at(
                        None,
                        &field,
                        format!("unknown market `{m}` (declare it under [markets])"),
                    );
                }
            }
            let params = ch
                .params
                .map_or(serde_json::Value::Null, serde_json::Value::Object);
            out.insert(
                t,
                Channel {
                    name: ch.name,
                    params,
                    markets: ch.markets,
                    any_instrument: ch.instruments == super::raw::InstrumentScope::Any,
                    expected_interval: ch.expected_interval,
                },
            );
        }
        out
    }

    fn symbols(&mut self, r: RawSymbols) -> Symbols {
        let rule = self.opt_jq(r.rule.as_ref(), "symbols.rule");
        Symbols {
            map: r.map.into_iter().collect(),
            rule,
        }
    }

    fn heartbeat(&mut self, r: RawHeartbeat) -> Heartbeat {
        let message = self.opt_jq(r.message.as_ref(), "heartbeat.message");
        let sends = r.message.is_some() || r.websocket_ping;
        let at = r.message.as_ref().map(Jq::span);
        if sends && r.interval.is_none() {
            self.p.at(
                at,
                "heartbeat.interval",
                "`interval` is required with `message` or `websocket_ping`",
            );
        }
        if r.interval.is_some() && !sends {
            self.p.at(
                None,
                "heartbeat.interval",
                "`interval` needs `message` or `websocket_ping = true`",
            );
        }
        if let Some(t) = r.pong_timeout {
            if t.0.is_zero() {
                self.p.at(None, "heartbeat.pong_timeout", "must be above 0");
            }
            if !sends {
                self.p.at(
                    None,
                    "heartbeat.pong_timeout",
                    "`pong_timeout` needs pings (`interval` with `message` or `websocket_ping = true`)",
                );
            }
        }
        Heartbeat {
            pong_timeout: r.pong_timeout.map(|d| d.0),
            interval: r.interval.map(|d| d.0),
            message,
            websocket_ping: r.websocket_ping,
            silence_timeout: r.silence_timeout.map_or(DEFAULT_SILENCE_TIMEOUT, |d| d.0),
        }
    }

    fn frames(&mut self, r: RawFrames) -> Frames {
        let context_key = self.opt_jq(r.context_key.as_ref(), "frames.context_key");
        let route_key = self.opt_jq(r.route_key.as_ref(), "frames.route_key");
        let sequence = self.opt_jq(r.sequence.as_ref(), "frames.sequence");
        Frames {
            compression: r.compression,
            context_key,
            route_key,
            sequence,
        }
    }
}
