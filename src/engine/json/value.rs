//! Read access to a parsed document.

use std::borrow::Cow;

use super::{Node, Tag};

/// The JSON type of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `null`
    Null,
    /// `true` / `false`
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl Kind {
    /// The name jq's `type` gives this kind.
    pub fn jq_name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "boolean",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Array => "array",
            Kind::Object => "object",
        }
    }
}

/// A value inside a parsed document: a cheap, copyable cursor.
#[derive(Clone, Copy)]
pub struct Value<'a> {
    src: &'a str,
    tape: &'a [Node],
    idx: u32,
}

impl std::fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        super::write_json(*self, &mut s);
        f.write_str(&s)
    }
}

impl<'a> Value<'a> {
    pub(crate) fn root(src: &'a str, tape: &'a [Node]) -> Self {
        Value { src, tape, idx: 0 }
    }

    fn node(&self) -> Node {
        self.tape[self.idx as usize]
    }

    fn at(&self, idx: u32) -> Value<'a> {
        Value {
            src: self.src,
            tape: self.tape,
            idx,
        }
    }

    /// One past this value's last tape entry.
    fn end(&self) -> u32 {
        let n = self.node();
        match n.tag {
            Tag::Arr | Tag::Obj => n.b,
            _ => self.idx + 1,
        }
    }

    /// The JSON type.
    pub fn kind(&self) -> Kind {
        match self.node().tag {
            Tag::Null => Kind::Null,
            Tag::True | Tag::False => Kind::Bool,
            Tag::Num => Kind::Number,
            Tag::Str | Tag::EscStr => Kind::String,
            Tag::Arr => Kind::Array,
            Tag::Obj => Kind::Object,
        }
    }

    /// `true`/`false`, or `None` for other kinds.
    pub fn as_bool(&self) -> Option<bool> {
        match self.node().tag {
            Tag::True => Some(true),
            Tag::False => Some(false),
            _ => None,
        }
    }

    /// The exact source text of a number.
    pub fn number_text(&self) -> Option<&'a str> {
        let n = self.node();
        (n.tag == Tag::Num).then(|| &self.src[n.a as usize..n.b as usize])
    }

    /// The string value, decoded (borrowed when it holds no escapes).
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        let n = self.node();
        let raw = &self.src[n.a as usize..n.b as usize];
        match n.tag {
            Tag::Str => Some(Cow::Borrowed(raw)),
            Tag::EscStr => Some(Cow::Owned(unescape(raw))),
            _ => None,
        }
    }

    /// The string's source text between the quotes, escapes not decoded.
    pub(crate) fn raw_string(&self) -> Option<&'a str> {
        let n = self.node();
        matches!(n.tag, Tag::Str | Tag::EscStr).then(|| &self.src[n.a as usize..n.b as usize])
    }

    /// Number of elements (array) or members (object); 0 otherwise.
    pub fn len(&self) -> usize {
        let n = self.node();
        match n.tag {
            Tag::Arr | Tag::Obj => n.a as usize,
            _ => 0,
        }
    }

    /// True for an empty array or object (and for scalars).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements of an array (nothing for other kinds).
    pub fn elements(&self) -> Elements<'a> {
        let n = self.node();
        let (next, left) = if n.tag == Tag::Arr {
            (self.idx + 1, n.a)
        } else {
            (0, 0)
        };
        Elements {
            base: *self,
            next,
            left,
        }
    }

    /// The members of an object (nothing for other kinds).
    pub fn members(&self) -> Members<'a> {
        let n = self.node();
        let (next, left) = if n.tag == Tag::Obj {
            (self.idx + 1, n.a)
        } else {
            (0, 0)
        };
        Members {
            base: *self,
            next,
            left,
        }
    }

    /// The array element at `i`; negative `i` counts from the end (jq style).
    pub fn index(&self, i: i64) -> Option<Value<'a>> {
        let len = self.len() as i64;
        let i = if i < 0 { len + i } else { i };
        if self.node().tag != Tag::Arr || i < 0 || i >= len {
            return None;
        }
        self.elements().nth(i as usize)
    }

    /// The value of the object member `key` (the last one if repeated, as jq).
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        let n = self.node();
        if n.tag != Tag::Obj {
            return None;
        }
        let want = key.as_bytes();
        if want.is_empty() {
            return self
                .members()
                .filter(|(k, _)| k.is_empty())
                .last()
                .map(|(_, v)| v);
        }
        let src = self.src.as_bytes();
        let mut found = None;
        let mut next = self.idx + 1;
        for _ in 0..n.a {
            let k = self.tape[next as usize];
            let v = self.at(next + 1);
            let matches = match k.tag {
                // Compare lengths first: most keys differ in length or first byte.
                Tag::Str => {
                    (k.b - k.a) as usize == want.len()
                        && src[k.a as usize] == want[0]
                        && &src[k.a as usize..k.b as usize] == want
                }
                _ => self.at(next).as_str().as_deref() == Some(key),
            };
            if matches {
                found = Some(v);
            }
            next = v.end();
        }
        found
    }
}

/// Iterator over array elements.
pub struct Elements<'a> {
    base: Value<'a>,
    next: u32,
    left: u32,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let v = self.base.at(self.next);
        self.next = v.end();
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// Iterator over object members as (decoded key, value).
pub struct Members<'a> {
    base: Value<'a>,
    next: u32,
    left: u32,
}

impl<'a> Iterator for Members<'a> {
    type Item = (Cow<'a, str>, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let k = self.base.at(self.next);
        let v = self.base.at(self.next + 1);
        self.next = v.end();
        Some((k.as_str().unwrap_or_default(), v))
    }
}

/// Decode JSON string escapes (the parser has validated them). Lone
/// surrogates become U+FFFD.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else { break };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'u' => {
                let hex =
                    |at: usize| u32::from_str_radix(raw.get(at..at + 4).unwrap_or(""), 16).ok();
                let hi = hex(i + 2).unwrap_or(0xfffd);
                for _ in 0..4 {
                    chars.next();
                }
                let ch = if (0xd800..0xdc00).contains(&hi) && raw.get(i + 6..i + 8) == Some("\\u") {
                    match hex(i + 8) {
                        Some(lo) if (0xdc00..0xe000).contains(&lo) => {
                            for _ in 0..6 {
                                chars.next();
                            }
                            char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))
                        }
                        _ => None,
                    }
                } else {
                    char::from_u32(hi)
                };
                out.push(ch.unwrap_or('\u{fffd}'));
            }
            other => out.push(other), // `"`, `\`, `/`
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::engine::json::{Kind, Parser};

    #[test]
    fn navigation() {
        let mut p = Parser::new();
        let v = p
            .parse(r#"{"stream":"x","data":{"e":"trade","b":[["1.0","2"],["3","0"]],"n":null},"a":[true,false]}"#)
            .unwrap();
        assert_eq!(v.get("stream").unwrap().as_str().unwrap(), "x");
        let data = v.get("data").unwrap();
        assert_eq!(data.get("e").unwrap().as_str().unwrap(), "trade");
        let b = data.get("b").unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b.index(1).unwrap().index(0).unwrap().as_str().unwrap(), "3");
        assert_eq!(
            b.index(-1).unwrap().index(-1).unwrap().as_str().unwrap(),
            "0"
        );
        assert!(b.index(2).is_none());
        assert_eq!(data.get("n").unwrap().kind(), Kind::Null);
        assert!(data.get("missing").is_none());
        assert_eq!(v.get("a").unwrap().index(1).unwrap().as_bool(), Some(false));
        let keys: Vec<_> = v.members().map(|(k, _)| k.into_owned()).collect();
        assert_eq!(keys, ["stream", "data", "a"]);
    }

    #[test]
    fn escapes_are_decoded() {
        let mut p = Parser::new();
        let v = p
            .parse(r#"["a\"b\\c\/d\n", "\u00e9\ud83d\ude00", "\ud800x", {"k\u0031":1}]"#)
            .unwrap();
        assert_eq!(v.index(0).unwrap().as_str().unwrap(), "a\"b\\c/d\n");
        assert_eq!(v.index(1).unwrap().as_str().unwrap(), "é😀");
        assert_eq!(v.index(2).unwrap().as_str().unwrap(), "\u{fffd}x");
        assert!(v.index(3).unwrap().get("k1").is_some());
    }
}
