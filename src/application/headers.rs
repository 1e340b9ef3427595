//! The headers of a published event: `Nats-Msg-Id` (JetStream's dedup
//! key), the venue, the data type and the payload's `Content-Type`.

use async_nats::{HeaderMap, HeaderName};

use super::pipeline::Outgoing;
use crate::domain::DataType;

// Names built at compile time: only the values are allocated per event.
const MSG_ID: HeaderName = HeaderName::from_static("Nats-Msg-Id");
const VENUE: HeaderName = HeaderName::from_static("Mdrelay-Venue");
const DATA_TYPE: HeaderName = HeaderName::from_static("Mdrelay-Data-Type");
const CONTENT_TYPE: HeaderName = HeaderName::from_static("Content-Type");

/// The headers of one event, built afresh: a map that grows twice, four
/// hashed inserts. (The publisher uses [`HeaderTemplate`]; this is what it
/// is measured against, `benches/publish.rs`.)
pub fn headers(m: &Outgoing, content_type: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(MSG_ID, m.id.as_str());
    h.insert(VENUE, &*m.venue);
    h.insert(DATA_TYPE, m.data_type.as_str());
    h.insert(CONTENT_TYPE, content_type);
    h
}

/// The headers every event of one venue and data type shares, built once:
/// each event clones the map (already sized for four: no growth, no
/// rehashing) and replaces the id (one hash). Same headers as [`headers`].
#[derive(Debug, Clone)]
pub struct HeaderTemplate {
    map: HeaderMap,
    /// The same headers as the protocol's header block, for the direct
    /// writer: the version line, then every header but the id, then the
    /// id's name (`Nats-Msg-Id: `); the id and the block's end follow.
    block: bytes::Bytes,
}

impl HeaderTemplate {
    /// The shared headers of `venue`'s `data_type` events.
    pub fn new(venue: &str, data_type: DataType, content_type: &'static str) -> Self {
        // The id's place is kept with an empty value (no allocation): the
        // event's id replaces it, so the clone never grows.
        let mut map = HeaderMap::new();
        map.insert(MSG_ID, "");
        map.insert(VENUE, venue);
        map.insert(DATA_TYPE, data_type.as_str());
        map.insert(CONTENT_TYPE, content_type);
        let block = format!(
            "NATS/1.0\r\n{VENUE}: {venue}\r\n{DATA_TYPE}: {}\r\n{CONTENT_TYPE}: {content_type}\r\n{MSG_ID}: ",
            data_type.as_str()
        );
        HeaderTemplate {
            map,
            block: block.into_bytes().into(),
        }
    }

    /// The header block up to the id's value (see [`HeaderTemplate`]).
    pub fn block(&self) -> &[u8] {
        &self.block
    }

    /// The headers of the event with id `id`.
    pub fn with_id(&self, id: &str) -> HeaderMap {
        let mut h = self.map.clone();
        h.insert(MSG_ID, id);
        h
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;

    #[test]
    fn the_header_template_gives_the_same_headers_as_a_fresh_build() {
        let m =
            crate::application::acks::tests::flight(&Arc::new(Semaphore::new(1)), "v:trade:X:1").m;
        let t = HeaderTemplate::new(&m.venue, m.data_type, "application/json");
        let sorted = |h: &HeaderMap| {
            let mut v: Vec<(String, Vec<String>)> = h
                .iter()
                .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
                .collect();
            v.sort();
            v
        };
        let fresh = sorted(&headers(&m, "application/json"));
        assert_eq!(sorted(&t.with_id(&m.id)), fresh);
        assert_eq!(
            fresh[3],
            ("Nats-Msg-Id".to_owned(), vec!["v:trade:X:1".to_owned()])
        );
        // The direct writer's block holds the same headers.
        let block = format!(
            "{}{}\r\n\r\n",
            std::str::from_utf8(t.block()).unwrap(),
            m.id
        );
        let mut lines: Vec<(String, Vec<String>)> = block
            .strip_prefix("NATS/1.0\r\n")
            .unwrap()
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(": ").unwrap();
                (k.to_owned(), vec![v.to_owned()])
            })
            .collect();
        lines.sort();
        assert_eq!(lines, fresh);
        let other = t.with_id("v:trade:X:2");
        assert_eq!(other.get("Nats-Msg-Id").unwrap().as_str(), "v:trade:X:2");
    }
}
