//! The book the relay maintains per instrument (for checksums and top-N
//! snapshots).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::domain::{BookKind, BookUpdate, Level};

/// Bids and asks keyed by price. Keys and values keep the venue's text
/// (scale), which checksums are computed from.
#[derive(Debug, Clone, Default)]
pub struct LocalBook {
    bids: BTreeMap<Reverse<Decimal>, Level>,
    asks: BTreeMap<Decimal, Level>,
}

impl LocalBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply a snapshot (replace) or delta (set / remove levels), then keep
    /// at most `depth` levels per side when given.
    pub fn apply(&mut self, u: &BookUpdate, depth: Option<usize>) {
        if u.kind == BookKind::Snapshot {
            self.bids.clear();
            self.asks.clear();
        }
        // One search per level: `insert` replaces the value (the level with
        // the venue's text) of an equal price.
        for l in &u.bids {
            if l.quantity.is_zero() {
                self.bids.remove(&Reverse(l.price));
            } else {
                self.bids.insert(Reverse(l.price), *l);
            }
        }
        for l in &u.asks {
            if l.quantity.is_zero() {
                self.asks.remove(&l.price);
            } else {
                self.asks.insert(l.price, *l);
            }
        }
        if let Some(d) = depth {
            while self.bids.len() > d {
                self.bids.pop_last();
            }
            while self.asks.len() > d {
                self.asks.pop_last();
            }
        }
    }

    /// Best bids first.
    pub fn bids(&self) -> impl Iterator<Item = &Level> {
        self.bids.values()
    }

    /// Best asks first.
    pub fn asks(&self) -> impl Iterator<Item = &Level> {
        self.asks.values()
    }

    /// Levels per side.
    pub fn len(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }

    /// Whether both sides are empty.
    pub fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.asks.is_empty()
    }

    /// The top `n` levels of each side as a snapshot update.
    pub fn top(&self, n: usize) -> (Vec<Level>, Vec<Level>) {
        (
            self.bids().take(n).copied().collect(),
            self.asks().take(n).copied().collect(),
        )
    }

    /// Whether the book is crossed (best bid ≥ best ask): a sign of a
    /// missed update.
    pub fn crossed(&self) -> bool {
        match (self.bids().next(), self.asks().next()) {
            (Some(b), Some(a)) => b.price >= a.price,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn l(p: &str, q: &str) -> Level {
        Level {
            price: Decimal::from_str(p).unwrap(),
            quantity: Decimal::from_str(q).unwrap(),
        }
    }

    fn upd(kind: BookKind, bids: Vec<Level>, asks: Vec<Level>) -> BookUpdate {
        BookUpdate {
            kind,
            bids,
            asks,
            first_update_id: None,
            last_update_id: None,
            prev_update_id: None,
            checksum: None,
            mark: None,
        }
    }

    #[test]
    fn snapshot_then_deltas_with_deletions() {
        let mut b = LocalBook::new();
        b.apply(
            &upd(
                BookKind::Snapshot,
                vec![l("10", "1"), l("9", "2")],
                vec![l("11", "1"), l("12", "3")],
            ),
            None,
        );
        b.apply(
            &upd(
                BookKind::Delta,
                vec![l("10", "0"), l("9.5", "4")],
                vec![l("11", "0.5")],
            ),
            None,
        );
        let bids: Vec<_> = b.bids().map(|l| l.price.to_string()).collect();
        assert_eq!(bids, ["9.5", "9"]);
        assert_eq!(b.asks().next().unwrap().quantity.to_string(), "0.5");
        assert!(!b.crossed());
        b.apply(
            &upd(BookKind::Delta, vec![], vec![l("12", "0"), l("13", "1")]),
            Some(1),
        );
        assert_eq!(b.len(), (1, 1));
    }
}
