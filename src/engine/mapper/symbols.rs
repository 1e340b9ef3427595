//! Venue instrument → [`Instrument`] (canonical symbol and subject token),
//! resolved once per instrument and cached per connection.

use std::collections::HashMap;
use std::sync::Arc;

use crate::domain::Instrument;
use crate::engine::expr::{Scope, V, Var};
use crate::engine::venue::Symbols;

/// The most instruments cached per connection; beyond it symbols are still
/// resolved, just not kept (a venue streaming unbounded instrument names
/// cannot grow memory without bound).
const MAX_CACHED: usize = 50_000;

/// A per-connection symbol cache.
#[derive(Debug, Default)]
pub struct SymbolCache {
    known: foldhash::HashMap<Box<str>, Arc<Instrument>>,
    pinned: HashMap<String, String>,
}

impl SymbolCache {
    /// A cache where `pinned` (instrument → symbol, from the relay config)
    /// overrides the venue's rules.
    pub fn new(pinned: HashMap<String, String>) -> Self {
        SymbolCache {
            known: Default::default(),
            pinned,
        }
    }

    /// Forget resolved symbols (after the venue's rules changed).
    pub fn clear(&mut self) {
        self.known.clear();
    }

    /// Replace the pinned symbols (the connection's instruments changed);
    /// cached symbols are resolved again.
    pub fn set_pinned(&mut self, pinned: HashMap<String, String>) {
        if pinned != self.pinned {
            self.pinned = pinned;
            self.known.clear();
        }
    }

    /// The instrument for a venue instrument name.
    pub fn resolve(
        &mut self,
        instrument: &str,
        symbols: &Symbols,
        market: &V<'_>,
        venue: &str,
    ) -> Arc<Instrument> {
        if let Some(i) = self.known.get(instrument) {
            return i.clone();
        }
        let symbol = self
            .pinned
            .get(instrument)
            .or_else(|| symbols.map.get(instrument))
            .cloned()
            .or_else(|| rule(instrument, symbols, market, venue))
            .unwrap_or_else(|| instrument.to_owned());
        let resolved = Arc::new(Instrument::new(instrument, symbol));
        if self.known.len() < MAX_CACHED {
            self.known.insert(instrument.into(), resolved.clone());
        }
        resolved
    }
}

fn rule(instrument: &str, symbols: &Symbols, market: &V<'_>, venue: &str) -> Option<String> {
    let expr = symbols.rule.as_ref()?;
    let mut scope = Scope::new();
    scope
        .set(Var::Market, market.clone())
        .set(Var::Venue, V::Str(venue.into()));
    scope.set(Var::Instrument, V::Str(instrument.into()));
    match expr.first(&V::Str(instrument.into()), &scope) {
        Ok(Some(V::Str(s))) if !s.is_empty() => Some(s.into_owned()),
        _ => None,
    }
}
