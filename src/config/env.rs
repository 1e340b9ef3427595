//! `${VAR}` and `${VAR:-default}` substitution in config text.
//!
//! Substitution happens on the raw text before TOML parsing, so it works in
//! any value. `$$` writes a literal `$`. A variable that is unset (and has no
//! default) is a problem reported with its position; all of them are
//! reported together.

use std::ops::Range;

/// A variable that could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unresolved {
    /// Byte span of the `${...}` in the original text.
    pub span: Range<usize>,
    /// What is wrong.
    pub message: String,
}

/// Substitute variables using `lookup`. Returns the new text, and the
/// problems found. Spans refer to the original text.
pub(super) fn substitute(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> (String, Vec<Unresolved>) {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            offset += i + 2;
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            offset += i + 1;
            rest = after;
            continue;
        };
        let Some(end) = body.find('}') else {
            problems.push(Unresolved {
                span: offset + i..text.len(),
                message: "unterminated `${`".into(),
            });
            out.push_str(&rest[i..]);
            return (out, problems);
        };
        let expr = &body[..end];
        let span = offset + i..offset + i + 3 + end;
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        let valid =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            problems.push(Unresolved {
                span,
                message: format!("`${{{expr}}}` is not a valid variable reference"),
            });
        } else {
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => problems.push(Unresolved {
                    span,
                    message: format!("environment variable `{name}` is not set (use `${{{name}:-default}}` for a default)"),
                }),
            }
        }
        let consumed = i + 3 + end;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("nats.local".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_with_defaults() {
        let (out, p) = substitute(
            "url = \"nats://${HOST}:${PORT:-4222}\" cost = \"$$5\" x = \"$y\"",
            env,
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            out,
            "url = \"nats://nats.local:4222\" cost = \"$5\" x = \"$y\""
        );
        let (out, _) = substitute("${EMPTY:-fallback}", env);
        assert_eq!(out, "fallback");
    }

    #[test]
    fn reports_every_missing_variable() {
        let (_, p) = substitute(
            "a = \"${NOPE}\"\nb = \"${ALSO_NOPE}\" c = \"${bad-name}\"",
            env,
        );
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].span, 5..12);
        assert!(p[1].message.contains("ALSO_NOPE"));
        assert!(p[2].message.contains("not a valid"));
    }
}
