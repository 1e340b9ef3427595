//! A reference-data response → canonical instrument records, through the
//! request's `records` mapping (compiled with the venue file).

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::domain::{
    InstrumentKind, InstrumentRecord, OptionType, TimeUnit, Timestamp, TradingStatus,
};
use crate::engine::expr::{Scope, V, Var, parse_decimal};
use crate::engine::json::{Kind, OwnedDoc, Value};
use crate::engine::mapper::SymbolCache;
use crate::engine::venue::{ReferenceRequest, Venue};

use super::ReferenceError;

pub use crate::domain::RECORD_KEYS;

/// One page mapped: its records and the query of the next page, if any.
#[derive(Debug, Default)]
pub struct Page {
    /// The instruments on this page.
    pub records: Vec<InstrumentRecord>,
    /// Query parameters of the next page (`next_page`), if there is one.
    pub next: Option<BTreeMap<String, String>>,
}

/// Map one response body of `req`.
pub fn map_page(venue: &Venue, req: &ReferenceRequest, body: &str) -> Result<Page, ReferenceError> {
    let doc = OwnedDoc::parse(body.to_owned())
        .map_err(|e| ReferenceError::Shape(format!("response is not JSON: {e}")))?;
    let root = V::from_doc(doc.root());
    let mut scope = Scope::new();
    scope.set(Var::Venue, V::Str(venue.id.as_ref().into()));
    if let Some(m) = &req.market {
        scope.set(Var::Market, V::Str(m.as_str().into()));
    }
    let outputs = req
        .records
        .collect(&root, &scope)
        .map_err(|e| ReferenceError::Shape(format!("records: {e}")))?;
    let mut symbols = SymbolCache::new(Default::default());
    let market = scope.get(Var::Market).clone();
    let mut records = Vec::with_capacity(outputs.len());
    for (i, out) in outputs.iter().enumerate() {
        let json = out.to_json();
        let rec =
            OwnedDoc::parse(json).map_err(|e| ReferenceError::Shape(format!("record {i}: {e}")))?;
        let mut r = record(venue, req, rec.root()).map_err(|e| {
            ReferenceError::Shape(format!("record {i} ({}): {e}", clip(&out.to_json())))
        })?;
        if r.normalized.is_empty() {
            r.normalized = symbols
                .resolve(&r.symbol, &venue.symbols, &market, &venue.id)
                .symbol
                .clone();
        }
        records.push(r);
    }
    let next = match &req.next_page {
        None => None,
        Some(e) => {
            let v = e
                .first(&root, &scope)
                .map_err(|e| ReferenceError::Shape(format!("next_page: {e}")))?;
            next_query(v)?
        }
    };
    Ok(Page { records, next })
}

fn clip(s: &str) -> String {
    crate::domain::text::clip(s).to_string()
}

fn next_query(v: Option<V<'_>>) -> Result<Option<BTreeMap<String, String>>, ReferenceError> {
    let Some(v) = v else { return Ok(None) };
    if matches!(v, V::Null) {
        return Ok(None);
    }
    let doc = OwnedDoc::parse(v.to_json()).map_err(|e| ReferenceError::Shape(e.to_string()))?;
    let root = doc.root();
    if root.kind() != Kind::Object {
        return Err(ReferenceError::Shape(format!(
            "next_page must give an object of query parameters or null, not {}",
            clip(doc.text())
        )));
    }
    let mut q = BTreeMap::new();
    for (k, val) in root.members() {
        let text = match val.kind() {
            Kind::String => val.as_str().unwrap_or_default().into_owned(),
            Kind::Number => val.number_text().unwrap_or_default().to_owned(),
            _ => {
                return Err(ReferenceError::Shape(format!(
                    "next_page parameter `{k}` must be a string or number"
                )));
            }
        };
        q.insert(k.to_string(), text);
    }
    Ok((!q.is_empty()).then_some(q))
}

/// Read one record object.
fn record(venue: &Venue, req: &ReferenceRequest, o: Value<'_>) -> Result<InstrumentRecord, String> {
    if o.kind() != Kind::Object {
        return Err(format!(
            "a record must be an object, not {}",
            o.kind().jq_name()
        ));
    }
    for (k, _) in o.members() {
        if !RECORD_KEYS.contains(&k.as_ref()) {
            return Err(format!(
                "unknown key `{k}`; expected one of: {}",
                RECORD_KEYS.join(", ")
            ));
        }
    }
    let kind_text = required(&o, "kind")?;
    let kind = InstrumentKind::parse(&kind_text)
        .ok_or_else(|| format!("kind `{kind_text}` is not spot, perpetual, future or option"))?;
    let status = match text(&o, "status")? {
        None => TradingStatus::Trading,
        Some(s) => TradingStatus::parse(&s)
            .ok_or_else(|| format!("status `{s}` is not trading, halted or delisted"))?,
    };
    let option_type = text(&o, "option_type")?
        .map(|s| {
            OptionType::parse(&s).ok_or_else(|| format!("option_type `{s}` is not call or put"))
        })
        .transpose()?;
    Ok(InstrumentRecord {
        venue: venue.id.to_string(),
        symbol: required(&o, "symbol")?,
        normalized: text(&o, "normalized")?.unwrap_or_default(),
        market: req.market.clone(),
        kind,
        base: required(&o, "base")?,
        quote: required(&o, "quote")?,
        settle: text(&o, "settle")?,
        tick_size: decimal(&o, "tick_size")?,
        lot_size: decimal(&o, "lot_size")?,
        contract_size: decimal(&o, "contract_size")?,
        multiplier: decimal(&o, "multiplier")?,
        expiry: time(&o, "expiry")?,
        strike: decimal(&o, "strike")?,
        option_type,
        status,
    })
}

/// A string member; `null`, absent or `""` is `None`.
fn text(o: &Value<'_>, key: &str) -> Result<Option<String>, String> {
    let Some(v) = o.get(key) else { return Ok(None) };
    match v.kind() {
        Kind::Null => Ok(None),
        Kind::String => {
            let s = v.as_str().unwrap_or_default();
            Ok((!s.is_empty()).then(|| s.into_owned()))
        }
        Kind::Number => Ok(v.number_text().map(str::to_owned)),
        k => Err(format!("`{key}` must be a string, not {}", k.jq_name())),
    }
}

fn required(o: &Value<'_>, key: &str) -> Result<String, String> {
    text(o, key)?.ok_or_else(|| format!("`{key}` is required"))
}

/// A decimal from a number or a numeric string.
fn decimal(o: &Value<'_>, key: &str) -> Result<Option<Decimal>, String> {
    let Some(v) = o.get(key) else { return Ok(None) };
    let t = match v.kind() {
        Kind::Null => return Ok(None),
        Kind::Number => v.number_text().unwrap_or_default().to_owned(),
        Kind::String => {
            let s = v.as_str().unwrap_or_default();
            if s.is_empty() {
                return Ok(None);
            }
            s.into_owned()
        }
        k => {
            return Err(format!(
                "`{key}` must be a number or numeric string, not {}",
                k.jq_name()
            ));
        }
    };
    parse_decimal(&t)
        .map(|d| Some(d.normalize()))
        .ok_or_else(|| format!("`{key}`: `{t}` is not a decimal number"))
}

/// A time: epoch number (unit by magnitude) or an RFC 3339 string.
fn time(o: &Value<'_>, key: &str) -> Result<Option<Timestamp>, String> {
    let Some(t) = text(o, key)? else {
        return Ok(None);
    };
    Timestamp::from_number_text(&t, TimeUnit::Auto)
        .or_else(|| Timestamp::from_rfc3339(&t))
        .map(Some)
        .ok_or_else(|| format!("`{key}`: `{t}` is not an epoch number or an RFC 3339 time"))
}
