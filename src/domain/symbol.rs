//! Canonical symbols and their NATS subject tokens.
//!
//! # Canonical symbols
//! - spot: `BASE/QUOTE`, e.g. `BTC/USDT`;
//! - perpetual swaps: `BASE/QUOTE:SETTLE`, e.g. `BTC/USDT:USDT` (linear) or
//!   `BTC/USD:BTC` (inverse, settled in the base coin);
//! - dated futures: `BASE/QUOTE:SETTLE-YYMMDD`, e.g. `BTC/USD:BTC-220527`;
//! - options: `BASE/QUOTE:SETTLE-YYMMDD-STRIKE-C|P`.
//!
//! Assets are upper case. A venue file derives the canonical symbol from the
//! venue's instrument name; when it cannot, the relay config may give it.
//!
//! # Subject tokens
//! Subjects are `market.<venue>.<token>.<data_type>`. The token is the
//! canonical symbol made safe for NATS: ASCII letters are lower-cased, `/`
//! becomes `-`, `:` becomes `_`, ASCII letters, digits, `-` and `_` are kept,
//! and every other byte (including `.`, `*`, `>`, whitespace and non-ASCII) is
//! written as `~XX` (upper-case hex of the UTF-8 byte). So `BTC/USDT` →
//! `btc-usdt`, `BTC/USDT:USDT` → `btc-usdt_usdt`, `ETH/USD:ETH-220624` →
//! `eth-usd_eth-220624`. An empty symbol becomes `~`.

use std::fmt::Write as _;

/// The NATS subject token for a canonical symbol (see the module docs).
pub fn subject_token(symbol: &str) -> String {
    if symbol.is_empty() {
        return "~".to_owned();
    }
    let mut out = String::with_capacity(symbol.len());
    for &b in symbol.as_bytes() {
        match b {
            b'A'..=b'Z' => out.push(b.to_ascii_lowercase() as char),
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => out.push(b as char),
            b'/' => out.push('-'),
            b':' => out.push('_'),
            other => {
                let _ = write!(out, "~{other:02X}");
            }
        }
    }
    out
}

/// The full subject `market.<venue>.<token>.<data_type>`.
pub fn subject(venue: &str, token: &str, data_type: super::DataType) -> String {
    let mut s = String::with_capacity(8 + venue.len() + token.len() + 14);
    s.push_str("market.");
    s.push_str(venue);
    s.push('.');
    s.push_str(token);
    s.push('.');
    s.push_str(data_type.as_str());
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DataType;

    #[test]
    fn documented_examples() {
        assert_eq!(subject_token("BTC/USDT"), "btc-usdt");
        assert_eq!(subject_token("BTC/USDT:USDT"), "btc-usdt_usdt");
        assert_eq!(subject_token("ETH/USD:ETH-220624"), "eth-usd_eth-220624");
        assert_eq!(
            subject_token("BTC/USD:BTC-220624-50000-C"),
            "btc-usd_btc-220624-50000-c"
        );
        assert_eq!(subject_token(""), "~");
        assert_eq!(
            subject("some-venue", "btc-usdt", DataType::Trade),
            "market.some-venue.btc-usdt.trade"
        );
    }

    #[test]
    fn unsafe_characters_are_escaped() {
        assert_eq!(subject_token("A.B"), "a~2Eb");
        assert_eq!(subject_token("*>"), "~2A~3E");
        assert_eq!(subject_token("X Y\tZ"), "x~20y~09z");
        assert_eq!(subject_token("€"), "~E2~82~AC");
    }

    proptest::proptest! {
        #[test]
        fn tokens_are_always_nats_safe(s in ".*") {
            let t = subject_token(&s);
            proptest::prop_assert!(!t.is_empty());
            proptest::prop_assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_~".contains(&b)));
            // Upper-case letters only appear inside `~XX` escapes.
            let mut rest = t.as_str();
            while let Some(i) = rest.find('~') {
                proptest::prop_assert!(!rest[..i].bytes().any(|b| b.is_ascii_uppercase()));
                rest = rest.get(i + 3..).unwrap_or("");
            }
            proptest::prop_assert!(!rest.bytes().any(|b| b.is_ascii_uppercase()));
        }
    }
}
