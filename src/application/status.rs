//! Status events: every connect, disconnect, resubscribe and gap is
//! published on `market.<venue>.<symbol>.status` for each affected instrument.

use crate::domain::{
    DataType, Event, EventId, Instrument, Payload, Status, StatusState, Timestamp,
};
use std::sync::Arc;

/// A status event for one instrument. Its id includes the time, so each
/// occurrence is stored.
pub fn event(
    venue: &Arc<str>,
    instrument: Arc<Instrument>,
    state: StatusState,
    reason: &str,
    now: Timestamp,
) -> Event {
    let key = format!("{}-{}", state.as_str(), now.0);
    Event {
        id: EventId::new(venue, DataType::Status, &instrument.venue_instrument, &key),
        venue: venue.clone(),
        instrument,
        exchange_time: None,
        receive_time: now,
        payload: Payload::Status(Status {
            state,
            reason: reason.to_owned(),
        }),
    }
}
