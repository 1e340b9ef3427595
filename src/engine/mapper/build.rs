//! Building one canonical event from one routed item.

use std::cell::RefCell;
use std::sync::Arc;

use crate::domain::{
    BookUpdate, DataType, Event, EventId, FundingRate, Level, Liquidation, Payload, Ticker,
    Timestamp, Trade,
};
use crate::engine::expr::{Expr, Scope, V};
use crate::engine::venue::{Field, Route};

use super::MapError;
use super::convert;
use super::memory::{Memo, Memory};

/// Everything an item needs besides the route and the item itself.
pub(super) struct ItemEnv<'s, 'a> {
    pub scope: &'s Scope<'a>,
    pub venue: &'s Arc<str>,
    pub receive_time: Timestamp,
    pub memory: &'s RefCell<Memory>,
}

fn field_name(route: &Route, f: Field) -> &'static str {
    crate::engine::venue::fields_for(route.data_type)
        .iter()
        .find(|s| s.field == f)
        .map_or("?", |s| s.name)
}

fn err(route: &Route, f: Field, message: impl Into<String>) -> MapError {
    let message = message.into();
    MapError::Field {
        route: route.name.clone(),
        field: field_name(route, f),
        // The message may quote a value of the frame: keep it short.
        message: match crate::domain::text::clip(&message) {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(short) => short,
        },
    }
}

/// Evaluate a field's first output (`None` when undeclared or no output).
fn eval<'a>(
    route: &'a Route,
    f: Field,
    item: &V<'a>,
    scope: &Scope<'a>,
) -> Result<Option<V<'a>>, MapError> {
    match route.field(f) {
        None => Ok(None),
        Some(e) => e
            .first(item, scope)
            .map_err(|e| err(route, f, e.to_string())),
    }
}

fn conv<'a, T>(
    route: &'a Route,
    f: Field,
    item: &V<'a>,
    scope: &Scope<'a>,
    c: impl FnOnce(&V<'a>) -> Result<Option<T>, String>,
) -> Result<Option<T>, MapError> {
    match eval(route, f, item, scope)? {
        None => Ok(None),
        Some(v) => c(&v).map_err(|m| err(route, f, m)),
    }
}

fn required<T>(route: &Route, f: Field, v: Option<T>) -> Result<T, MapError> {
    v.ok_or_else(|| err(route, f, "is required but missing (null)"))
}

fn dec<'a>(
    route: &'a Route,
    f: Field,
    item: &V<'a>,
    scope: &Scope<'a>,
) -> Result<Option<rust_decimal::Decimal>, MapError> {
    conv(route, f, item, scope, convert::decimal)
}

/// The instrument name of an item (borrowed from the frame when possible).
pub(super) fn instrument<'a>(
    route: &'a Route,
    item: &V<'a>,
    scope: &Scope<'a>,
) -> Result<std::borrow::Cow<'a, str>, MapError> {
    match eval(route, Field::Instrument, item, scope)? {
        Some(V::Str(s)) => Ok(s),
        Some(V::Num(n)) => Ok(n),
        Some(V::Null) | None => Err(err(
            route,
            Field::Instrument,
            "is required but missing (null)",
        )),
        Some(other) => Err(err(
            route,
            Field::Instrument,
            format!("expected a string, got {}", other.kind().jq_name()),
        )),
    }
}

/// Text of a field, moving owned strings instead of copying them.
fn owned_text<'a>(
    route: &'a Route,
    f: Field,
    item: &V<'a>,
    s: &Scope<'a>,
) -> Result<Option<String>, MapError> {
    match eval(route, f, item, s)? {
        Some(V::Str(t)) => Ok(Some(t.into_owned())),
        Some(V::Num(n)) => Ok(Some(n.into_owned())),
        Some(other) => convert::text(&other).map_err(|m| err(route, f, m)),
        None => Ok(None),
    }
}

/// The explicit canonical symbol of an item, if the route maps one.
pub(super) fn symbol<'a>(
    route: &'a Route,
    item: &V<'a>,
    scope: &Scope<'a>,
) -> Result<Option<String>, MapError> {
    owned_text(route, Field::Symbol, item, scope)
}

/// Build the event for `item` (instrument already resolved), and whether
/// its id is a book event's content hash (to be chained, see
/// [`super::chain`]).
pub(super) fn event<'a>(
    route: &'a Route,
    item: &V<'a>,
    instrument: Arc<crate::domain::Instrument>,
    env: &ItemEnv<'_, 'a>,
) -> Result<(Event, bool), MapError> {
    let s = env.scope;
    let exchange_time = conv(route, Field::ExchangeTime, item, s, |v| {
        convert::time(v, route.time_unit)
    })?;
    let payload = payload(route, item, s, env.memory)?;
    let (venue, t, name) = (&**env.venue, route.data_type, &*instrument.venue_instrument);
    let (id, content_keyed) = match owned_text(route, Field::EventKey, item, s)? {
        Some(k) => (EventId::new(venue, t, name, &k), false),
        None => (
            default_id(venue, t, name, &payload, exchange_time),
            matches!(
                &payload,
                Payload::Book(BookUpdate {
                    last_update_id: None,
                    ..
                })
            ),
        ),
    };
    Ok((
        Event {
            venue: env.venue.clone(),
            instrument,
            exchange_time,
            receive_time: env.receive_time,
            id,
            payload,
        },
        content_keyed,
    ))
}

/// The id of an event without a mapped `event_key`: the trade id, `s`/`d`
/// plus a book update's last id, else a hash of the content.
fn default_id(
    venue: &str,
    t: DataType,
    instrument: &str,
    payload: &Payload,
    exchange_time: Option<Timestamp>,
) -> EventId {
    match payload {
        Payload::Trade(Trade {
            trade_id: Some(id), ..
        }) => EventId::new(venue, t, instrument, id),
        Payload::Book(BookUpdate {
            kind,
            last_update_id: Some(u),
            ..
        }) => EventId::with_key(venue, t, instrument, 21, |s| {
            s.push(if *kind == crate::domain::BookKind::Snapshot {
                's'
            } else {
                'd'
            });
            s.push_str(itoa::Buffer::new().format(*u));
        }),
        other => EventId::content_keyed(venue, t, instrument, other, exchange_time),
    }
}

fn payload<'a>(
    r: &'a Route,
    item: &V<'a>,
    s: &Scope<'a>,
    mem: &RefCell<Memory>,
) -> Result<Payload, MapError> {
    Ok(match r.data_type {
        DataType::Trade => Payload::Trade(Trade {
            price: required(r, Field::Price, dec(r, Field::Price, item, s)?)?,
            quantity: required(r, Field::Quantity, dec(r, Field::Quantity, item, s)?)?,
            side: required(
                r,
                Field::Side,
                conv(r, Field::Side, item, s, |v| convert::side(v).map(Some))?,
            )?,
            trade_id: owned_text(r, Field::TradeId, item, s)?,
        }),
        DataType::Ticker => Payload::Ticker(Box::new(Ticker {
            bid_price: dec(r, Field::BidPrice, item, s)?,
            bid_quantity: dec(r, Field::BidQuantity, item, s)?,
            ask_price: dec(r, Field::AskPrice, item, s)?,
            ask_quantity: dec(r, Field::AskQuantity, item, s)?,
            last_price: dec(r, Field::LastPrice, item, s)?,
            last_quantity: dec(r, Field::LastQuantity, item, s)?,
            open_24h: dec(r, Field::Open24h, item, s)?,
            high_24h: dec(r, Field::High24h, item, s)?,
            low_24h: dec(r, Field::Low24h, item, s)?,
            volume_24h: dec(r, Field::Volume24h, item, s)?,
            quote_volume_24h: dec(r, Field::QuoteVolume24h, item, s)?,
            mark_price: dec(r, Field::MarkPrice, item, s)?,
            index_price: dec(r, Field::IndexPrice, item, s)?,
            open_interest: dec(r, Field::OpenInterest, item, s)?,
        })),
        DataType::L2Orderbook => Payload::Book(BookUpdate {
            kind: required(
                r,
                Field::Kind,
                conv(r, Field::Kind, item, s, |v| convert::book_kind(v).map(Some))?,
            )?,
            bids: levels(r, Field::Bids, item, s, mem)?,
            asks: levels(r, Field::Asks, item, s, mem)?,
            first_update_id: conv(r, Field::FirstUpdateId, item, s, convert::integer)?,
            last_update_id: conv(r, Field::LastUpdateId, item, s, convert::integer)?,
            prev_update_id: conv(r, Field::PrevUpdateId, item, s, convert::integer)?,
            checksum: conv(r, Field::Checksum, item, s, convert::integer)?,
            mark: None,
        }),
        DataType::FundingRate => Payload::Funding(FundingRate {
            rate: required(r, Field::Rate, dec(r, Field::Rate, item, s)?)?,
            next_funding_time: conv(r, Field::NextFundingTime, item, s, |v| {
                convert::time(v, r.time_unit)
            })?,
            predicted_rate: dec(r, Field::PredictedRate, item, s)?,
            mark_price: dec(r, Field::MarkPrice, item, s)?,
            index_price: dec(r, Field::IndexPrice, item, s)?,
        }),
        DataType::Liquidation => Payload::Liquidation(Liquidation {
            side: required(
                r,
                Field::Side,
                conv(r, Field::Side, item, s, |v| convert::side(v).map(Some))?,
            )?,
            price: required(r, Field::Price, dec(r, Field::Price, item, s)?)?,
            quantity: required(r, Field::Quantity, dec(r, Field::Quantity, item, s)?)?,
        }),
        DataType::Status | DataType::L2Top | DataType::L2Snapshot => {
            return Err(MapError::Route {
                route: r.name.clone(),
                message: format!("{} is not a route type", r.data_type),
            });
        }
    })
}

/// Run a levels generator and read each level's price and quantity.
fn levels<'a>(
    r: &'a Route,
    f: Field,
    item: &V<'a>,
    s: &Scope<'a>,
    mem: &RefCell<Memory>,
) -> Result<Vec<Level>, MapError> {
    let Some(gen_expr) = r.field(f) else {
        return Ok(Vec::new());
    };
    let price: &Expr = r
        .field(Field::LevelPrice)
        .expect("level_price has a default");
    let qty: &Expr = r
        .field(Field::LevelQuantity)
        .expect("level_quantity has a default");
    let mut out = Vec::new();
    let mut failure: Option<MapError> = None;
    let result = gen_expr.run(item, s, &mut |level| {
        let recalled;
        let (s, forget) = match &r.level_memory {
            None => (s, None),
            Some(m) => match recall(r, m, &level, s, mem) {
                Ok((scope, forget)) => {
                    recalled = scope;
                    (&recalled, forget)
                }
                Err(e) => {
                    failure = Some(e);
                    return Err(crate::engine::expr::ExprError::new("level failed"));
                }
            },
        };
        let read = |e: &Expr, which: Field| -> Result<rust_decimal::Decimal, MapError> {
            let v = e
                .first(&level, s)
                .map_err(|e| err(r, which, e.to_string()))?;
            let d = v
                .as_ref()
                .map(convert::decimal)
                .transpose()
                .map_err(|m| err(r, which, m))?;
            d.flatten()
                .ok_or_else(|| err(r, which, "level value is missing (null)"))
        };
        match (
            read(price, Field::LevelPrice),
            read(qty, Field::LevelQuantity),
        ) {
            (Ok(price), Ok(quantity)) => {
                out.push(Level { price, quantity });
                if let Some(key) = forget {
                    mem.borrow_mut().forget(&key);
                }
                Ok(())
            }
            (Err(e), _) | (_, Err(e)) => {
                failure = Some(e);
                Err(crate::engine::expr::ExprError::new("level failed"))
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    result.map_err(|e| err(r, f, e.to_string()))?;
    Ok(out)
}

/// Apply a route's level memory to one level row: store its value, and
/// return the scope with `$memo` set plus the key to forget after the row.
fn recall<'a>(
    r: &Route,
    m: &crate::engine::venue::LevelMemory,
    level: &V<'a>,
    s: &Scope<'a>,
    mem: &RefCell<Memory>,
) -> Result<(Scope<'a>, Option<String>), MapError> {
    let fail = |what: &str, e: String| MapError::Route {
        route: r.name.clone(),
        message: format!("level_memory.{what}: {e}"),
    };
    let key = match m
        .key
        .first(level, s)
        .map_err(|e| fail("key", e.to_string()))?
    {
        Some(V::Null) | None => return Err(fail("key", "no key for the level row".into())),
        Some(k) => k.to_text().into_owned(),
    };
    if let Some(store) = &m.store
        && let Some(v) = store
            .first(level, s)
            .map_err(|e| fail("store", e.to_string()))?
        && let Some(memo) = Memo::from_v(&v)
    {
        mem.borrow_mut().put(&key, memo);
    }
    let value = mem.borrow().get(&key).map_or(V::Null, Memo::to_owned_v);
    let mut scope = s.clone();
    scope.set(crate::engine::expr::Var::Memo, value);
    let forget = match &m.forget {
        Some(f) if f.test(level, &scope) => Some(key),
        _ => None,
    };
    Ok((scope, forget))
}
