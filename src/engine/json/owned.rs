//! A parsed document that owns its text, for values kept across frames
//! (per-connection context captured from acks).

use super::{Node, ParseError, Parser, Value};

/// A JSON document owning its source text and tape.
#[derive(Clone, Debug)]
pub struct OwnedDoc {
    src: String,
    tape: Vec<Node>,
}

impl OwnedDoc {
    /// Parse `src` into an owned document.
    pub fn parse(src: String) -> Result<Self, ParseError> {
        let mut tape = Vec::new();
        Parser::parse_into(&src, &mut tape)?;
        Ok(OwnedDoc { src, tape })
    }

    /// Copy a value (of any document) into an owned document.
    pub fn from_value(v: Value<'_>) -> Self {
        let mut s = String::new();
        super::write_json(v, &mut s);
        // A value written by `write_json` is valid JSON.
        Self::parse(s).expect("write_json produces valid JSON")
    }

    /// The root value.
    pub fn root(&self) -> Value<'_> {
        Value::root(&self.src, &self.tape)
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        &self.src
    }
}
