//! Sequence rules: how an update's ids link it to the previous one. A
//! venue file declares its rule (`[book] sequence`); the relay checks every
//! book update with it, and names it in each `l2_snapshot` so that a consumer
//! can check the deltas that follow the same way.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{BookKind, BookUpdate};

/// How consecutive book messages of one instrument are linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SequenceRule {
    /// `first_update_id == previous last_update_id + 1` (Binance spot `U`,
    /// KuCoin `sequenceStart`, Gate `U`).
    Contiguous,
    /// `prev_update_id == previous last_update_id` (Binance futures `pu`,
    /// OKX `prevSeqId`, Deribit `prev_change_id`, HTX `prevSeqNum`).
    PrevMatches,
    /// `last_update_id == previous last_update_id + 1` (one id per message).
    Step,
    /// `last_update_id > previous last_update_id`.
    Increasing,
}

/// The verdict on one update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Follows the previous update (or there is nothing to check).
    Ok,
    /// Older than what was already applied: skip it.
    Stale,
    /// Something was missed.
    Gap(String),
}

impl SequenceRule {
    /// The wire name (as in venue files and `l2_snapshot` events).
    pub const fn as_str(self) -> &'static str {
        match self {
            SequenceRule::Contiguous => "contiguous",
            SequenceRule::PrevMatches => "prev_matches",
            SequenceRule::Step => "step",
            SequenceRule::Increasing => "increasing",
        }
    }

    /// The rule with wire name `name`.
    pub fn from_name(name: &str) -> Option<SequenceRule> {
        [
            SequenceRule::Contiguous,
            SequenceRule::PrevMatches,
            SequenceRule::Step,
            SequenceRule::Increasing,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }

    /// Check `u` against the last applied update id `prev` (None: nothing
    /// applied yet). Snapshots always pass: they reset the sequence.
    pub fn check(self, prev: Option<i64>, u: &BookUpdate) -> SequenceCheck {
        if u.kind == BookKind::Snapshot {
            return SequenceCheck::Ok;
        }
        let Some(prev) = prev else {
            return SequenceCheck::Ok;
        };
        let last = u.last_update_id;
        if let Some(last) = last
            && last < prev
            && self != SequenceRule::PrevMatches
        {
            return SequenceCheck::Stale;
        }
        let ok = match self {
            SequenceRule::Contiguous => match (u.first_update_id, last) {
                (Some(first), _) => first == prev + 1 || (last == Some(prev) && first <= prev),
                (None, _) => true,
            },
            SequenceRule::PrevMatches => u.prev_update_id.is_none_or(|p| p == prev),
            SequenceRule::Step => last.is_none_or(|l| l == prev + 1),
            SequenceRule::Increasing => last.is_none_or(|l| l > prev),
        };
        if ok {
            SequenceCheck::Ok
        } else {
            SequenceCheck::Gap(format!(
                "sequence gap: previous update id {prev}, got first {:?} last {:?} prev {:?} ({self:?})",
                u.first_update_id, u.last_update_id, u.prev_update_id
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(first: Option<i64>, last: Option<i64>, prev: Option<i64>) -> BookUpdate {
        BookUpdate {
            kind: BookKind::Delta,
            bids: vec![],
            asks: vec![],
            first_update_id: first,
            last_update_id: last,
            prev_update_id: prev,
            checksum: None,
            mark: None,
        }
    }

    #[test]
    fn rules() {
        use SequenceCheck::*;
        assert_eq!(
            SequenceRule::Contiguous.check(Some(10), &d(Some(11), Some(15), None)),
            Ok
        );
        assert!(matches!(
            SequenceRule::Contiguous.check(Some(10), &d(Some(12), Some(15), None)),
            Gap(_)
        ));
        assert_eq!(
            SequenceRule::Contiguous.check(Some(10), &d(Some(5), Some(9), None)),
            Stale
        );
        assert_eq!(
            SequenceRule::PrevMatches.check(Some(10), &d(None, Some(20), Some(10))),
            Ok
        );
        assert!(matches!(
            SequenceRule::PrevMatches.check(Some(10), &d(None, Some(20), Some(11))),
            Gap(_)
        ));
        // OKX keep-alive: prevSeqId == seqId == previous seqId.
        assert_eq!(
            SequenceRule::PrevMatches.check(Some(10), &d(None, Some(10), Some(10))),
            Ok
        );
        assert_eq!(
            SequenceRule::Step.check(Some(10), &d(None, Some(11), None)),
            Ok
        );
        assert!(matches!(
            SequenceRule::Step.check(Some(10), &d(None, Some(12), None)),
            Gap(_)
        ));
        assert_eq!(
            SequenceRule::Contiguous.check(None, &d(Some(99), Some(100), None)),
            Ok
        );
    }
}
