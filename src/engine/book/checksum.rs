//! Book checksums: the venue file declares how the checksum string is built
//! from the book (depth, order of levels, number formatting, separator) and
//! how the CRC32 is compared; this computes it.

use schemars::JsonSchema;
use serde::Deserialize;

use super::LocalBook;
use crate::domain::Level;

/// The order levels appear in the checksum string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumLayout {
    /// bid 1, ask 1, bid 2, ask 2, … (a missing side is skipped) — OKX, Bitfinex.
    Interleaved,
    /// all asks (best first), then all bids (best first) — Kraken.
    AsksThenBids,
    /// all bids, then all asks.
    BidsThenAsks,
}

/// How prices and quantities are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumNumbers {
    /// As the venue sent them (`0.35280000`).
    #[default]
    AsReceived,
    /// Digits only: the decimal point and leading zeros removed
    /// (`0.0022900` → `22900`) — Kraken.
    Digits,
    /// As JavaScript's `String(number)` writes the value: shortest form, no
    /// trailing zeros, exponent form below 1e-6 and from 1e21 on
    /// (`0.00000002` → `2e-8`) — for venues whose reference client joins
    /// numbers in JavaScript (Bitfinex).
    Ecmascript,
}

/// `d` as written with the scale it carries, in `text`.
fn rendered<'t>(d: &rust_decimal::Decimal, text: &'t mut [u8; 64]) -> &'t [u8] {
    let n = crate::domain::DecimalText(d).render(text);
    &text[..n]
}

/// Write `d` (non-negative) as ECMAScript's Number::toString would write the
/// double with the same shortest digits (ECMA-262, Number::toString).
fn ecmascript(d: &rust_decimal::Decimal, out: &mut Vec<u8>) {
    if d.is_zero() {
        out.push(b'0');
        return;
    }
    let mut itoa_buf = itoa::Buffer::new();
    let all = itoa_buf.format(d.mantissa().unsigned_abs()).as_bytes();
    // value = 0.d1d2…dk × 10^n, with the shortest digits (no trailing zeros)
    let n = all.len() as i64 - i64::from(d.scale());
    let digits = &all[..all.iter().rposition(|&b| b != b'0').map_or(1, |i| i + 1)];
    let k = digits.len() as i64;
    if k <= n && n <= 21 {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.extend_from_slice(&digits[..n as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-n) as usize));
        out.extend_from_slice(digits);
    } else {
        out.push(digits[0]);
        if k > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if n - 1 < 0 { b'-' } else { b'+' });
        let mut exp = itoa::Buffer::new();
        out.extend_from_slice(exp.format((n - 1).unsigned_abs()).as_bytes());
    }
}

/// What a checksum mismatch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumMode {
    /// A mismatch is a gap: `gap` status, resync of the instrument.
    #[default]
    Enforce,
    /// A mismatch is counted (`mdrelay_checksum_mismatches_total`) and
    /// logged, and the book goes on: for a checksum spec not yet confirmed
    /// on live traffic, where a wrong detail would otherwise resync forever.
    Report,
}

/// Decimal places each price and quantity is written with, for venues that
/// checksum numbers at the instrument's precision but print them in shortest
/// form (`0.566` checksummed as `0.5660`). Fetched per instrument
/// (`[book.checksum.scales]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scales {
    /// Decimal places of prices.
    pub price: u32,
    /// Decimal places of quantities.
    pub quantity: u32,
}

/// A checksum definition (`[book.checksum]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumSpec {
    /// Levels per side included.
    pub depth: usize,
    /// Order of levels.
    pub layout: ChecksumLayout,
    /// Number formatting.
    pub numbers: ChecksumNumbers,
    /// Written between numbers (`:`), or empty.
    pub separator: String,
    /// Write ask quantities as negative numbers (Bitfinex amounts).
    pub negative_asks: bool,
    /// Compare the CRC32 as a signed 32-bit integer.
    pub signed: bool,
    /// A checksum of 0 means "not provided" (OKX now sends a fixed 0).
    pub zero_means_absent: bool,
    /// Enforce (resync on mismatch) or only report.
    pub mode: ChecksumMode,
}

impl ChecksumSpec {
    /// The checksum of `book`, reusing `buf` for the string; numbers are
    /// written at `scales` when given, else with the scale they arrived with.
    pub fn compute(&self, book: &LocalBook, scales: Option<Scales>, buf: &mut Vec<u8>) -> i64 {
        buf.clear();
        let bids = book.bids().take(self.depth);
        let asks = book.asks().take(self.depth);
        match self.layout {
            ChecksumLayout::Interleaved => {
                let mut b = bids;
                let mut a = asks;
                loop {
                    let (nb, na) = (b.next(), a.next());
                    if nb.is_none() && na.is_none() {
                        break;
                    }
                    if let Some(l) = nb {
                        self.level(buf, l, false, scales);
                    }
                    if let Some(l) = na {
                        self.level(buf, l, true, scales);
                    }
                }
            }
            ChecksumLayout::AsksThenBids => {
                asks.for_each(|l| self.level(buf, l, true, scales));
                bids.for_each(|l| self.level(buf, l, false, scales));
            }
            ChecksumLayout::BidsThenAsks => {
                bids.for_each(|l| self.level(buf, l, false, scales));
                asks.for_each(|l| self.level(buf, l, true, scales));
            }
        }
        let crc = crc32fast::hash(buf);
        if self.signed {
            i64::from(crc as i32)
        } else {
            i64::from(crc)
        }
    }

    fn level(&self, buf: &mut Vec<u8>, l: &Level, ask: bool, scales: Option<Scales>) {
        let (mut price, mut quantity) = (l.price, l.quantity);
        if let Some(s) = scales {
            // Copies on the stack: pad (or round) to the instrument's places.
            price.rescale(s.price);
            quantity.rescale(s.quantity);
        }
        self.number(buf, &price, false);
        self.number(buf, &quantity, ask && self.negative_asks);
    }

    /// Append one number's bytes (ASCII only, so no UTF-8 checks).
    fn number(&self, buf: &mut Vec<u8>, d: &rust_decimal::Decimal, negative: bool) {
        if !buf.is_empty() {
            buf.extend_from_slice(self.separator.as_bytes());
        }
        if negative && !d.is_zero() {
            buf.push(b'-');
        }
        let mut text = [0u8; 64];
        match self.numbers {
            ChecksumNumbers::AsReceived => buf.extend_from_slice(rendered(d, &mut text)),
            ChecksumNumbers::Ecmascript => ecmascript(&d.abs(), buf),
            ChecksumNumbers::Digits => {
                // Without the point and the leading zeros.
                let start = buf.len();
                for &b in rendered(d, &mut text) {
                    if b != b'.' && !(buf.len() == start && b == b'0') {
                        buf.push(b);
                    }
                }
                if buf.len() == start {
                    buf.push(b'0');
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BookKind, BookUpdate};
    use std::str::FromStr;

    fn book(bids: &[(&str, &str)], asks: &[(&str, &str)]) -> LocalBook {
        let lv = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(p, q)| Level {
                    price: rust_decimal::Decimal::from_str(p).unwrap(),
                    quantity: rust_decimal::Decimal::from_str(q).unwrap(),
                })
                .collect()
        };
        let mut b = LocalBook::new();
        b.apply(
            &BookUpdate {
                kind: BookKind::Snapshot,
                bids: lv(bids),
                asks: lv(asks),
                first_update_id: None,
                last_update_id: None,
                prev_update_id: None,
                checksum: None,
                mark: None,
            },
            None,
        );
        b
    }

    /// Expected texts printed by Node.js (`String(Number(s))`), for values
    /// a double holds exactly in its shortest form (≤ 17 digits).
    #[test]
    fn ecmascript_numbers_match_node() {
        for (s, js) in [
            ("0.00000002", "2e-8"),
            ("0.0000005", "5e-7"),
            ("0.00000025", "2.5e-7"),
            ("0.00000012", "1.2e-7"),
            ("0.000001", "0.000001"),
            ("0.0000015", "0.0000015"),
            ("0.00000999", "0.00000999"),
            ("1000000000000000000000", "1e+21"),
            ("1500000000000000000000", "1.5e+21"),
            ("100", "100"),
            ("0.1", "0.1"),
            ("60400.50", "60400.5"),
            ("12.3450", "12.345"),
            ("0", "0"),
            ("0.000", "0"),
        ] {
            let mut out = Vec::new();
            ecmascript(&rust_decimal::Decimal::from_str(s).unwrap(), &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), js, "{s}");
        }
    }

    #[test]
    fn strings_are_built_as_declared() {
        let b = book(
            &[("3366.1", "7.0"), ("3366", "6")],
            &[("3366.8", "9"), ("3368", "8"), ("3372", "8")],
        );
        let mut buf = Vec::new();
        let interleaved_signed = ChecksumSpec {
            depth: 25,
            layout: ChecksumLayout::Interleaved,
            numbers: ChecksumNumbers::AsReceived,
            separator: ":".into(),
            negative_asks: false,
            signed: true,
            zero_means_absent: false,
            mode: ChecksumMode::Enforce,
        };
        interleaved_signed.compute(&b, None, &mut buf);
        assert_eq!(buf, "3366.1:7.0:3366.8:9:3366:6:3368:8:3372:8".as_bytes());
        let digits_unsigned = ChecksumSpec {
            depth: 10,
            layout: ChecksumLayout::AsksThenBids,
            numbers: ChecksumNumbers::Digits,
            separator: String::new(),
            negative_asks: false,
            signed: false,
            zero_means_absent: false,
            mode: ChecksumMode::Enforce,
        };
        digits_unsigned.compute(
            &book(&[("0.0022900", "1.50")], &[("0.0023000", "0.25")]),
            None,
            &mut buf,
        );
        assert_eq!(buf, "230002522900150".as_bytes());
        let bfx = ChecksumSpec {
            negative_asks: true,
            ..interleaved_signed
        };
        bfx.compute(
            &book(&[("60400", "0.5")], &[("60410", "1.2")]),
            None,
            &mut buf,
        );
        assert_eq!(buf, "60400:0.5:60410:-1.2".as_bytes());
        // JavaScript's number text: exponent form below 1e-6, no trailing zeros.
        let js = ChecksumSpec {
            numbers: ChecksumNumbers::Ecmascript,
            ..bfx.clone()
        };
        js.compute(
            &book(
                &[("60400.50", "0.00000002"), ("60400", "0.000001")],
                &[("60410", "0.00000125"), ("1000000000000000000000", "1.5")],
            ),
            None,
            &mut buf,
        );
        assert_eq!(
            buf,
            "60400.5:2e-8:60410:-0.00000125:60400:0.000001:1e+21:-1.5".as_bytes()
        );
        // At fixed scales, shortest-form numbers are padded first.
        digits_unsigned.compute(
            &book(&[("0.566", "18097.1547")], &[("0.5668", "4410.79769741")]),
            Some(Scales {
                price: 4,
                quantity: 8,
            }),
            &mut buf,
        );
        assert_eq!(buf, "566844107976974156601809715470000".as_bytes());
    }
}
