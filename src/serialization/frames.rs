//! The frames-file format shared by fixtures, `mdrelay map`, `record` and
//! `replay`: one frame per line, exactly as received; a binary frame is
//! written as `{"binary_base64":"..."}`.

use base64::Engine as _;
use serde::Deserialize;

use crate::engine::mapper::RawFrame;

/// A frame read from a fixture or stdin line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedFrame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

impl OwnedFrame {
    /// Borrow as a [`RawFrame`].
    pub fn as_raw(&self) -> RawFrame<'_> {
        match self {
            OwnedFrame::Text(t) => RawFrame::Text(t),
            OwnedFrame::Binary(b) => RawFrame::Binary(b),
        }
    }
}

/// One line of a frames file.
#[derive(Debug)]
pub enum FrameLine {
    /// A blank line.
    Skip,
    /// A frame.
    Frame(OwnedFrame),
    /// A `binary_base64` line that does not decode.
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BinaryLine {
    binary_base64: String,
}

/// Interpret one line of a frames file.
pub fn parse_frame_line(line: &str) -> FrameLine {
    if line.trim().is_empty() {
        return FrameLine::Skip;
    }
    if line.starts_with("{\"binary_base64\"") {
        return match serde_json::from_str::<BinaryLine>(line) {
            Ok(b) => match base64::engine::general_purpose::STANDARD.decode(b.binary_base64.trim())
            {
                Ok(bytes) => FrameLine::Frame(OwnedFrame::Binary(bytes)),
                Err(e) => FrameLine::Invalid(format!("bad base64: {e}")),
            },
            Err(e) => FrameLine::Invalid(format!("bad binary_base64 line: {e}")),
        };
    }
    FrameLine::Frame(OwnedFrame::Text(line.to_owned()))
}

/// The line a binary frame is written as.
pub fn binary_line(bytes: &[u8]) -> String {
    format!(
        "{{\"binary_base64\":\"{}\"}}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}
