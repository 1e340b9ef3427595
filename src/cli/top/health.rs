//! The parts of the relay's `/health` JSON that `mdrelay top` shows. Every
//! field is optional: an older relay (no per-instrument section) or a newer
//! one (more fields) still reads, and what is missing shows as `n/a`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};

/// A field read when it has the expected shape, and `None` otherwise (a
/// relay of another version), so the rest of the report still shows.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// The whole report.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct HealthDoc {
    /// `healthy`, `degraded` or `unhealthy`.
    pub status: Option<String>,
    /// The NATS connection.
    pub nats: NatsHealth,
    /// Venues by id.
    pub venues: BTreeMap<String, VenueHealth>,
}

/// `nats`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct NatsHealth {
    /// `connected`, `disconnected`, `pending`, `not_started`.
    pub state: Option<String>,
}

/// One venue.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct VenueHealth {
    /// `healthy` or `degraded`.
    pub status: Option<String>,
    /// Its connections (stopped ones are not listed).
    pub connections: Vec<ConnHealth>,
    /// Per instrument liveness, where the relay reports it in this shape.
    #[serde(deserialize_with = "lenient")]
    pub instruments: Option<Vec<InstrumentHealth>>,
}

/// One connection of a venue.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct ConnHealth {
    /// Index of the connection within its venue.
    pub index: Option<u64>,
    /// `connecting`, `connected`, `reconnecting`, `circuit_open`.
    pub state: Option<String>,
    /// Milliseconds since its last frame.
    pub last_frame_age_ms: Option<u64>,
    /// Reconnects so far.
    pub reconnects: Option<u64>,
    /// The last failure.
    pub last_error: Option<String>,
}

impl ConnHealth {
    /// Whether it is connected.
    pub(super) fn is_up(&self) -> bool {
        self.state.as_deref() == Some("connected")
    }
}

/// One instrument of a venue.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct InstrumentHealth {
    /// The venue's instrument name (`BTC-USDT`).
    pub instrument: String,
    /// The canonical symbol (`btc-usdt`).
    pub symbol: Option<String>,
    /// Liveness per data type (wire name).
    pub data_types: BTreeMap<String, TypeHealth>,
    /// Its order book, where it has one.
    #[serde(deserialize_with = "lenient")]
    pub book: Option<BookHealth>,
}

/// Liveness of one data type of an instrument.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct TypeHealth {
    /// Milliseconds since its last event (`None`: none yet).
    pub age_ms: Option<u64>,
    /// `live`, `stale` or `waiting`.
    pub state: Option<String>,
}

/// An instrument's order book.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct BookHealth {
    /// `synced`, `resyncing` or `stale`.
    pub state: Option<String>,
    /// The last update id applied.
    pub last_update_id: Option<i64>,
    /// Milliseconds since its last update.
    pub age_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_without_instruments_reads_as_absent() {
        let doc: HealthDoc = serde_json::from_str(
            r#"{"status":"degraded","nats":{"state":"connected","no_stream_for_ms":null},
                "venues":{"okx":{"status":"healthy","connections":[{"index":0,"state":"connected",
                "last_frame_age_ms":12,"quiet":false,"reconnects":0,"last_error":null}]}},
                "last_reload":null}"#,
        )
        .unwrap();
        assert_eq!(doc.status.as_deref(), Some("degraded"));
        let okx = &doc.venues["okx"];
        assert!(okx.instruments.is_none());
        assert!(okx.connections[0].is_up());
        assert_eq!(okx.connections[0].last_frame_age_ms, Some(12));
    }

    #[test]
    fn instruments_of_another_shape_read_as_absent_and_the_rest_still_reads() {
        let v: VenueHealth = serde_json::from_str(
            r#"{"status":"healthy","connections":[{"state":"connected"}],
                "instruments":{"count":3,"source":"reference"}}"#,
        )
        .unwrap();
        assert!(v.instruments.is_none());
        assert!(v.connections[0].is_up());
        let i: InstrumentHealth =
            serde_json::from_str(r#"{"instrument":"X","book":"synced"}"#).unwrap();
        assert!(i.book.is_none());
    }

    #[test]
    fn instruments_with_and_without_a_book_read() {
        let v: VenueHealth = serde_json::from_str(
            r#"{"status":"healthy","connections":[],"instruments":[
                {"instrument":"BTC-USDT","symbol":"btc-usdt",
                 "data_types":{"trade":{"age_ms":120,"state":"live"},"ticker":{"age_ms":null,"state":"waiting"}},
                 "book":{"state":"synced","last_update_id":123,"age_ms":40}},
                {"instrument":"ETH-USDT","data_types":{}}]}"#,
        )
        .unwrap();
        let i = v.instruments.unwrap();
        assert_eq!(i[0].data_types["trade"].age_ms, Some(120));
        assert_eq!(i[0].data_types["ticker"].state.as_deref(), Some("waiting"));
        assert_eq!(i[0].book.as_ref().unwrap().last_update_id, Some(123));
        assert!(i[1].book.is_none() && i[1].symbol.is_none());
    }
}
