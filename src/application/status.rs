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

/// Encode an event for the publisher (its id moves into the message).
pub fn outgoing(ev: Event, format: PayloadFormat, received: Instant) -> Outgoing {
    // About 320 bytes of envelope, plus up to ~48 per book level: one
    // allocation, no regrowth for all but the largest images.
    let levels = match &ev.payload {
        Payload::Book(u) | Payload::BookTop(u) => u.bids.len() + u.asks.len(),
        Payload::BookSnapshot(s) => s.book.bids.len() + s.book.asks.len(),
        _ => 0,
    };
    let mut buf = Vec::with_capacity(320 + 48 * levels);
    format.encode(&ev, &mut buf);
    Outgoing {
        subject: ev.subject().into(),
        data_type: ev.data_type(),
        id: ev.id.0,
        venue: ev.venue,
        payload: Bytes::from(buf),
        received,
    }
}
