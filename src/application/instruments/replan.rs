//! Applying a new instrument selection to a running venue, touching only
//! what changed:
//! - newly chosen instruments are subscribed on new connections (split by
//!   the venue's `max_streams`, subscribe messages paced as at start);
//! - a connection that carries an instrument no longer chosen is replaced
//!   by one with the rest of its instruments, started first; the old one
//!   keeps streaming for [`OVERLAP`] (JetStream drops the events both
//!   publish, by id) and then stops; each dropped instrument gets an
//!   `unsubscribed` status event;
//! - every other connection is left alone;
//! - when small connections have piled up (more than twice the connections
//!   a fresh plan needs, plus one), the venue is re-planned as a whole, the
//!   same way: every new connection first, the old ones after the overlap.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tracing::info;

use crate::application::metrics::VenueKindLabel;
use crate::application::relay::{RunningVenue, Shared};
use crate::application::status;
use crate::application::subscribe::plan_connections;
use crate::config::relay::{Subscription, VenueSetup};
use crate::domain::{DataType, Instrument, StatusState, Timestamp};

/// How long a replaced connection keeps streaming after its replacement
/// started (time to connect and subscribe).
pub(crate) const OVERLAP: Duration = Duration::from_secs(5);

type Key = (Option<String>, String);

fn key(s: &Subscription) -> Key {
    (s.market.clone(), s.instrument.clone())
}

/// What changed, for the log and the reload report.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Replanned {
    /// Instruments subscribed.
    pub added: usize,
    /// Instruments unsubscribed.
    pub removed: usize,
    /// Connections started.
    pub started: usize,
    /// Connections replaced (stopped after the overlap).
    pub replaced: usize,
}

/// Bring `running` to `new`'s subscriptions.
pub(crate) async fn replan(
    shared: &Shared,
    running: &mut RunningVenue,
    new: VenueSetup,
) -> Replanned {
    let old: Vec<Subscription> = running.setup.subscriptions.clone();
    let removed: Vec<&Subscription> = old
        .iter()
        .filter(|s| !new.subscriptions.contains(s))
        .collect();
    let added: Vec<Subscription> = new
        .subscriptions
        .iter()
        .filter(|s| !old.contains(s))
        .cloned()
        .collect();
    let mut out = Replanned {
        added: added.len(),
        removed: removed.len(),
        ..Default::default()
    };
    if removed.is_empty() && added.is_empty() {
        running.setup = new;
        return out;
    }
    let gone: HashSet<Key> = removed.iter().map(|s| key(s)).collect();
    let kept: Vec<&Subscription> = old
        .iter()
        .filter(|s| new.subscriptions.contains(s))
        .collect();
    running.setup = new;
    // Connections that lose an instrument: their successors first.
    let mut stop = Vec::new();
    for (i, conn) in running.conns.iter().enumerate() {
        if conn.cancel.is_cancelled() {
            continue;
        }
        let market = &conn.plan.market;
        if !conn
            .plan
            .instruments
            .iter()
            .any(|inst| gone.contains(&(market.clone(), inst.clone())))
        {
            continue;
        }
        let rest: Vec<Subscription> = kept
            .iter()
            .filter(|s| &s.market == market && conn.plan.instruments.contains(&s.instrument))
            .map(|s| (*s).clone())
            .collect();
        stop.push((i, rest));
    }
    let mut plans = Vec::new();
    for (_, rest) in &stop {
        plans.extend(plans_for(&running.setup, rest.clone()));
    }
    plans.extend(plans_for(&running.setup, added));
    for plan in plans {
        shared.start_conn(running, plan);
        out.started += 1;
    }
    // The replaced connections leave the list now (a later refresh must
    // not replace them again) and stop after the overlap.
    let replaced: HashSet<usize> = stop.iter().map(|(i, _)| *i).collect();
    let mut i = 0;
    running.conns.retain(|c| {
        let keep = !replaced.contains(&i) && !c.cancel.is_cancelled();
        if replaced.contains(&i) {
            stop_after_overlap(c.cancel.clone());
        }
        i += 1;
        keep
    });
    out.replaced += replaced.len();
    compact(shared, running, &mut out);
    unsubscribed(shared, &running.setup, &removed).await;
    info!(
        venue = %running.setup.id,
        added = out.added,
        removed = out.removed,
        connections_started = out.started,
        connections_replaced = out.replaced,
        "instrument selection changed"
    );
    out
}

/// Re-plan the whole venue when far more connections run than a fresh plan
/// needs (each refresh that adds instruments opens connections of its own).
fn compact(shared: &Shared, running: &mut RunningVenue, out: &mut Replanned) {
    let fresh = plan_connections(&running.setup);
    if running.conns.len() <= 2 * fresh.len() + 1 {
        return;
    }
    let old: Vec<_> = std::mem::take(&mut running.conns);
    for plan in fresh {
        shared.start_conn(running, plan);
        out.started += 1;
    }
    out.replaced += old.len();
    for c in &old {
        stop_after_overlap(c.cancel.clone());
    }
    info!(venue = %running.setup.id, replaced = old.len(), "connections re-planned as a whole (too many small ones)");
}

/// Cancel `token` once the overlap has passed.
fn stop_after_overlap(token: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        tokio::time::sleep(OVERLAP).await;
        token.cancel();
    });
}

/// Connection plans for some of a venue's subscriptions.
fn plans_for(
    setup: &VenueSetup,
    subscriptions: Vec<Subscription>,
) -> Vec<crate::application::subscribe::ConnPlan> {
    if subscriptions.is_empty() {
        return Vec::new();
    }
    let mut part = setup.clone();
    part.subscriptions = subscriptions;
    plan_connections(&part)
}

/// An `unsubscribed` status event per dropped instrument.
async fn unsubscribed(shared: &Shared, setup: &VenueSetup, removed: &[&Subscription]) {
    let venue: std::sync::Arc<str> = std::sync::Arc::from(setup.id.as_str());
    let now = Timestamp::now();
    let received = Instant::now();
    let generated = shared
        .metrics
        .venue_type(&shared.metrics.events_generated, &venue)[DataType::Status.index()]
    .clone();
    let dropped = shared
        .metrics
        .drops_by_type(&venue, crate::application::metrics::DropCause::QueueFull);
    let mut seen = HashSet::new();
    for s in removed {
        if !seen.insert(key(s)) {
            continue;
        }
        let symbol = s.symbol.clone().unwrap_or_else(|| s.instrument.clone());
        let inst = std::sync::Arc::new(Instrument::new(s.instrument.clone(), symbol));
        let ev = status::event(
            &venue,
            inst,
            StatusState::Unsubscribed,
            "no longer selected (delisted, halted or not matching the filter)",
            now,
        );
        generated.inc();
        shared
            .metrics
            .status_events
            .get_or_create(&VenueKindLabel {
                venue: setup.id.clone(),
                kind: StatusState::Unsubscribed.as_str().into(),
            })
            .inc();
        let _ = shared
            .queues
            .push_counted(
                crate::application::pipeline::Outgoing::encode(ev, shared.format, received),
                &dropped,
            )
            .await;
    }
}
