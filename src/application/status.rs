//! Status events: every connect, disconnect, resubscribe and gap is
//! published on `market.<venue>.<symbol>.status` for each affected instrument.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::pipeline::Outgoing;
use crate::domain::{
    DataType, Event, EventId, Instrument, Payload, Status, StatusState, Timestamp,
};
use crate::serialization::PayloadFormat;

/// The wire name of a state.
pub fn state_name(s: StatusState) -> &'static str {
    match s {
        StatusState::Connected => "connected",
        StatusState::Disconnected => "disconnected",
        StatusState::Resubscribed => "resubscribed",
        StatusState::Gap => "gap",
    }
}

/// A status event for one instrument. Its id includes the time, so each
/// occurrence is stored.
pub fn event(
    venue: &Arc<str>,
    instrument: Arc<Instrument>,
    state: StatusState,
    reason: &str,
    now: Timestamp,
) -> Event {
    let key = format!("{}-{}", state_name(state), now.0);
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

/// Encode an event for the publisher.
pub fn outgoing(ev: &Event, format: PayloadFormat, received: Instant) -> Outgoing {
    let mut buf = Vec::with_capacity(320);
    format.encode(ev, &mut buf);
    Outgoing {
        subject: ev.subject(),
        id: ev.id.0.clone(),
        venue: ev.venue.clone(),
        data_type: ev.data_type(),
        payload: Bytes::from(buf),
        received,
    }
}
