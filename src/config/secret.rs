//! A string that never shows itself: `Debug` and `Display` print `[redacted]`.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

/// A secret value (password, token, key). Read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself: only for handing it to the component that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A secret; prefer `${ENV_VAR}` substitution over writing it in the file. Never logged.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_itself() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }
}

/// The URL without its query string (which may hold a token) and without
/// the `user:password@` part.
pub fn redact_url(url: &str) -> String {
    let base = match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    match base[authority_start..authority_end].rfind('@') {
        Some(at) => format!(
            "{}…@{}",
            &base[..authority_start],
            &base[authority_start + at + 1..]
        ),
        None => base,
    }
}

#[cfg(test)]
mod redact_tests {
    #[test]
    fn query_strings_are_hidden() {
        assert_eq!(super::redact_url("wss://x/ws?token=abc"), "wss://x/ws?…");
        assert_eq!(super::redact_url("wss://x/ws"), "wss://x/ws");
        assert_eq!(
            super::redact_url("nats://relay:s3cret@127.0.0.1:4222"),
            "nats://…@127.0.0.1:4222"
        );
        assert_eq!(super::redact_url("tls://tok@h/x?y=1"), "tls://…@h/x?…");
    }
}
