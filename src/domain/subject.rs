//! NATS subject wildcards: which subjects a stream's subject filter captures.
//!
//! A subject is a list of tokens separated by `.`. In a pattern, a token
//! `*` matches exactly one token, and a last token `>` matches one or more
//! tokens. A `*` or `>` inside a longer token (`a*`) is an ordinary
//! character, as in NATS.

/// Whether the subject filter `pattern` (with NATS wildcards) captures the
/// literal `subject`. `market.>` captures `market.okx.btc-usdt.trade`;
/// `market.*.btc-usdt.*` does too; `market.>` does not capture `market`.
/// A `*` token in `subject` (standing for "any instrument") is captured
/// only by a wildcard at that place in the pattern.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    let mut pattern_tokens = pattern.split('.').peekable();
    while let Some(p) = pattern_tokens.next() {
        if p == ">" && pattern_tokens.peek().is_none() {
            // One or more tokens left.
            return subject_tokens.next().is_some();
        }
        match subject_tokens.next() {
            Some(s) if p == "*" || p == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_subjects_match_only_themselves() {
        assert!(subject_matches(
            "market.okx.btc-usdt.trade",
            "market.okx.btc-usdt.trade"
        ));
        assert!(!subject_matches(
            "market.okx.btc-usdt.trade",
            "market.okx.btc-usdt.ticker"
        ));
        assert!(!subject_matches("market.okx", "market.okx.btc-usdt"));
        assert!(!subject_matches("market.okx.btc-usdt", "market.okx"));
    }

    #[test]
    fn star_matches_exactly_one_token() {
        assert!(subject_matches(
            "market.*.btc-usdt.trade",
            "market.okx.btc-usdt.trade"
        ));
        assert!(subject_matches("market.*.*.*", "market.okx.btc-usdt.trade"));
        assert!(!subject_matches(
            "market.*.trade",
            "market.okx.btc-usdt.trade"
        ));
        assert!(!subject_matches("market.*", "market"));
        assert!(subject_matches("*", "market"));
        assert!(!subject_matches("*", "market.okx"));
    }

    #[test]
    fn greater_than_matches_one_or_more_tail_tokens() {
        assert!(subject_matches(">", "market"));
        assert!(subject_matches(">", "market.okx.btc-usdt.trade"));
        assert!(subject_matches("market.>", "market.okx.btc-usdt.trade"));
        assert!(subject_matches("market.okx.>", "market.okx.btc-usdt.trade"));
        assert!(!subject_matches("market.okx.>", "market.okx"));
        assert!(!subject_matches(
            "market.okx.>",
            "market.bybit.btc-usdt.trade"
        ));
        assert!(subject_matches(
            "market.*.btc-usdt.>",
            "market.okx.btc-usdt.l2_top"
        ));
    }

    #[test]
    fn wildcards_inside_a_token_are_literal() {
        assert!(!subject_matches(
            "market.ok*.btc-usdt.trade",
            "market.okx.btc-usdt.trade"
        ));
        assert!(subject_matches("market.ok*.x", "market.ok*.x"));
        // A `*` in the subject: only a wildcard there captures it.
        assert!(subject_matches("market.okx.*.trade", "market.okx.*.trade"));
        assert!(subject_matches("market.okx.>", "market.okx.*.trade"));
        assert!(!subject_matches(
            "market.okx.btc.trade",
            "market.okx.*.trade"
        ));
        // `>` only as the last token is a wildcard.
        assert!(!subject_matches(
            "market.>.trade",
            "market.okx.btc-usdt.trade"
        ));
    }

    proptest::proptest! {
        /// Replacing any token with `*`, or any tail with `>`, still
        /// captures the subject; one token more or less never does.
        #[test]
        fn wildcard_forms_of_a_subject_capture_it(
            tokens in proptest::collection::vec("[a-z0-9_~-]{1,8}", 1..6),
            i in 0usize..6,
        ) {
            let subject = tokens.join(".");
            let i = i % tokens.len();
            let mut star = tokens.clone();
            star[i] = "*".into();
            proptest::prop_assert!(subject_matches(&star.join("."), &subject));
            let mut tail = tokens[..i].to_vec();
            tail.push(">".into());
            proptest::prop_assert!(subject_matches(&tail.join("."), &subject));
            proptest::prop_assert!(subject_matches(&subject, &subject));
            let longer = format!("{subject}.x");
            proptest::prop_assert!(!subject_matches(&longer, &subject));
            proptest::prop_assert!(!subject_matches(&subject, &longer));
        }
    }
}
