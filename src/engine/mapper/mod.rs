//! The mapper: one frame in, canonical events (or a control verdict) out.
//!
//! One [`Mapper`] per connection holds the state that outlives a frame: the
//! reusable JSON tape and inflate buffer, the context captured from control
//! frames (e.g. channel ids from subscribe acks), and the symbol cache.
//! The venue is passed in per call, so a reloaded venue applies from the
//! next frame on.

mod build;
mod chain;
mod convert;
mod decode;
mod memory;
mod symbols;

use crate::engine::expr::budget;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

pub use decode::RawFrame;
pub use memory::{MAX_MEMORY_ENTRIES, Memory};
pub use symbols::SymbolCache;

use crate::domain::{Event, Timestamp};
use crate::engine::expr::{EvalStats, ExprError, Scope, V, Var, eval_stats, interpreter_only};
use crate::engine::json::{OwnedDoc, ParseError, Parser};
use crate::engine::venue::{ControlKind, ControlRule, Venue, holds};

/// Most context entries per connection (one per subscribed channel in
/// practice).
const MAX_CONTEXT_ENTRIES: usize = 100_000;

/// Why a frame could not be mapped. The frame is skipped and counted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MapError {
    /// A binary frame did not decompress.
    #[error("cannot decompress binary frame: {0}")]
    Decode(String),
    /// The frame is not UTF-8 text.
    #[error("frame is not valid UTF-8")]
    Utf8,
    /// The (decompressed) frame is larger than allowed.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size seen.
        size: usize,
        /// The venue's `max_frame_bytes`.
        limit: usize,
    },
    /// The frame looks like JSON but is not.
    #[error("{0}")]
    Json(#[from] ParseError),
    /// A field of a route failed.
    #[error("route `{route}`, field `{field}`: {message}")]
    Field {
        /// Route name.
        route: String,
        /// Field name.
        field: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A route failed outside a field (its `each` generator).
    #[error("route `{route}`: {message}")]
    Route {
        /// Route name.
        route: String,
        /// What went wrong.
        message: String,
    },
    /// A control rule's reply, message or capture failed.
    #[error("control rule `{kind}`: {message}")]
    Control {
        /// The rule's kind.
        kind: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// The connection's message sequence (`frames.sequence`) skipped: messages
/// were lost on this connection. The frame that shows it is still mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceGap {
    /// The number expected.
    pub expected: i64,
    /// The number received.
    pub got: i64,
}

impl std::fmt::Display for SequenceGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connection sequence gap: expected {}, got {}",
            self.expected, self.got
        )
    }
}

/// What a frame turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A control frame.
    Control(ControlInfo),
    /// A data frame that produced `events` events (possibly zero).
    Data {
        /// Number of events appended.
        events: usize,
    },
    /// Neither a control rule nor a route matched.
    Unrouted,
}

/// Details of a control frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlInfo {
    /// The kind of control frame.
    pub kind: ControlKind,
    /// A message to send back to the venue (text), if the rule has a reply.
    pub reply: Option<String>,
    /// The rule's description of the frame (e.g. an error text).
    pub message: Option<String>,
}

/// Per-connection mapping state.
#[derive(Debug)]
pub struct Mapper {
    venue_id: Arc<str>,
    market: Option<String>,
    parser: Parser,
    inflate: Vec<u8>,
    context: HashMap<String, OwnedDoc>,
    symbols: SymbolCache,
    conn_seq: Option<i64>,
    gap: Option<SequenceGap>,
    memory: Memory,
    chains: chain::Chains,
    /// Whether expressions may run on the fast path (see
    /// [`Mapper::set_fast_path`]).
    fast_path: bool,
    /// Evaluations since the last [`Mapper::take_eval_stats`].
    stats: EvalStats,
}

impl Mapper {
    /// A mapper for a connection of `venue_id` on `market`; `pinned` maps
    /// instruments to symbols given in the relay config.
    pub fn new(
        venue_id: Arc<str>,
        market: Option<String>,
        pinned: HashMap<String, String>,
    ) -> Self {
        Mapper {
            venue_id,
            market,
            parser: Parser::new(),
            inflate: Vec::new(),
            context: HashMap::new(),
            symbols: SymbolCache::new(pinned),
            conn_seq: None,
            gap: None,
            memory: Memory::default(),
            chains: chain::Chains::default(),
            fast_path: true,
            stats: EvalStats::default(),
        }
    }

    /// With `false`, every expression this mapper evaluates runs in the jq
    /// interpreter, as if none had a fast form. For tests and tools that
    /// check both evaluators give the same events; the relay never
    /// switches it off.
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast_path = on;
    }

    /// The expression evaluations of the frames (and documents) mapped
    /// since the last call, by the path that answered them; resets them.
    /// The connection adds the fallbacks to
    /// `mdrelay_interpreter_fallbacks_total`.
    pub fn take_eval_stats(&mut self) -> EvalStats {
        std::mem::take(&mut self.stats)
    }

    /// Run `f` with this mapper's evaluator mode, adding the evaluations it
    /// makes to the mapper's counts.
    fn counted<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let _mode = (!self.fast_path).then(interpreter_only);
        let before = eval_stats();
        let r = f(self);
        self.stats.add(&eval_stats().since(&before));
        r
    }

    /// Call when the venue definition was replaced: cached symbols may
    /// differ under the new rules.
    pub fn venue_changed(&mut self) {
        self.symbols.clear();
    }

    /// Call when the connection's instruments changed: `pinned` maps them
    /// to symbols given in the relay config.
    pub fn set_pinned(&mut self, pinned: HashMap<String, String>) {
        self.symbols.set_pinned(pinned);
    }

    /// The instrument (symbol, subject token) for a venue instrument name.
    pub fn resolve_symbol(
        &mut self,
        venue: &Venue,
        instrument: &str,
    ) -> Arc<crate::domain::Instrument> {
        self.counted(|m| {
            let market = match m.market.as_deref() {
                Some(m) => V::Str(m.into()),
                None => V::Null,
            };
            m.symbols
                .resolve(instrument, &venue.symbols, &market, &m.venue_id)
        })
    }

    /// Map a whole document (e.g. a REST snapshot body) with `route`, with
    /// `$instrument` set. Returns the number of events appended.
    pub fn map_document(
        &mut self,
        venue: &Venue,
        route: &crate::engine::venue::Route,
        text: &str,
        instrument: &str,
        receive_time: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<usize, MapError> {
        self.counted(|m| m.map_document_inner(venue, route, text, instrument, receive_time, out))
    }

    fn map_document_inner(
        &mut self,
        venue: &Venue,
        route: &crate::engine::venue::Route,
        text: &str,
        instrument: &str,
        receive_time: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<usize, MapError> {
        let _budget = budget::frame(budget::Limits::for_frame(text.len()));
        let Mapper {
            venue_id,
            market,
            parser,
            symbols,
            memory,
            chains,
            ..
        } = self;
        let root = V::from_doc(parser.parse(text)?);
        let mut scope = Scope::new();
        scope
            .set(Var::Frame, root.clone())
            .set(Var::Venue, V::Str(venue_id.as_ref().into()))
            .set(Var::Instrument, V::Str(instrument.into()));
        if let Some(m) = market.as_deref() {
            scope.set(Var::Market, V::Str(m.into()));
        }
        let cell = RefCell::new(std::mem::take(memory));
        let env = build::ItemEnv {
            scope: &scope,
            venue: venue_id,
            receive_time,
            memory: &cell,
        };
        let event = build::instrument(route, &root, &scope).and_then(|name| {
            let inst = symbols.resolve(&name, &venue.symbols, scope.get(Var::Market), venue_id);
            build::event(route, &root, inst, &env)
        });
        *memory = settle(cell, event.is_ok());
        let (mut event, chained) = event?;
        if chained {
            chains.chain(&mut event);
        }
        out.push(event);
        Ok(1)
    }

    /// The connection sequence gap the last mapped frame revealed, if any
    /// (see `frames.sequence`); the frame itself was mapped as usual.
    pub fn take_gap(&mut self) -> Option<SequenceGap> {
        self.gap.take()
    }

    /// Map one frame, appending events to `out`. On error nothing is appended
    /// (a frame maps completely or not at all).
    pub fn map(
        &mut self,
        venue: &Venue,
        frame: RawFrame<'_>,
        receive_time: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Outcome, MapError> {
        self.counted(|m| m.map_inner(venue, frame, receive_time, out))
    }

    fn map_inner(
        &mut self,
        venue: &Venue,
        frame: RawFrame<'_>,
        receive_time: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Outcome, MapError> {
        let limit = venue.connection.max_frame_bytes;
        // Everything this frame's mapping evaluates shares one budget.
        let _budget = budget::frame(budget::Limits::for_frame(frame.len()));
        if frame.len() > limit {
            return Err(MapError::TooLarge {
                size: frame.len(),
                limit,
            });
        }
        let Mapper {
            venue_id,
            market,
            parser,
            inflate,
            context,
            symbols,
            conn_seq,
            gap,
            memory,
            chains,
            ..
        } = self;
        let text = decode::decode(frame, venue.frames.compression, limit, inflate)?;
        let root = match parser.parse(text) {
            Ok(doc) => V::from_doc(doc),
            Err(e) if looks_like_json(text) => return Err(MapError::Json(e)),
            Err(_) => V::Str(text.into()),
        };
        let mut scope = Scope::new();
        scope.set(Var::Frame, root.clone());
        scope.set(Var::Venue, V::Str(venue_id.as_ref().into()));
        if let Some(m) = market.as_deref() {
            scope.set(Var::Market, V::Str(m.into()));
        }
        *gap = None;
        if let Some(seq_expr) = &venue.frames.sequence
            && let Ok(Some(V::Num(n))) = seq_expr.first(&root, &scope)
            && let Ok(n) = n.parse::<i64>()
        {
            // A repeated or older number is not a loss: keep the highest.
            let prev = *conn_seq;
            if prev.is_none_or(|p| n > p) {
                *conn_seq = Some(n);
            }
            *gap = prev.filter(|p| n > p + 1).map(|p| SequenceGap {
                expected: p + 1,
                got: n,
            });
        }
        if let Some(key_expr) = &venue.frames.context_key
            && let Ok(Some(k)) = key_expr.first(&root, &scope)
            && let Some(entry) = context.get(k.to_text().as_ref())
        {
            scope.set(Var::Ctx, V::from_doc(entry.root()));
        }

        let route_key = match &venue.frames.route_key {
            Some(k) => match k.first(&root, &scope) {
                Ok(Some(V::Str(s))) => Some(s),
                Ok(Some(V::Num(n))) => Some(n),
                _ => None,
            },
            None => None,
        };
        for &i in venue.control_index.candidates(route_key.as_deref()) {
            let rule = &venue.control[i];
            if holds(&rule.when, &root, &scope) {
                let (info, capture) = control(rule, &root, &scope)?;
                drop(scope);
                if let Some((k, v)) = capture
                    && (context.len() < MAX_CONTEXT_ENTRIES || context.contains_key(&k))
                {
                    context.insert(k, v);
                }
                return Ok(Outcome::Control(info));
            }
        }

        let start = out.len();
        let mut matched = false;
        // Indices (in `out`) of book events keyed by their content.
        let mut to_chain: Vec<usize> = Vec::new();
        let cell = RefCell::new(std::mem::take(memory));
        let env = build::ItemEnv {
            scope: &scope,
            venue: venue_id,
            receive_time,
            memory: &cell,
        };
        for &i in venue.route_index.candidates(route_key.as_deref()) {
            let route = &venue.routes[i];
            if !holds(&route.when, &root, &scope) {
                continue;
            }
            matched = true;
            let mut failure = None;
            let mut one = |item: V<'_>| -> Result<(), ExprError> {
                let result = build::instrument(route, &item, &scope).and_then(|name| {
                    let inst = match build::symbol(route, &item, &scope)? {
                        Some(sym) => {
                            Arc::new(crate::domain::Instrument::new(name.into_owned(), sym))
                        }
                        None => {
                            symbols.resolve(&name, &venue.symbols, scope.get(Var::Market), venue_id)
                        }
                    };
                    build::event(route, &item, inst, &env)
                });
                match result {
                    Ok((ev, chained)) => {
                        if chained {
                            to_chain.push(out.len());
                        }
                        out.push(ev);
                        Ok(())
                    }
                    Err(e) => {
                        failure = Some(e);
                        Err(ExprError::new("item failed"))
                    }
                }
            };
            let r = match &route.each {
                Some(each) => each.run(&root, &scope, &mut one),
                None => one(root.clone()),
            };
            if let Some(e) = failure {
                out.truncate(start);
                *memory = settle(cell, false);
                return Err(e);
            }
            if let Err(e) = r {
                out.truncate(start);
                *memory = settle(cell, false);
                return Err(MapError::Route {
                    route: route.name.clone(),
                    message: format!("each: {e}"),
                });
            }
        }
        *memory = settle(cell, true);
        // The frame mapped: its content-keyed book events join their chains.
        for i in to_chain {
            chains.chain(&mut out[i]);
        }
        Ok(if matched {
            Outcome::Data {
                events: out.len() - start,
            }
        } else {
            Outcome::Unrouted
        })
    }
}

/// Keep (or drop) the level-memory changes of the frame just mapped.
fn settle(memory: RefCell<Memory>, ok: bool) -> Memory {
    let mut m = memory.into_inner();
    if ok {
        m.commit()
    } else {
        m.rollback()
    }
    m
}

fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['))
}

/// Message text of a template or reply result: strings as raw text, the rest
/// as JSON.
pub fn message_text(v: &V<'_>) -> String {
    match v {
        V::Str(s) => s.to_string(),
        other => other.to_json(),
    }
}

type Capture = Option<(String, OwnedDoc)>;

fn control(
    rule: &ControlRule,
    root: &V<'_>,
    scope: &Scope<'_>,
) -> Result<(ControlInfo, Capture), MapError> {
    let fail = |e: ExprError| MapError::Control {
        kind: rule.kind.as_str(),
        message: e.to_string(),
    };
    let first_text = |e: &Option<crate::engine::expr::Expr>| -> Result<Option<String>, MapError> {
        match e {
            Some(e) => Ok(e
                .first(root, scope)
                .map_err(fail)?
                .map(|v| message_text(&v))),
            None => Ok(None),
        }
    };
    let reply = first_text(&rule.reply)?;
    let message = first_text(&rule.message)?;
    let capture = match (&rule.capture_key, &rule.capture_value) {
        (Some(k), Some(v)) => {
            let key = k.first(root, scope).map_err(fail)?;
            let value = v.first(root, scope).map_err(fail)?;
            match (key, value) {
                (Some(key), Some(value)) => {
                    let doc = OwnedDoc::parse(value.to_json())
                        .map_err(|e| fail(ExprError::new(e.to_string())))?;
                    Some((key.to_text().into_owned(), doc))
                }
                _ => None,
            }
        }
        _ => None,
    };
    Ok((
        ControlInfo {
            kind: rule.kind,
            reply,
            message,
        },
        capture,
    ))
}
