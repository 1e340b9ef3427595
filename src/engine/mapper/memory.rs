//! Level memory: per-connection values remembered from one book level row and
//! recalled for a later row with the same key (`[routes.level_memory]`).
//!
//! Some feeds identify a book level by an id and send its price only when
//! the level appears: later updates and deletes carry the id alone. The
//! memory stores the price (or any scalar) under a key built from the row,
//! and offers it to the level expressions as `$memo`. Changes made while a
//! frame maps become visible to later rows of the same frame at once, and are
//! kept only if the whole frame maps (frames map completely or not at all).

use std::collections::HashMap;

use crate::engine::expr::V;

/// Most remembered entries per connection. Past it, new keys are not
/// stored (a later recall then finds nothing and the frame fails, counted).
pub const MAX_MEMORY_ENTRIES: usize = 1_000_000;

/// A remembered scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum Memo {
    /// A number, as exact decimal text.
    Num(Box<str>),
    /// A string.
    Str(Box<str>),
    /// A boolean.
    Bool(bool),
}

impl Memo {
    /// From a value; arrays, objects and `null` are not remembered.
    pub fn from_v(v: &V<'_>) -> Option<Memo> {
        match v {
            V::Num(n) => Some(Memo::Num(n.as_ref().into())),
            V::Str(s) => Some(Memo::Str(s.as_ref().into())),
            V::Bool(b) => Some(Memo::Bool(*b)),
            _ => None,
        }
    }

    /// As an owned value.
    pub fn to_owned_v(&self) -> V<'static> {
        match self {
            Memo::Num(n) => V::Num(n.to_string().into()),
            Memo::Str(s) => V::Str(s.to_string().into()),
            Memo::Bool(b) => V::Bool(*b),
        }
    }
}

/// The memory of one connection.
#[derive(Debug, Default)]
pub struct Memory {
    committed: HashMap<Box<str>, Memo>,
    /// Changes of the frame being mapped: `None` forgets the key.
    pending: Vec<(Box<str>, Option<Memo>)>,
}

impl Memory {
    /// The value under `key`, seeing this frame's changes.
    pub fn get(&self, key: &str) -> Option<&Memo> {
        match self.pending.iter().rev().find(|(k, _)| k.as_ref() == key) {
            Some((_, v)) => v.as_ref(),
            None => self.committed.get(key),
        }
    }

    /// Remember `value` under `key` (from the next read on).
    pub fn put(&mut self, key: &str, value: Memo) {
        self.pending.push((key.into(), Some(value)));
    }

    /// Forget `key`.
    pub fn forget(&mut self, key: &str) {
        self.pending.push((key.into(), None));
    }

    /// Keep this frame's changes.
    pub fn commit(&mut self) {
        for (k, v) in self.pending.drain(..) {
            match v {
                Some(v) => {
                    if self.committed.len() < MAX_MEMORY_ENTRIES || self.committed.contains_key(&k)
                    {
                        self.committed.insert(k, v);
                    }
                }
                None => {
                    self.committed.remove(&k);
                }
            }
        }
    }

    /// Drop this frame's changes.
    pub fn rollback(&mut self) {
        self.pending.clear();
    }

    /// Forget everything (after a reconnect).
    pub fn clear(&mut self) {
        self.committed.clear();
        self.pending.clear();
    }

    /// Entries remembered.
    pub fn len(&self) -> usize {
        self.committed.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.committed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_seen_in_the_frame_and_kept_only_on_commit() {
        let mut m = Memory::default();
        m.put("XBTUSD:1", Memo::Num("100.5".into()));
        assert_eq!(m.get("XBTUSD:1"), Some(&Memo::Num("100.5".into())));
        m.rollback();
        assert_eq!(m.get("XBTUSD:1"), None);
        m.put("XBTUSD:1", Memo::Num("100.5".into()));
        m.commit();
        m.forget("XBTUSD:1");
        assert_eq!(m.get("XBTUSD:1"), None, "forgetting is seen at once");
        m.rollback();
        assert!(
            m.get("XBTUSD:1").is_some(),
            "a failed frame forgets nothing"
        );
        m.forget("XBTUSD:1");
        m.commit();
        assert!(m.is_empty());
    }
}
