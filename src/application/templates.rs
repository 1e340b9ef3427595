//! Template checks for `mdrelay validate`: render a venue's message
//! templates (on_connect, subscribe, unsubscribe, heartbeat, URL query)
//! against a sample subscription, as a connection would, so a template that
//! cannot run is caught before the relay connects.

use crate::domain::Timestamp;
use crate::engine::expr::{Scope, V, Var};
use crate::engine::mapper::message_text;
use crate::engine::venue::Venue;

use super::subscribe::{Item, TemplateVars, connection_url, render, subscribe_messages};

/// One rendered template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateCheck {
    /// Which template, e.g. `subscribe (market linear)`.
    pub template: String,
    /// The messages it gave, or why it failed.
    pub result: Result<Vec<String>, String>,
}

/// The heartbeat message(s) the venue's `[heartbeat] message` template gives
/// for ping number `counter`.
pub fn heartbeat_messages(venue: &Venue, counter: u64) -> Result<Vec<String>, String> {
    let Some(template) = &venue.heartbeat.message else {
        return Ok(Vec::new());
    };
    let mut scope = Scope::new();
    scope
        .set(Var::Counter, V::Num(counter.to_string().into()))
        .set(
            Var::NowMs,
            V::Num(Timestamp::now().as_millis().to_string().into()),
        )
        .set(Var::Venue, V::Str(venue.id.as_ref().into()));
    let out = template
        .collect(&V::Null, &scope)
        .map_err(|e| e.to_string())?;
    Ok(out.iter().map(message_text).collect())
}

/// The sample subscription of one market: one item per channel the market
/// offers, each for `instrument`.
pub fn sample_items(venue: &Venue, market: Option<&str>, instrument: &str) -> Vec<Item> {
    venue
        .channels
        .iter()
        .filter(|(_, ch)| match market {
            Some(m) => ch.markets.is_empty() || ch.markets.iter().any(|x| x == m),
            None => true,
        })
        .map(|(t, ch)| Item {
            data_type: *t,
            channel: ch.name.clone(),
            instrument: instrument.to_owned(),
            symbol: None,
            market: market.map(str::to_owned),
            params: ch.params.clone(),
        })
        .collect()
}

/// Render every template of `venue` for each of its markets (or once when
/// it has none), with `instrument` as the sample instrument. A subscribe
/// template that gives no message for a non-empty subscription fails too:
/// the connection would subscribe to nothing.
pub fn check_templates(venue: &Venue, instrument: &str) -> Vec<TemplateCheck> {
    let markets: Vec<Option<&str>> = if venue.markets.is_empty() {
        vec![None]
    } else {
        venue.markets.keys().map(|m| Some(m.as_str())).collect()
    };
    let mut checks = Vec::new();
    let label = |what: &str, market: Option<&str>| match market {
        Some(m) => format!("{what} (market {m})"),
        None => what.to_owned(),
    };
    for market in markets {
        let items = sample_items(venue, market, instrument);
        let mut request_id = 0u64;
        for (i, template) in venue.subscribe.on_connect.iter().enumerate() {
            let mut vars = TemplateVars {
                venue: &venue.id,
                market,
                request_id: &mut request_id,
                now_ms: Timestamp::now().as_millis(),
            };
            checks.push(TemplateCheck {
                template: label(&format!("on_connect[{i}]"), market),
                result: render(template, "null", &mut vars),
            });
        }
        for (what, template) in [
            ("subscribe", &venue.subscribe.message),
            ("unsubscribe", &venue.subscribe.unsubscribe),
        ] {
            let Some(template) = template else { continue };
            let result = subscribe_messages(venue, template, market, &items, &mut request_id)
                .and_then(|m| {
                    if m.is_empty() && !items.is_empty() {
                        Err(format!("no message for {} items", items.len()))
                    } else {
                        Ok(m)
                    }
                });
            checks.push(TemplateCheck {
                template: label(what, market),
                result,
            });
        }
        if venue.connection.url_query.is_some() {
            checks.push(TemplateCheck {
                template: label("url_query", market),
                result: connection_url(venue, None, market, &items).map(|u| vec![u]),
            });
        }
    }
    if venue.heartbeat.message.is_some() {
        checks.push(TemplateCheck {
            template: "heartbeat".into(),
            result: heartbeat_messages(venue, 1),
        });
    }
    checks
}

/// A sample instrument of a venue: the first `instrument` of an event in
/// its fixtures' expected outputs (`<dir>/*.expected.jsonl`), if any.
pub fn sample_instrument(fixtures: &std::path::Path) -> Option<String> {
    let mut files: Vec<_> = std::fs::read_dir(fixtures)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".expected.jsonl"))
        .collect();
    files.sort();
    files.iter().find_map(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        text.lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some(v.get("instrument")?.as_str()?.to_owned())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn venue(id: &str) -> Venue {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("venues");
        crate::config::venue::load_venue(&dir.join(format!("{id}.toml"))).unwrap()
    }

    #[test]
    fn every_template_of_a_venue_is_rendered() {
        let checks = check_templates(&venue("okx"), "BTC-USDT");
        let names: Vec<&str> = checks.iter().map(|c| c.template.as_str()).collect();
        assert_eq!(names, ["subscribe", "unsubscribe", "heartbeat"]);
        let sub = checks[0].result.as_ref().unwrap();
        assert!(
            sub[0].contains("\"op\":\"subscribe\"") && sub[0].contains("BTC-USDT"),
            "{sub:?}"
        );
        assert_eq!(checks[2].result, Ok(vec!["ping".to_owned()]));
        // Per market where the venue has several.
        let bybit = check_templates(&venue("bybit"), "BTCUSDT");
        assert!(
            bybit
                .iter()
                .any(|c| c.template == "subscribe (market linear)")
        );
    }

    #[test]
    fn a_template_that_cannot_run_fails() {
        let mut v = venue("okx");
        v.subscribe.message = Some(
            crate::engine::expr::Expr::compile(
                "{op: \"subscribe\", args: [.[] | .instrument | error(\"boom\")]}",
            )
            .unwrap(),
        );
        let checks = check_templates(&v, "BTC-USDT");
        let sub = checks.iter().find(|c| c.template == "subscribe").unwrap();
        assert!(
            sub.result.as_ref().is_err_and(|e| e.contains("boom")),
            "{sub:?}"
        );
        v.subscribe.message = Some(crate::engine::expr::Expr::compile("empty").unwrap());
        let checks = check_templates(&v, "BTC-USDT");
        assert!(
            checks[0].result.is_err(),
            "a subscribe that sends nothing fails"
        );
    }

    #[test]
    fn sample_instruments_come_from_the_fixtures() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/okx");
        assert!(sample_instrument(&dir).is_some());
        assert_eq!(sample_instrument(Path::new("/nonexistent")), None);
    }
}
