//! The connection's instruments change while it runs (a `select` filter
//! chose new listings, or stopped choosing some): the running session
//! unsubscribes what left and subscribes what came, on its own socket, with
//! the venue file's templates. The other instruments stream on untouched.
//!
//! Where the venue file cannot do that (no subscribe message: it subscribes
//! by URL; or nothing to unsubscribe with), the session asks for a planned
//! handover instead: a new connection with the new plan takes over without
//! a gap for the instruments both carry.

use std::sync::Arc;

use tracing::info;

use super::error::SessionError;
use super::pipeline::{Effects, FramePipeline};
use crate::application::liveness::InstrumentTable;
use crate::application::subscribe::{ConnPlan, Item, subscribe_messages};
use crate::domain::{DataType, StatusState};
use crate::engine::venue::{ControlKind, Venue};

/// Items of `a` that are not in `b`.
fn missing(a: &[Item], b: &[Item]) -> Vec<Item> {
    a.iter()
        .filter(|i| !b.iter().any(|o| o.same_stream(i)))
        .cloned()
        .collect()
}

/// Whether `venue` can change a running connection's subscriptions: it
/// subscribes by message (not by URL), and has an unsubscribe template
/// when something must go.
pub(crate) fn in_place(venue: &Venue, removes: bool) -> bool {
    venue.subscribe.message.is_some()
        && venue.connection.url_query.is_none()
        && (!removes || venue.subscribe.unsubscribe.is_some())
}

impl FramePipeline<'_> {
    /// The connection's plan and instrument table were replaced. Sends the
    /// unsubscribe and subscribe messages for the difference (or asks for a
    /// handover where the venue file cannot), starts the new instruments'
    /// books and forgets the old ones. `true` when the book snapshot timers
    /// must be set again.
    pub(super) fn plan_changed(
        &mut self,
        plan: Arc<ConnPlan>,
        live: Arc<InstrumentTable>,
        fx: &mut Effects,
    ) -> bool {
        let old = std::mem::replace(&mut self.plan, plan);
        self.live = live;
        self.mapper.set_pinned(self.plan.pinned.clone());
        let removed = missing(&old.items, &self.plan.items);
        let added = missing(&self.plan.items, &old.items);
        if removed.is_empty() && added.is_empty() {
            return false;
        }
        let venue = self.venue.clone();
        let gone: Vec<String> = old
            .instruments
            .iter()
            .filter(|i| !self.plan.instruments.contains(i))
            .cloned()
            .collect();
        for name in &gone {
            let held = self.books.forget(name);
            self.counters
                .book_resync
                .get(DataType::L2Orderbook)
                .inc_by(held);
        }
        if !in_place(&venue, !removed.is_empty()) {
            fx.handover.get_or_insert(
                "the connection's instruments changed and the venue file cannot \
                 (un)subscribe on a running connection"
                    .into(),
            );
            return false;
        }
        let market = self.plan.market.clone();
        let request_id = &mut self.next_request_id;
        let mut messages = Vec::new();
        if let (false, Some(unsub)) = (removed.is_empty(), &venue.subscribe.unsubscribe) {
            match subscribe_messages(&venue, unsub, market.as_deref(), &removed, request_id) {
                Ok(m) => messages.extend(m),
                Err(e) => fx.end(SessionError::Template(format!("unsubscribe: {e}"))),
            }
        }
        if let (false, Some(sub)) = (added.is_empty(), &venue.subscribe.message) {
            match subscribe_messages(&venue, sub, market.as_deref(), &added, request_id) {
                Ok(m) => messages.extend(m),
                Err(e) => fx.end(SessionError::Template(format!("subscribe: {e}"))),
            }
            if venue.control.iter().any(|r| r.kind == ControlKind::Ack) {
                self.awaiting_ack
                    .get_or_insert_with(std::time::Instant::now);
            }
        }
        fx.send.extend(messages);
        let new: Vec<String> = self
            .plan
            .instruments
            .iter()
            .filter(|i| !old.instruments.contains(i))
            .cloned()
            .collect();
        if !self.holding {
            for name in &new {
                self.instrument_status(
                    name,
                    StatusState::Connected,
                    "subscribed: newly selected",
                    fx,
                );
            }
        }
        self.start_books_of(Some(&new), fx);
        info!(
            venue = %self.conn.venue_id,
            conn = self.conn.index,
            subscribed = added.len(),
            unsubscribed = removed.len(),
            instruments = self.plan.instruments.len(),
            "subscriptions changed on the running connection"
        );
        old.book_intervals() != self.plan.book_intervals()
    }
}
