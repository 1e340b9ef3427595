//! The JSON parser: text → tape.

use super::{Node, Tag, Value};

/// The deepest nesting of arrays and objects accepted. Venue frames nest a
/// handful of levels; a limit keeps hostile input from exhausting the stack.
pub(super) const MAX_DEPTH: usize = 128;

/// Why a text is not one JSON value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {offset}: {reason}")]
pub struct ParseError {
    /// Byte offset of the problem in the text.
    pub offset: usize,
    /// What is wrong.
    pub reason: &'static str,
}

/// A reusable JSON parser. Keep one per connection: its tape is reused for
/// every frame.
#[derive(Debug, Default)]
pub struct Parser {
    tape: Vec<Node>,
}

impl Parser {
    /// A parser with an empty tape.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse `src` as exactly one JSON value (surrounding whitespace allowed).
    pub fn parse<'s>(&'s mut self, src: &'s str) -> Result<Value<'s>, ParseError> {
        self.tape.clear();
        if src.len() > u32::MAX as usize {
            return Err(ParseError {
                offset: 0,
                reason: "document larger than 4 GiB",
            });
        }
        let mut cur = Cursor {
            s: src.as_bytes(),
            pos: 0,
            tape: &mut self.tape,
        };
        cur.skip_ws();
        cur.value(0)?;
        cur.skip_ws();
        if cur.pos != cur.s.len() {
            return Err(cur.err("trailing characters after the JSON value"));
        }
        Ok(Value::root(src, &self.tape))
    }

    /// Parse into an owned tape (for [`super::OwnedDoc`]).
    pub(crate) fn parse_into(src: &str, tape: &mut Vec<Node>) -> Result<(), ParseError> {
        tape.clear();
        let mut cur = Cursor {
            s: src.as_bytes(),
            pos: 0,
            tape,
        };
        cur.skip_ws();
        cur.value(0)?;
        cur.skip_ws();
        if cur.pos != cur.s.len() {
            return Err(cur.err("trailing characters after the JSON value"));
        }
        Ok(())
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
    tape: &'a mut Vec<Node>,
}

impl Cursor<'_> {
    fn err(&self, reason: &'static str) -> ParseError {
        ParseError {
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn push(&mut self, tag: Tag, a: usize, b: usize) {
        self.tape.push(Node {
            tag,
            a: a as u32,
            b: b as u32,
        });
    }

    fn value(&mut self, depth: usize) -> Result<(), ParseError> {
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true", Tag::True),
            Some(b'f') => self.literal(b"false", Tag::False),
            Some(b'n') => self.literal(b"null", Tag::Null),
            Some(_) => Err(self.err("expected a JSON value")),
            None => Err(self.err("unexpected end of input")),
        }
    }

    fn literal(&mut self, word: &'static [u8], tag: Tag) -> Result<(), ParseError> {
        if self.s[self.pos..].starts_with(word) {
            self.pos += word.len();
            self.push(tag, 0, 0);
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number: no digits after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number: no digits in the exponent"));
            }
        }
        self.push(Tag::Num, start, self.pos);
        Ok(())
    }

    fn string(&mut self) -> Result<(), ParseError> {
        self.pos += 1; // opening quote
        let start = self.pos;
        let mut escaped = false;
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            let hex = self.s.get(self.pos + 1..self.pos + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(self.err("invalid \\u escape"));
                            }
                            self.pos += 5;
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                Some(0..=0x1f) => return Err(self.err("control character in string")),
                Some(_) => self.pos += 1,
            }
        }
        let tag = if escaped { Tag::EscStr } else { Tag::Str };
        self.push(tag, start, self.pos);
        self.pos += 1; // closing quote
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<(), ParseError> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.pos += 1;
        let at = self.tape.len();
        self.push(Tag::Arr, 0, 0);
        let mut count = 0usize;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                self.value(depth + 1)?;
                count += 1;
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.err("expected `,` or `]` in array")),
                }
            }
        }
        let end = self.tape.len();
        self.tape[at] = Node {
            tag: Tag::Arr,
            a: count as u32,
            b: end as u32,
        };
        Ok(())
    }

    fn object(&mut self, depth: usize) -> Result<(), ParseError> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.pos += 1;
        let at = self.tape.len();
        self.push(Tag::Obj, 0, 0);
        let mut count = 0usize;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                if self.peek() != Some(b'"') {
                    return Err(self.err("expected a string key in object"));
                }
                self.string()?;
                self.skip_ws();
                if self.peek() != Some(b':') {
                    return Err(self.err("expected `:` after object key"));
                }
                self.pos += 1;
                self.skip_ws();
                self.value(depth + 1)?;
                count += 1;
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.err("expected `,` or `}` in object")),
                }
            }
        }
        let end = self.tape.len();
        self.tape[at] = Node {
            tag: Tag::Obj,
            a: count as u32,
            b: end as u32,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::json::Kind;

    fn ok(src: &str) {
        let mut p = Parser::new();
        assert!(p.parse(src).is_ok(), "should parse: {src}");
    }

    fn bad(src: &str) {
        let mut p = Parser::new();
        assert!(p.parse(src).is_err(), "should fail: {src}");
    }

    #[test]
    fn accepts_valid_json() {
        for s in [
            "null",
            "true",
            " false ",
            "0",
            "-0.5e+10",
            "\"a\\u00e9\\n\"",
            "[]",
            "{}",
            "[1,[2,{\"a\":[]}],3]",
            "{\"a\":{\"b\":null},\"c\":\"d\"}",
            "1E5",
        ] {
            ok(s);
        }
    }

    #[test]
    fn rejects_invalid_json() {
        for s in [
            "",
            "nul",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "\"abc",
            "\"\\x\"",
            "\"\\u12\"",
            "[1,]",
            "[1 2]",
            "{\"a\" 1}",
            "{a:1}",
            "{\"a\":1,}",
            "1 2",
            "\"tab\there\"",
            "[",
        ] {
            bad(s);
        }
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let deep = "[".repeat(100_000);
        let mut p = Parser::new();
        let e = p.parse(&deep).unwrap_err();
        assert_eq!(e.reason, "nesting too deep");
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(p.parse(&fine).is_ok());
    }

    #[test]
    fn numbers_keep_their_text() {
        let mut p = Parser::new();
        let v = p.parse("[0.00100000, 1.7023900800000002, -12e-3]").unwrap();
        let texts: Vec<_> = v.elements().map(|e| e.number_text().unwrap()).collect();
        assert_eq!(texts, ["0.00100000", "1.7023900800000002", "-12e-3"]);
        assert_eq!(v.kind(), Kind::Array);
    }

    #[test]
    fn tape_is_reused() {
        let mut p = Parser::new();
        p.parse("[1,2,3,4,5,6,7,8]").unwrap();
        let cap = p.tape.capacity();
        p.parse("[1,2]").unwrap();
        assert_eq!(p.tape.capacity(), cap);
    }
}
