//! A small JSON document model built for the mapping hot path.
//!
//! A frame is parsed once into a flat *tape* of [`Node`]s that point back into
//! the frame text: strings are borrowed (and decoded only when they hold
//! escapes) and numbers keep their exact source text, so a price such as
//! `0.00100000` reaches [`rust_decimal::Decimal`] digit for digit. The tape is
//! owned by a reusable [`Parser`], so parsing a frame allocates nothing once
//! the tape has grown to the largest frame seen.
//!
//! We parse ourselves rather than through `serde_json::Value` (which owns
//! every string and, without its crate-wide `arbitrary_precision` feature,
//! turns numbers into `f64`) or a SIMD crate (whose DOMs also convert
//! numbers): exact number text and zero-copy access are the two properties
//! the mapping engine needs.

mod owned;
mod parse;
mod value;
mod write;

pub use owned::OwnedDoc;
pub use parse::{ParseError, Parser};
pub use value::{Kind, Members, Value};
pub use write::{write_json, write_str};

/// One tape entry.
///
/// * `Num`, `Str`, `EscStr`: `a..b` is the byte range of the token in the
///   source (for strings, without the quotes);
/// * `Arr`, `Obj`: `a` is the number of elements (members), `b` is the tape
///   index one past the container's last descendant. An object's children are
///   its keys and values, alternating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) tag: Tag,
    pub(crate) a: u32,
    pub(crate) b: u32,
}

/// The type of a tape entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tag {
    Null,
    True,
    False,
    Num,
    /// A string without escapes: the source bytes are the value.
    Str,
    /// A string with escapes: decode before use.
    EscStr,
    Arr,
    Obj,
}
