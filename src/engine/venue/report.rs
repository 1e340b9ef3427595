//! Which per-frame expressions of a venue run in the jq interpreter rather
//! than on the native fast path (`mdrelay validate --interpreted`): a venue
//! author's list of what to rewrite when a venue maps slowly.

use crate::engine::expr::Expr;

use super::{Venue, fields_for};

/// One per-frame expression outside the fast path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreted {
    /// Where it is declared, e.g. `routes[book].fields.bids`.
    pub at: String,
    /// The jq source.
    pub source: String,
}

/// The per-frame expressions of `venue` (frame keys, and every route's
/// condition, item generator, fields and level memory) that run in the jq
/// interpreter, in declaration order. Subscribe templates, control replies
/// and symbol rules are left out: they run once per message sent, per
/// control frame or per new instrument, not per data frame.
pub fn interpreted(venue: &Venue) -> Vec<Interpreted> {
    let mut out = Vec::new();
    let mut note = |at: String, e: Option<&Expr>| {
        if let Some(e) = e
            && !e.is_fast()
        {
            out.push(Interpreted {
                at,
                source: e.source().to_owned(),
            });
        }
    };
    note(
        "frames.context_key".into(),
        venue.frames.context_key.as_ref(),
    );
    note("frames.route_key".into(), venue.frames.route_key.as_ref());
    note("frames.sequence".into(), venue.frames.sequence.as_ref());
    for r in &venue.routes {
        let at = format!("routes[{}]", r.name);
        note(format!("{at}.when"), r.when.as_ref());
        note(format!("{at}.each"), r.each.as_ref());
        for spec in fields_for(r.data_type) {
            if let Some(e) = r.fields.get(spec.field as usize) {
                note(format!("{at}.fields.{}", spec.name), e.as_ref());
            }
        }
        if let Some(m) = &r.level_memory {
            note(format!("{at}.level_memory.key"), Some(&m.key));
            note(format!("{at}.level_memory.store"), m.store.as_ref());
            note(format!("{at}.level_memory.forget"), m.forget.as_ref());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_only_what_runs_in_the_interpreter() {
        let src = r#"name = "T"
[connection]
url = "wss://example.invalid/ws"
[subscribe]
message = '{op: "subscribe"}'
[[routes]]
name = "trades"
type = "trade"
when = '.e == "t"'
each = '.data[]'
[routes.fields]
instrument = '.s'
price = '.p'
quantity = '.q'
side = 'if .m then "sell" else "buy" end'
trade_id = '[.a, .b] | map(tostring) | join("-")'
"#;
        let v =
            crate::config::venue::compile_venue("t", std::path::Path::new("t.toml"), src).unwrap();
        let found = interpreted(&v);
        assert_eq!(
            found,
            [Interpreted {
                at: "routes[trades].fields.trade_id".into(),
                source: r#"[.a, .b] | map(tostring) | join("-")"#.into(),
            }],
            "only the array construction runs in jq"
        );
    }
}
