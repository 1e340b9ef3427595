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
use super::venues::{VenueSetup, venue_setup};
use crate::config::source::read;
use crate::config::venue::load_venue;
use crate::config::{ConfigError, Problem, Problems, env};
use crate::domain::DataType;

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
