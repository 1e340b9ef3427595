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
            let src = problems.src();
            let inner = span.as_ref().filter(|s| s.start > outer.start);
            let key = inner.and_then(|s| key_at(src, s.start));
            // A nested table (`[[nats.streams]]` inside `nats`) names the
            // field more precisely than the section does.
            let base = inner
                .and_then(|s| header_path(src, s.start))
                .filter(|h| h.len() > field.len() && same_root(h, field))
                .unwrap_or_else(|| field.to_owned());
            let path = match key {
                Some(k) if !k.is_empty() => format!("{base}.{k}"),
                _ => base,
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

/// Whether two field paths start in the same top-level section.
fn same_root(a: &str, b: &str) -> bool {
    let root = |p: &str| p.split(['.', '[']).next().unwrap_or_default().to_owned();
    root(a) == root(b)
}

/// The path of the table header (`[a.b]` or `[[a.b]]`) in force on the line
/// of byte `offset`, with array indexes: `venues[1].subscriptions[0]`. Lines inside
/// multi-line strings are not headers.
fn header_path(src: &str, offset: usize) -> Option<String> {
    let offset = src.floor_char_boundary(offset.min(src.len()));
    // Up to the end of the line at `offset`, which may be the header itself.
    let offset = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut last = None;
    let mut in_string = false;
    for line in src[..offset].lines() {
        let quotes = line.matches("'''").count() + line.matches(r#"""""#).count();
        let was_in_string = in_string;
        if quotes % 2 == 1 {
            in_string = !in_string;
        }
        if was_in_string {
            continue;
        }
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("[[") {
            let name = rest.split("]]").next()?.trim().to_owned();
            let children = format!("{name}.");
            counts.retain(|k, _| !k.starts_with(&children));
            *counts.entry(name.clone()).or_default() += 1;
            last = Some(name);
        } else if let Some(rest) = t.strip_prefix('[') {
            last = Some(rest.split(']').next()?.trim().to_owned());
        }
    }
    let name: String = last?;
    let mut path = String::new();
    let mut prefix = String::new();
    for part in name.split('.') {
        for s in [&mut prefix, &mut path] {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(part.trim().trim_matches('"'));
        }
        if let Some(n) = counts.get(&prefix) {
            path.push_str(&format!("[{}]", n - 1));
        }
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_paths_carry_array_indexes() {
        let src = "[nats]\nx = 1\n[[nats.streams]]\na = 1\n[[nats.streams]]\nb = 2\n\
                   [[venues]]\n[[venues.subscriptions]]\n[[venues]]\n[[venues.subscriptions]]\nc = 1\n\
                   q = '''\n[not a header]\n'''\nd = 1\n";
        let at = |needle: &str| header_path(src, src.find(needle).unwrap());
        assert_eq!(at("x = 1").as_deref(), Some("nats"));
        assert_eq!(at("b = 2").as_deref(), Some("nats.streams[1]"));
        assert_eq!(at("c = 1").as_deref(), Some("venues[1].subscriptions[0]"));
        assert_eq!(at("d = 1").as_deref(), Some("venues[1].subscriptions[0]"));
    }

    #[test]
    fn positions_are_one_based() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 8), (2, 3));
    }
}
