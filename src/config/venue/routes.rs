//! Compiling the venue file's `[book]`, `[[control]]` and `[[routes]]`
//! sections: selectors, field expressions, book rules.

use super::compile::Compiler;
use super::raw::*;

use crate::config::Jq;
use crate::domain::DataType;
use crate::engine::book::ChecksumSpec;
use crate::engine::expr::Expr;
use crate::engine::venue::{
    BookRules, BookSync, ControlRule, Field, FieldType, LevelMemory, RestSnapshot, Route,
    ScaleSource, SnapshotAlign, fields_for,
};

impl Compiler<'_> {
    /// `[book.snapshot] sync` and the fields each mode needs.
    fn snapshot_align(&mut self, s: &RawSnapshot) -> Option<SnapshotAlign> {
        const AT: &str = "book.snapshot";
        match s.sync {
            BookSync::UpdateId => {
                let mut ok = true;
                if s.last_update_id.is_none() {
                    let m = "required with sync = \"update_id\" (the default); or set sync = \"timestamp\" and a `time`";
                    self.p.at(None, format!("{AT}.last_update_id"), m);
                    ok = false;
                }
                match s.first_delta {
                    Some(f) if ok => Some(SnapshotAlign::UpdateId(f)),
                    Some(_) => None,
                    None => {
                        let m = "required with sync = \"update_id\" (the default): `spans_next` or `spans`";
                        self.p.at(None, format!("{AT}.first_delta"), m);
                        None
                    }
                }
            }
            BookSync::Timestamp => {
                let mut ok = true;
                if s.time.is_none() {
                    let m = "required with sync = \"timestamp\": the snapshot's exchange time";
                    self.p.at(None, format!("{AT}.time"), m);
                    ok = false;
                }
                if s.first_delta.is_some() {
                    let m = "only with sync = \"update_id\" (timestamp sync drops deltas at or before the snapshot's time)";
                    self.p.at(None, format!("{AT}.first_delta"), m);
                    ok = false;
                }
                ok.then_some(SnapshotAlign::Timestamp)
            }
        }
    }

    /// With timestamp sync every `l2_orderbook` route that can give deltas
    /// (its `kind` is not the literal `"snapshot"`) must map an
    /// `exchange_time`: a delta without one cannot be placed against the
    /// snapshot.
    pub(super) fn check_book_sync(&mut self, book: &BookRules, routes: &[Route]) {
        if !matches!(
            book.snapshot.as_ref().map(|s| s.align),
            Some(SnapshotAlign::Timestamp)
        ) {
            return;
        }
        for r in routes {
            // A route whose kind is the literal "snapshot" gives images
            // only, which need no placing.
            let images_only = r
                .field(Field::Kind)
                .is_some_and(|k| k.source().trim() == "\"snapshot\"");
            if r.data_type == DataType::L2Orderbook
                && !images_only
                && r.field(Field::ExchangeTime).is_none()
            {
                self.p.at(
                    None,
                    format!("routes `{}`.exchange_time", r.name),
                    "required: [book.snapshot] sync = \"timestamp\" places each book delta by its exchange time",
                );
            }
        }
    }

    pub(super) fn book(&mut self, mut r: RawBook) -> BookRules {
        let scales = r
            .checksum
            .as_mut()
            .and_then(|c| c.scales.take())
            .and_then(|s| {
                let url = self.jq(&s.url, "book.checksum.scales.url");
                let price = self.jq(&s.price, "book.checksum.scales.price");
                let quantity = self.jq(&s.quantity, "book.checksum.scales.quantity");
                Some(ScaleSource {
                    url: url?,
                    price: price?,
                    quantity: quantity?,
                })
            });
        let checksum = r.checksum.map(|c| {
            if c.depth == 0 {
                self.p.at(None, "book.checksum.depth", "must be at least 1");
            }
            ChecksumSpec {
                depth: c.depth,
                layout: c.layout,
                numbers: c.numbers,
                separator: c.separator,
                negative_asks: c.negative_asks,
                signed: c.signed,
                zero_means_absent: c.zero_means_absent,
                mode: c.mode,
            }
        });
        let snapshot = r.snapshot.and_then(|s| {
            let url = self.jq(&s.url, "book.snapshot.url");
            let mut fields: Vec<Option<Expr>> = vec![None; Field::COUNT];
            let mut set = |c: &mut Self, f: Field, jq: Option<&Jq>, default: &str, name: &str| {
                fields[f as usize] = match jq {
                    Some(j) => c.jq(j, &format!("book.snapshot.{name}")),
                    None => Expr::compile(default).ok(),
                };
            };
            set(self, Field::Instrument, None, "$instrument", "instrument");
            set(self, Field::Kind, None, "\"snapshot\"", "kind");
            set(self, Field::Bids, Some(&s.bids), "", "bids");
            set(self, Field::Asks, Some(&s.asks), "", "asks");
            set(
                self,
                Field::LevelPrice,
                s.level_price.as_ref(),
                ".[0]",
                "level_price",
            );
            set(
                self,
                Field::LevelQuantity,
                s.level_quantity.as_ref(),
                ".[1]",
                "level_quantity",
            );
            set(
                self,
                Field::LastUpdateId,
                s.last_update_id.as_ref(),
                "",
                "last_update_id",
            );
            set(self, Field::ExchangeTime, s.time.as_ref(), "", "time");
            let align = self.snapshot_align(&s);
            let rate = s.max_requests_per_second.unwrap_or(1.0);
            if rate.is_nan() || rate <= 0.0 {
                self.p.at(
                    None,
                    "book.snapshot.max_requests_per_second",
                    "must be positive",
                );
            }
            let route = Route {
                name: "book.snapshot".into(),
                data_type: DataType::L2Orderbook,
                keys: Vec::new(),
                when: None,
                each: None,
                time_unit: crate::domain::TimeUnit::Auto,
                fields,
                level_memory: None,
            };
            Some(RestSnapshot {
                url: url?,
                route,
                align: align?,
                max_requests_per_second: rate,
            })
        });
        if r.depth == Some(0) {
            self.p.at(None, "book.depth", "must be at least 1");
        }
        BookRules {
            sequence: r.sequence,
            depth: r.depth,
            checksum,
            snapshot,
            scales,
        }
    }

    /// The keys and condition of a rule; `None` when it has neither.
    fn selector(
        &mut self,
        at: &str,
        key: Option<Keys>,
        when: Option<&Jq>,
        has_route_key: bool,
    ) -> Option<(Vec<String>, Option<Expr>)> {
        let keys = key.map(Keys::into_vec).unwrap_or_default();
        let span = when.map(Jq::span);
        if !keys.is_empty() && !has_route_key {
            self.p.at(
                span.clone(),
                format!("{at}.key"),
                "`key` needs `frames.route_key`",
            );
        }
        if keys.is_empty() && when.is_none() {
            self.p.at(None, at, "needs `key` or `when` (or both)");
            return None;
        }
        let when = match when {
            Some(w) => Some(self.jq(w, &format!("{at}.when"))?),
            None => None,
        };
        Some((keys, when))
    }

    pub(super) fn control(
        &mut self,
        i: usize,
        r: RawControl,
        has_route_key: bool,
    ) -> Option<ControlRule> {
        let at = format!("control[{i}]");
        let selector = self.selector(&at, r.key.clone(), r.when.as_ref(), has_route_key);
        let reply = self.opt_jq(r.reply.as_ref(), &format!("{at}.reply"));
        let message = self.opt_jq(r.message.as_ref(), &format!("{at}.message"));
        if r.kind == crate::engine::venue::ControlKind::Ping && r.reply.is_none() {
            self.p.at(
                r.when.as_ref().map(Jq::span),
                &at,
                "a `ping` rule needs a `reply`",
            );
        }
        let (capture_key, capture_value) = match &r.capture {
            Some(c) => (
                self.jq(&c.key, &format!("{at}.capture.key")),
                self.jq(&c.value, &format!("{at}.capture.value")),
            ),
            None => (None, None),
        };
        let (keys, when) = selector?;
        Some(ControlRule {
            kind: r.kind,
            keys,
            when,
            reply,
            message,
            capture_key,
            capture_value,
        })
    }

    pub(super) fn route(&mut self, i: usize, r: RawRoute, has_route_key: bool) -> Option<Route> {
        let at = format!("routes[{i}]");
        let span = r.when.as_ref().map(Jq::span);
        if !DataType::MARKET.contains(&r.data_type) {
            self.p.at(
                span,
                format!("{at}.type"),
                format!(
                    "`{}` events come from the relay, not from routes",
                    r.data_type
                ),
            );
            return None;
        }
        let selector = self.selector(&at, r.key.clone(), r.when.as_ref(), has_route_key);
        let each = self.opt_jq(r.each.as_ref(), &format!("{at}.each"));
        let specs = fields_for(r.data_type);
        let mut fields: Vec<Option<Expr>> = vec![None; Field::COUNT];
        let mut ok = true;
        for (name, jq) in &r.fields {
            match specs.iter().find(|s| s.name == name) {
                Some(spec) => {
                    fields[spec.field as usize] = self.jq(jq, &format!("{at}.fields.{name}"))
                }
                None => {
                    ok = false;
                    let names: Vec<_> = specs.iter().map(|s| s.name).collect();
                    self.p.at(
                        Some(jq.span()),
                        format!("{at}.fields.{name}"),
                        format!(
                            "`{name}` is not a field of {}; expected one of: {}",
                            r.data_type,
                            names.join(", ")
                        ),
                    );
                }
            }
        }
        for spec in specs {
            let slot = &mut fields[spec.field as usize];
            if slot.is_none() && !r.fields.contains_key(spec.name) {
                if let Some(default) = spec.default {
                    *slot = Expr::compile(default).ok();
                } else if spec.required {
                    ok = false;
                    self.p.at(
                        span.clone(),
                        format!("{at}.fields"),
                        format!("missing required field `{}` for {}", spec.name, r.data_type),
                    );
                }
            }
        }
        let has_levels = specs
            .iter()
            .any(|s| s.ty == FieldType::Levels && r.fields.contains_key(s.name));
        if r.data_type == DataType::L2Orderbook && !has_levels {
            ok = false;
            self.p.at(
                span.clone(),
                format!("{at}.fields"),
                "an l2_orderbook route needs `bids` and/or `asks`",
            );
        }
        let level_memory = r.level_memory.as_ref().and_then(|m| {
            let at = format!("{at}.level_memory");
            if r.data_type != DataType::L2Orderbook {
                ok = false;
                self.p.at(
                    Some(m.key.span()),
                    at.clone(),
                    "level memory applies to l2_orderbook routes only",
                );
            }
            let key = self.jq(&m.key, &format!("{at}.key"));
            let store = self.opt_jq(m.store.as_ref(), &format!("{at}.store"));
            let forget = self.opt_jq(m.forget.as_ref(), &format!("{at}.forget"));
            let complete =
                m.store.is_some() == store.is_some() && m.forget.is_some() == forget.is_some();
            Some(LevelMemory {
                key: key?,
                store,
                forget,
            })
            .filter(|_| complete)
        });
        ok &= r.level_memory.is_none() || level_memory.is_some();
        let name = r.name.unwrap_or_else(|| format!("{}#{i}", r.data_type));
        if !ok {
            return None;
        }
        let (keys, when) = selector?;
        Some(Route {
            name,
            data_type: r.data_type,
            keys,
            when,
            each,
            time_unit: r.time_unit,
            fields,
            level_memory,
        })
    }
}
