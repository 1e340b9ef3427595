//! Hot reload: the startup path applied to a diff.
//!
//! The watcher only debounces file events and asks for a reload (so does
//! SIGHUP). The reloader compiles the config and every venue file exactly
//! as at startup; if anything fails to compile, nothing changes and the
//! problems go to the log, `/health` and a counter. Otherwise it applies the
//! difference per venue:
//! - only mappings, routing or replies changed → the new definition is
//!   handed to the running connections, which use it from the next frame;
//! - the venue file's connection settings (URL, templates, limits) changed
//!   and its connections still carry the same subscriptions → each
//!   connection hands over to a successor (see `connection::handover`);
//! - otherwise, connection settings or subscriptions changed → that
//!   venue's new connections are started before the old ones stop;
//! - added or enabled venues start; removed or disabled ones drain and stop;
//! - process-level settings (NATS, HTTP, queues, service) are reported as
//!   needing a restart and left as they are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify_debouncer_mini::{DebounceEventResult, new_debouncer, notify::RecursiveMode};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::health::ReloadReport;
use super::instruments::replan::replan;
use super::metrics::Metrics;
use super::relay::{RunningVenue, Shared};
use super::subscribe::plan_connections;
use crate::config::relay::{RelayConfig, VenueSetup, load_relay};
use crate::domain::Timestamp;

/// Asks the running relay to reload.
#[derive(Clone)]
pub struct ReloadControl {
    tx: mpsc::Sender<()>,
}

impl ReloadControl {
    pub(crate) fn new() -> (Self, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel(4);
        (ReloadControl { tx }, rx)
    }

    /// Request a reload (coalesced when one is pending).
    pub fn request(&self) {
        let _ = self.tx.try_send(());
    }
}

impl super::relay::RelayHandle {
    /// Request a reload, as SIGHUP does.
    pub fn reload(&self) {
        self.control.request();
    }

    /// Reload when the config file or a venue file changes. The returned
    /// guard stops watching when dropped.
    pub fn watch_files(
        &self,
        config: PathBuf,
        venues_dir: PathBuf,
    ) -> Result<impl Drop + use<>, String> {
        let control = self.control.clone();
        // Reading a file is an event too (inotify reports opens), and the
        // reload itself reads every file: only a change of some file's size
        // or modification time asks for a reload, or it would loop.
        let (dir, file) = (venues_dir.clone(), config.clone());
        let mut last = files_stamp(&dir, &file);
        let mut debouncer = new_debouncer(
            Duration::from_millis(300),
            move |res: DebounceEventResult| {
                if let Ok(events) = res
                    && events
                        .iter()
                        .any(|e| e.path.extension().is_some_and(|x| x == "toml"))
                {
                    let now = files_stamp(&dir, &file);
                    if now != last {
                        last = now;
                        control.request();
                    }
                }
            },
        )
        .map_err(|e| e.to_string())?;
        let watcher = debouncer.watcher();
        watcher
            .watch(&venues_dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("{}: {e}", venues_dir.display()))?;
        let dir = config
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(debouncer)
    }
}

/// Size and modification time of the config file and every `.toml` file in
/// the venues directory (metadata only: opening a file would be an event).
fn files_stamp(venues_dir: &Path, config: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let stamp = |p: PathBuf| {
        let m = std::fs::metadata(&p).ok();
        let len = m.as_ref().map_or(0, |m| m.len());
        let modified = m.and_then(|m| m.modified().ok());
        (p, len, modified)
    };
    let mut out: Vec<_> = std::fs::read_dir(venues_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .map(stamp)
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.push(stamp(config.to_path_buf()));
    out
}

/// Owns the running venues and applies reloads.
pub(crate) struct Reloader {
    cfg: RelayConfig,
    shared: Shared,
    running: BTreeMap<String, RunningVenue>,
    report: watch::Sender<ReloadReport>,
    metrics: Arc<Metrics>,
    /// Reference data and instrument selections.
    selected: super::instruments::Selected,
}

impl Reloader {
    pub(crate) fn new(
        cfg: RelayConfig,
        shared: Shared,
        running: BTreeMap<String, RunningVenue>,
        report: watch::Sender<ReloadReport>,
        metrics: Arc<Metrics>,
        selected: super::instruments::Selected,
    ) -> Self {
        Reloader {
            cfg,
            shared,
            running,
            report,
            metrics,
            selected,
        }
    }

    /// Serve reload requests until `stop`; returns what runs, for the drain.
    pub(crate) async fn serve(
        mut self,
        mut requests: mpsc::Receiver<()>,
        stop: CancellationToken,
    ) -> (Shared, BTreeMap<String, RunningVenue>) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                r = requests.recv() => match r {
                    Some(()) => self.reload().await,
                    None => {
                        stop.cancelled().await;
                        break;
                    }
                },
                Some(r) = self.selected.next() => {
                    let explicit = self.cfg.venues.iter().find(|v| v.id == r.venue).cloned();
                    if let (Some(setup), Some(running)) = (explicit, self.running.get_mut(&r.venue)) {
                        self.selected.refreshed(&self.shared, running, &setup, r).await;
                    }
                }
            }
        }
        (self.shared, self.running)
    }

    async fn reload(&mut self) {
        let at = Some(Timestamp::now().to_rfc3339());
        match load_relay(&self.cfg.file) {
            Err(e) => {
                self.metrics.reload_failures.inc();
                let detail: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
                for p in &detail {
                    error!(problem = %p, "reload refused; the running configuration stays");
                }
                let _ = self.report.send(ReloadReport {
                    at,
                    ok: false,
                    detail,
                });
            }
            Ok(new) => {
                let refused = self.fixture_gate(&new);
                if !refused.is_empty() {
                    self.metrics.reload_failures.inc();
                    for p in &refused {
                        error!(problem = %p, "reload refused; the running configuration stays");
                    }
                    let _ = self.report.send(ReloadReport {
                        at,
                        ok: false,
                        detail: refused,
                    });
                    return;
                }
                let detail = self.apply(new).await;
                self.metrics.reloads.inc();
                for d in &detail {
                    info!(change = %d, "reload applied");
                }
                let _ = self.report.send(ReloadReport {
                    at,
                    ok: true,
                    detail,
                });
            }
        }
    }

    /// Each venue whose file changed must still pass its recorded fixture
    /// cases, or the reload is refused: a mapping change that breaks what
    /// the recorded frames give (a renamed route key, a truncated save)
    /// would otherwise drop events silently. To accept a deliberate output
    /// change, bless the cases first (`mdrelay validate --venue <id>
    /// --bless`), then save.
    fn fixture_gate(&self, new: &RelayConfig) -> Vec<String> {
        let Some(dir) = &new.fixtures_dir else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        for setup in new.venues.iter().filter(|v| v.enabled) {
            let unchanged = self
                .running
                .get(&setup.id)
                .is_some_and(|r| r.setup.venue.source_hash == setup.venue.source_hash);
            let cases = dir.join(&setup.id);
            if unchanged || !cases.is_dir() {
                continue;
            }
            let report = super::fixture::run_venue(&setup.venue, &cases, false);
            problems.extend(
                report
                    .problems
                    .iter()
                    .map(|p| format!("venue `{}`: fixtures: {p}", setup.id)),
            );
            for case in report.cases.iter().filter(|c| c.mismatch.is_some()) {
                let diff = case.mismatch.as_deref().unwrap_or_default();
                problems.push(format!(
                    "venue `{}`: recorded case `{}` no longer gives its expected output ({}); run `mdrelay validate --venue {} --bless` to accept the new output, then save again",
                    setup.id,
                    case.name,
                    crate::domain::text::clip(diff.lines().next().unwrap_or_default()),
                    setup.id
                ));
            }
        }
        problems
    }

    async fn apply(&mut self, new: RelayConfig) -> Vec<String> {
        let mut detail = restart_needed(&self.cfg, &new);
        let wanted: BTreeMap<String, VenueSetup> = new
            .venues
            .iter()
            .filter(|v| v.enabled)
            .map(|v| (v.id.clone(), self.selected.expand(v)))
            .collect();
        // Removed or disabled.
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for id in gone {
            if let Some(v) = self.running.remove(&id) {
                v.cancel.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(5), v.tasks.wait()).await;
                self.shared.health.remove_venue(&id);
                self.shared.instruments.remove(&id);
                self.shared.metrics.forget_venue(&id);
                detail.push(format!("{id}: stopped"));
            }
        }
        for (id, setup) in wanted {
            match self.running.get(&id) {
                None => {
                    self.running
                        .insert(id.clone(), self.shared.start_venue(setup));
                    detail.push(format!("{id}: started"));
                }
                Some(old) => match change(&old.setup, &setup) {
                    Change::None => {}
                    Change::Mapping => {
                        let _ = old.venue_tx.send(setup.venue.clone());
                        if let Some(v) = self.running.get_mut(&id) {
                            v.setup = setup;
                        }
                        detail.push(format!(
                            "{id}: mappings updated in place (connections kept)"
                        ));
                    }
                    Change::Subscriptions => {
                        if old.setup.venue.source_hash != setup.venue.source_hash {
                            let _ = old.venue_tx.send(setup.venue.clone());
                        }
                        if let Some(v) = self.running.get_mut(&id) {
                            let r = replan(&self.shared, v, setup, "removed from the relay config")
                                .await;
                            detail.push(format!(
                                "{id}: subscriptions changed in place (+{} -{} instruments; connections: {} changed, {} started, {} stopped)",
                                r.added, r.removed, r.changed, r.started, r.stopped
                            ));
                        }
                    }
                    Change::Handover => {
                        // Same connections, new settings: each connection
                        // opens its successor before closing (no gap).
                        let _ = old.venue_tx.send(setup.venue.clone());
                        if let Some(v) = self.running.get_mut(&id) {
                            v.setup = setup;
                        }
                        detail.push(format!(
                            "{id}: connections handed over (venue connection settings changed)"
                        ));
                    }
                    Change::Connection(why) => {
                        // Build the new connections first, then stop the old.
                        let fresh = self.shared.start_venue(setup);
                        if let Some(old) = self.running.insert(id.clone(), fresh) {
                            old.cancel.cancel();
                            let _ = tokio::time::timeout(Duration::from_secs(5), old.tasks.wait())
                                .await;
                        }
                        detail.push(format!("{id}: reconnected ({why})"));
                    }
                },
            }
        }
        if detail.is_empty() {
            detail.push("no changes".into());
        }
        // Process-level settings keep their running values.
        let old = std::mem::replace(&mut self.cfg, new);
        self.cfg.nats = old.nats;
        self.cfg.http_listen = old.http_listen;
        self.cfg.queues = old.queues;
        self.cfg.health = old.health;
        self.cfg.service = old.service;
        detail
    }
}

enum Change {
    None,
    Mapping,
    /// Only the venue's subscriptions changed (its mappings may have too):
    /// the running connections subscribe and unsubscribe the difference.
    Subscriptions,
    /// The venue's connection settings changed but its connections carry
    /// the same subscriptions: replace each by an overlapping handover.
    Handover,
    Connection(&'static str),
}

fn change(old: &VenueSetup, new: &VenueSetup) -> Change {
    let same_settings = old.url == new.url
        && old.rest_url == new.rest_url
        && old.reconnect == new.reconnect
        && old.breaker == new.breaker;
    if old.subscriptions != new.subscriptions {
        // The reference-data refresher is started with the venue: a venue
        // gaining or losing `select` filters, or changing their refresh
        // interval, starts over.
        if same_settings
            && old.venue.connection_fingerprint == new.venue.connection_fingerprint
            && old.selections.is_empty() == new.selections.is_empty()
            && old.reference_refresh == new.reference_refresh
        {
            return Change::Subscriptions;
        }
        return Change::Connection("subscriptions changed");
    }
    if !same_settings {
        return Change::Connection("connection settings changed");
    }
    if old.venue.connection_fingerprint != new.venue.connection_fingerprint {
        if plan_connections(old) == plan_connections(new) {
            return Change::Handover;
        }
        return Change::Connection("venue connection settings changed");
    }
    if old.venue.source_hash != new.venue.source_hash {
        return Change::Mapping;
    }
    Change::None
}

fn restart_needed(old: &RelayConfig, new: &RelayConfig) -> Vec<String> {
    let mut out = Vec::new();
    let n = |c: &RelayConfig| format!("{:?}", c.nats);
    if n(old) != n(new) {
        out.push("[nats] changed: restart needed to apply it (kept the running settings)".into());
    }
    if old.http_listen != new.http_listen {
        out.push("[http] listen changed: restart needed to apply it".into());
    }
    if old.health != new.health {
        out.push("[health] changed: restart needed to apply it".into());
    }
    if old.queues != new.queues {
        out.push("[pipeline] changed: restart needed to apply it".into());
    }
    if format!("{:?}", old.service) != format!("{:?}", new.service) {
        out.push("[service] changed: restart needed to apply it".into());
    }
    if !out.is_empty() {
        warn!(changes = ?out, "settings that need a restart were not applied");
    }
    out
}
