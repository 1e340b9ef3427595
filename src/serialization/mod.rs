//! Wire forms of canonical events: JSON (decimals as strings, times as
//! RFC 3339) and protobuf (`proto/market_data.proto`). `docs/wire-format.md`
//! is the contract for both; `decode` reads both back.

pub mod decode;
pub mod frames;
mod json;
mod protobuf;
mod protobuf_direct;

pub use decode::{DecodeError, decode};
pub use json::{to_json, to_json_line};
pub use protobuf::{proto, to_message, to_protobuf, to_protobuf_via_prost};

use schemars::JsonSchema;
use serde::Deserialize;

/// The payload encoding of published events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// JSON, `application/json`.
    #[default]
    Json,
    /// protobuf `mdrelay.v1.Event`, `application/x-protobuf`.
    Protobuf,
}

impl PayloadFormat {
    /// The `Content-Type` header value.
    pub fn content_type(self) -> &'static str {
        match self {
            PayloadFormat::Json => "application/json",
            PayloadFormat::Protobuf => "application/x-protobuf; proto=mdrelay.v1.Event",
        }
    }

    /// Encode an event into `buf` (cleared first).
    pub fn encode(self, event: &crate::domain::Event, buf: &mut Vec<u8>) {
        buf.clear();
        match self {
            PayloadFormat::Json => to_json(event, buf),
            PayloadFormat::Protobuf => to_protobuf(event, buf),
        }
    }
}
