//! Applying a new instrument selection to a running venue, touching only
//! what changed:
//! - a connection that carries an instrument no longer chosen is given a
//!   plan without it: it unsubscribes it on its running socket (where the
//!   venue file cannot, it hands over to a new connection with the new
//!   plan, overlapping, so the other instruments lose nothing); a
//!   connection left with nothing stops; each dropped instrument gets an
//!   `unsubscribed` status event;
//! - newly chosen instruments are subscribed on the running connections of
//!   their market that have room under the venue's `max_streams`, then on
//!   new connections (split by `max_streams`, subscribe messages paced as
//!   at start);
//! - every other connection, and every other instrument, is left alone;
//! - when small connections have piled up (more than twice the connections
//!   a fresh plan needs, plus one; only venues that subscribe by URL open
//!   one per change), the venue is re-planned as a whole: every new
//!   connection first, the old ones after an overlap of [`OVERLAP`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;

use crate::application::connection::in_place;
use crate::application::metrics::VenueKindLabel;
use crate::application::relay::{RunningVenue, Shared};
use crate::application::status;
use crate::application::subscribe::{ConnPlan, Item, market_items, plan_connections};
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
    /// Running connections given a new plan (changed in place).
    pub changed: usize,
    /// Connections started.
    pub started: usize,
    /// Connections stopped (nothing left to carry, or re-planned).
    pub stopped: usize,
}

/// Bring `running` to `new`'s subscriptions; `why` is the reason the
/// `unsubscribed` status events give.
pub(crate) async fn replan(
    shared: &Shared,
    running: &mut RunningVenue,
    new: VenueSetup,
    why: &str,
) -> Replanned {
    let old: Vec<Subscription> = running.setup.subscriptions.clone();
    let removed: Vec<&Subscription> = old
        .iter()
        .filter(|s| !new.subscriptions.contains(s))
        .collect();
    let added = new
        .subscriptions
        .iter()
        .filter(|s| !old.contains(s))
        .count();
    let mut out = Replanned {
        added,
        removed: removed.len(),
        ..Default::default()
    };
    running.setup = new;
    if removed.is_empty() && added == 0 {
        return out;
    }
    running.conns.retain(|c| !c.cancel.is_cancelled());
    let current: Vec<&ConnPlan> = running.conns.iter().map(|c| &*c.plan).collect();
    let Assigned { plans, new } = assign(&running.setup, &current);
    let conns = std::mem::take(&mut running.conns);
    for (mut conn, plan) in conns.into_iter().zip(plans) {
        match plan {
            None => {
                conn.cancel.cancel();
                out.stopped += 1;
            }
            Some(plan) => {
                if plan != *conn.plan {
                    let plan = Arc::new(plan);
                    conn.plans.send_replace(plan.clone());
                    conn.plan = plan;
                    out.changed += 1;
                }
                running.conns.push(conn);
            }
        }
    }
    for plan in new {
        shared.start_conn(running, plan);
        out.started += 1;
    }
    compact(shared, running, &mut out);
    unsubscribed(shared, &running.setup, &removed, why).await;
    info!(
        venue = %running.setup.id,
        added = out.added,
        removed = out.removed,
        connections_changed = out.changed,
        connections_started = out.started,
        connections_stopped = out.stopped,
        "instrument selection changed"
    );
    out
}

/// Where a venue's wanted items go.
#[derive(Debug)]
struct Assigned {
    /// Per running connection, in order: its new plan (the same plan when
    /// nothing changed for it), `None` when it is left with nothing.
    plans: Vec<Option<ConnPlan>>,
    /// Connections to start for what the running ones cannot take.
    new: Vec<ConnPlan>,
}

/// Assign `setup`'s items to the running connections `current`: each keeps
/// what it carries and is still wanted; the rest goes to running
/// connections of its market with room under `max_streams` (where the venue
/// subscribes on a running connection), then to new connections.
fn assign(setup: &VenueSetup, current: &[&ConnPlan]) -> Assigned {
    let capacity = ConnPlan::capacity(setup);
    let can_add = in_place(&setup.venue, false);
    // What is wanted and not yet carried, per market.
    let mut pool = market_items(setup);
    let mut plans: Vec<Option<ConnPlan>> = Vec::with_capacity(current.len());
    for conn in current {
        let wanted = pool.entry(conn.market.clone()).or_default();
        let kept: Vec<Item> = conn
            .items
            .iter()
            .filter(|i| wanted.iter().any(|w| w.same_stream(i)))
            .cloned()
            .collect();
        wanted.retain(|w| !kept.iter().any(|k| k.same_stream(w)));
        plans.push(
            (!kept.is_empty()).then(|| ConnPlan::for_items(setup, conn.market.clone(), kept)),
        );
    }
    // Room on the running connections takes the new items first.
    for plan in plans.iter_mut().flatten() {
        let wanted = pool.entry(plan.market.clone()).or_default();
        let room = capacity.saturating_sub(plan.items.len());
        if !can_add || room == 0 || wanted.is_empty() {
            continue;
        }
        let mut items = plan.items.clone();
        items.extend(wanted.drain(..room.min(wanted.len())));
        *plan = ConnPlan::for_items(setup, plan.market.clone(), items);
    }
    let mut new = Vec::new();
    for (market, items) in pool {
        for chunk in items.chunks(capacity) {
            new.push(ConnPlan::for_items(setup, market.clone(), chunk.to_vec()));
        }
    }
    Assigned { plans, new }
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
    out.stopped += old.len();
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

/// An `unsubscribed` status event per dropped instrument.
async fn unsubscribed(shared: &Shared, setup: &VenueSetup, removed: &[&Subscription], why: &str) {
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
        let ev = status::event(&venue, inst, StatusState::Unsubscribed, why, now);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::relay::compile_relay;
    use std::path::Path;

    /// A venue with 25 streams per connection, trades of `names`.
    fn setup(names: &[String]) -> VenueSetup {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut text = format!(
            "venues_dir = \"{}\"\n[[venues]]\nid = \"bitfinex\"\n",
            root.join("venues").display()
        );
        for n in names {
            text.push_str(&format!(
                "[[venues.subscriptions]]\ninstrument = \"{n}\"\ntypes = [\"trade\"]\n"
            ));
        }
        let cfg = compile_relay(&root.join("config/test.toml"), &text, |_| None).unwrap();
        let s = cfg.venues.into_iter().next().unwrap();
        assert_eq!(ConnPlan::capacity(&s), 25);
        s
    }

    fn names(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("tI{i:03}USD")).collect()
    }

    fn instruments(p: &ConnPlan) -> Vec<String> {
        p.instruments.clone()
    }

    #[test]
    fn new_instruments_fill_the_running_connection_then_open_new_ones() {
        let before = plan_connections(&setup(&names(0..20)));
        assert_eq!(before.len(), 1);
        let after = setup(&names(0..30));
        let a = assign(&after, &[&before[0]]);
        let kept = a.plans[0].as_ref().unwrap();
        assert_eq!(kept.items.len(), 25);
        assert_eq!(
            kept.items[..20],
            before[0].items[..],
            "the old items stay first, unchanged"
        );
        assert_eq!(a.new.len(), 1);
        assert_eq!(instruments(&a.new[0]), names(25..30));
    }

    #[test]
    fn a_removal_touches_only_the_connection_that_carried_it() {
        let start = setup(&names(0..30));
        let before = plan_connections(&start);
        assert_eq!(before.len(), 2);
        // One instrument of the second connection goes, none comes.
        let mut fewer = names(0..30);
        fewer.retain(|n| n != "tI027USD");
        let a = assign(&setup(&fewer), &[&before[0], &before[1]]);
        assert_eq!(
            a.plans[0].as_ref(),
            Some(&before[0]),
            "the first is untouched"
        );
        let second = a.plans[1].as_ref().unwrap();
        assert_eq!(instruments(second).len(), 4);
        assert!(!instruments(second).contains(&"tI027USD".to_owned()));
        assert!(a.new.is_empty());
        // Every instrument of the second connection goes: it has nothing left.
        let a = assign(&setup(&names(0..25)), &[&before[0], &before[1]]);
        assert_eq!(a.plans[0].as_ref(), Some(&before[0]));
        assert!(a.plans[1].is_none());
    }

    #[test]
    fn room_freed_by_a_removal_takes_a_new_listing() {
        let before = plan_connections(&setup(&names(0..25)));
        let mut next = names(1..25);
        next.push("tNEWUSD".into());
        let a = assign(&setup(&next), &[&before[0]]);
        let p = a.plans[0].as_ref().unwrap();
        assert_eq!(p.items.len(), 25);
        assert!(instruments(p).contains(&"tNEWUSD".to_owned()));
        assert!(!instruments(p).contains(&"tI000USD".to_owned()));
        assert!(a.new.is_empty(), "no new connection");
    }
}
