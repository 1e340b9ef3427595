//! Per-instrument liveness on the connection's side: on each check, an
//! instrument with no event of a data type for longer than expected goes
//! `stale` (a status event, `mdrelay_stale_total`, the
//! `mdrelay_instruments_stale` gauge) and is resubscribed alone, where the
//! venue file has an unsubscribe template, or else its connection is
//! replaced by a planned handover. Its next event brings a `live` status
//! event. Each instrument is acted on once per stale spell, so a market that
//! stays quiet costs one status event and one resubscribe, not a loop.

use tracing::{info, warn};

use super::pipeline::{Effects, FramePipeline};
use crate::application::liveness::Transition;
use crate::domain::{DataType, HumanDuration, StatusState, Timestamp};

impl FramePipeline<'_> {
    /// Find the instruments gone stale since the last check, and act.
    pub(super) fn check_liveness(&mut self, fx: &mut Effects) {
        let mut gone = Vec::new();
        self.live.check(Timestamp::now(), &mut gone);
        if gone.is_empty() {
            return;
        }
        // Per instrument: the types that went stale together.
        let mut by_slot: Vec<(usize, Vec<DataType>)> = Vec::new();
        for Transition {
            slot,
            data_type,
            silent_for,
        } in gone
        {
            let name = self.live.slots()[slot].instrument.clone();
            self.counters.stale.get(data_type).inc();
            self.counters.stale_now.get(data_type).inc();
            let reason = format!("no {data_type} for {}", HumanDuration(silent_for));
            if let Some(suppressed) = self.counters.log("instrument stale") {
                warn!(venue = %self.conn.venue_id, conn = self.conn.index, instrument = %name, data_type = %data_type, silent_for = %HumanDuration(silent_for), suppressed, "instrument stale: resubscribing it");
            }
            self.instrument_status(&name, StatusState::Stale, &reason, fx);
            match by_slot.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, types)) => types.push(data_type),
                None => by_slot.push((slot, vec![data_type])),
            }
        }
        let mut reconnect = None;
        for (slot, types) in by_slot {
            let name = self.live.slots()[slot].instrument.clone();
            if self.resubscribe(&name, &types, fx).is_none() {
                reconnect.get_or_insert(name);
            }
        }
        if let Some(name) = reconnect {
            // No unsubscribe template: a new connection resubscribes it,
            // overlapping this one so the other instruments lose nothing.
            fx.handover.get_or_insert(format!(
                "instrument {name} is stale and the venue file has no unsubscribe template"
            ));
        }
    }

    /// Slot `slot` had an event of `t` again after being stale.
    pub(super) fn came_back(&mut self, slot: usize, t: DataType, fx: &mut Effects) {
        let name = self.live.slots()[slot].instrument.clone();
        self.counters.stale_now.get(t).dec();
        info!(venue = %self.conn.venue_id, conn = self.conn.index, instrument = %name, data_type = %t, "instrument live again");
        self.instrument_status(&name, StatusState::Live, &format!("{t} events again"), fx);
    }
}
