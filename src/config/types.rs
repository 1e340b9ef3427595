//! Small typed values shared by the config files.

use std::borrow::Cow;
use std::ops::Range;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// A jq expression as written in a config file, with its position.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Jq(pub Spanned<String>);

/// The text only: where the expression sits in its file is not part of
/// what it says (a venue's connection fingerprint hashes this form).
impl std::fmt::Debug for Jq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.text(), f)
    }
}

impl Jq {
    /// The expression text.
    pub fn text(&self) -> &str {
        self.0.get_ref()
    }

    /// The byte span of the TOML string holding the expression.
    pub fn span(&self) -> Range<usize> {
        self.0.span()
    }

    /// The byte offset in the file of byte `offset` of the expression
    /// (exact for literal strings, the usual form for jq in TOML).
    pub fn offset_in_file(&self, src: &str, offset: usize) -> usize {
        let span = self.span();
        let quote = src.get(span.start..).map_or(1, |s| {
            if s.starts_with("'''") || s.starts_with("\"\"\"") {
                3
            } else {
                1
            }
        });
        // Multi-line strings drop a newline right after the opening quotes.
        let newline = src
            .get(span.start + quote..)
            .map_or(0, |s| usize::from(quote == 3 && s.starts_with('\n')));
        span.start + quote + newline + offset
    }
}

impl JsonSchema for Jq {
    fn schema_name() -> Cow<'static, str> {
        "Jq".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A jq expression (jaq dialect), compiled when the file loads.",
        })
    }
}

/// A duration written as text: `500ms`, `20s`, `3m`, `24h`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration `{text}`: {e} (examples: 500ms, 20s, 3m, 24h)"
            ))
        })
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration such as `500ms`, `20s`, `3m`, `24h` or `1h 30m`.",
            "pattern": "^\\s*[0-9]+\\s*[a-zµ]+(\\s*[0-9]+\\s*[a-zµ]+)*\\s*$",
        })
    }
}

/// How long an instrument may go without an event on one channel before it
/// is stale: a duration above zero, or `off` (never stale).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No liveness check.
    Off,
    /// Stale past this long without an event.
    Every(Duration),
}

impl Expect {
    /// The interval, or `None` when off.
    pub fn interval(self) -> Option<Duration> {
        match self {
            Expect::Off => None,
            Expect::Every(d) => Some(d),
        }
    }
}

impl<'de> Deserialize<'de> for Expect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim() == "off" {
            return Ok(Expect::Off);
        }
        let bad = |why: String| {
            serde::de::Error::custom(format!(
                "invalid expected interval `{text}`: {why} (a duration above zero such as 30s or 2m, or \"off\")"
            ))
        };
        match humantime::parse_duration(&text) {
            Ok(d) if d.is_zero() => Err(bad("must be above zero".into())),
            Ok(d) => Ok(Expect::Every(d)),
            Err(e) => Err(bad(e.to_string())),
        }
    }
}

impl JsonSchema for Expect {
    fn schema_name() -> Cow<'static, str> {
        "ExpectedInterval".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration above zero (`30s`, `2m`), or `off`.",
            "pattern": "^\\s*(off|[0-9]+\\s*[a-zµ]+(\\s*[0-9]+\\s*[a-zµ]+)*)\\s*$",
        })
    }
}
