//! Source positions and section-by-section deserialization of TOML.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::DeValue;

use super::Problems;

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..src.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Deserialize one spanned TOML value into `T`, recording a problem under
/// `field` on failure.
pub(crate) fn read<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    field: &str,
    problems: &mut Problems<'_>,
) -> Option<T> {
    let outer = value.span();
    match T::deserialize(toml::de::ValueDeserializer::from(value)) {
        Ok(v) => Some(v),
        Err(e) => {
            let span: Option<Range<usize>> = e.span().or(Some(outer.clone()));
            let key = span
                .as_ref()
                .filter(|s| s.start > outer.start)
                .and_then(|s| key_at(problems.src(), s.start));
            let path = match key {
                Some(k) if !k.is_empty() => format!("{field}.{k}"),
                _ => field.to_owned(),
            };
            problems.at(span, path, e.message().to_owned());
            None
        }
    }
}

/// The key of the `key = value` line holding byte `offset`, if the offset is
/// in the value part.
fn key_at(src: &str, offset: usize) -> Option<&str> {
    let offset = src.floor_char_boundary(offset.min(src.len()));
    let start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = &src[start..offset];
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    key.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        .then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 8), (2, 3));
    }
}
