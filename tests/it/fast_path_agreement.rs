//! Every mapping expression of every shipped venue gives the same result on
//! the native fast path and in the jq interpreter, over every fixture frame
//! (and every item and level those frames produce).

use std::collections::HashMap;
use std::path::Path;

use mdrelay::application::fixture::{FrameLine, OwnedFrame, case_files, parse_frame_line};
use mdrelay::config::venue::load_venues_dir;
use mdrelay::engine::expr::{Expr, Scope, V, Var, parse_decimal};
use mdrelay::engine::json::{OwnedDoc, Parser};
use mdrelay::engine::venue::{Field, Venue};

/// Outputs as comparable text: numbers by decimal value, the rest as JSON;
/// an error as `error`.
fn run(e: &Expr, input: &V<'_>, scope: &Scope<'_>, jq: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut sink = |v: V<'_>| {
        out.push(match &v {
            V::Num(n) => {
                parse_decimal(n).map_or_else(|| n.to_string(), |d| d.normalize().to_string())
            }
            other => other.to_json(),
        });
        Ok(())
    };
    let r = if jq {
        e.run_jq(input, scope, &mut sink)
    } else {
        e.run(input, scope, &mut sink)
    };
    if r.is_err() {
        out.push("error".into());
    }
    out
}

struct Checker {
    checked: usize,
    fast: usize,
    mismatches: Vec<String>,
}

impl Checker {
    fn check(
        &mut self,
        venue: &str,
        what: &str,
        e: &Expr,
        input: &V<'_>,
        scope: &Scope<'_>,
    ) -> Vec<String> {
        let fast = run(e, input, scope, false);
        let jq = run(e, input, scope, true);
        self.checked += 1;
        self.fast += usize::from(e.is_fast());
        if fast != jq && self.mismatches.len() < 20 {
            self.mismatches.push(format!(
                "{venue} {what} `{}` on {}:\n  fast: {fast:?}\n  jq:   {jq:?}",
                e.source(),
                input.to_json().chars().take(200).collect::<String>()
            ));
        }
        jq
    }
}

fn frames(dir: &Path) -> Vec<OwnedFrame> {
    let mut all = Vec::new();
    for path in case_files(dir) {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            if let FrameLine::Frame(OwnedFrame::Text(t)) = parse_frame_line(line) {
                all.push(OwnedFrame::Text(t));
            }
        }
    }
    all
}

fn check_venue(venue: &Venue, frames: &[OwnedFrame], c: &mut Checker) {
    let id = venue.id.to_string();
    let mut context: HashMap<String, OwnedDoc> = HashMap::new();
    let mut parser = Parser::new();
    for frame in frames {
        let OwnedFrame::Text(text) = frame else {
            continue;
        };
        let Ok(doc) = parser.parse(text) else {
            continue;
        };
        let root = V::from_doc(doc);
        let mut scope = Scope::new();
        scope
            .set(Var::Frame, root.clone())
            .set(Var::Venue, V::Str(id.as_str().into()));
        if let Some(k) = &venue.frames.context_key {
            c.check(&id, "frames.context_key", k, &root, &scope);
            if let Ok(Some(key)) = k.first(&root, &scope)
                && let Some(entry) = context.get(key.to_text().as_ref())
            {
                scope.set(Var::Ctx, V::from_doc(entry.root()));
            }
        }
        let route_key = venue.frames.route_key.as_ref().and_then(|k| {
            c.check(&id, "frames.route_key", k, &root, &scope);
            match k.first(&root, &scope) {
                Ok(Some(V::Str(s))) => Some(s.into_owned()),
                Ok(Some(V::Num(n))) => Some(n.into_owned()),
                _ => None,
            }
        });
        let mut captured = None;
        for &i in venue.control_index.candidates(route_key.as_deref()) {
            let rule = &venue.control[i];
            if let Some(when) = &rule.when {
                c.check(&id, "control.when", when, &root, &scope);
            }
            if rule.when.as_ref().is_none_or(|w| w.test(&root, &scope)) {
                for e in [
                    &rule.reply,
                    &rule.message,
                    &rule.capture_key,
                    &rule.capture_value,
                ]
                .into_iter()
                .flatten()
                {
                    c.check(&id, "control", e, &root, &scope);
                }
                if let (Some(k), Some(v)) = (&rule.capture_key, &rule.capture_value)
                    && let (Ok(Some(k)), Ok(Some(v))) =
                        (k.first(&root, &scope), v.first(&root, &scope))
                {
                    captured = Some((
                        k.to_text().into_owned(),
                        OwnedDoc::parse(v.to_json()).unwrap(),
                    ));
                }
            }
        }
        for &i in venue.route_index.candidates(route_key.as_deref()) {
            let route = &venue.routes[i];
            if let Some(when) = &route.when {
                c.check(&id, "route.when", when, &root, &scope);
                if !when.test(&root, &scope) {
                    continue;
                }
            }
            let items = match &route.each {
                Some(each) => {
                    c.check(&id, "route.each", each, &root, &scope);
                    each.collect(&root, &scope).unwrap_or_default()
                }
                None => vec![root.clone()],
            };
            for item in &items {
                for f in 0..Field::COUNT {
                    let Some(e) = &route.fields[f] else { continue };
                    if f == Field::LevelPrice as usize || f == Field::LevelQuantity as usize {
                        continue;
                    }
                    c.check(&id, "route.fields", e, item, &scope);
                }
                for side in [Field::Bids, Field::Asks] {
                    let Some(levels) = route.field(side) else {
                        continue;
                    };
                    for level in levels.collect(item, &scope).unwrap_or_default() {
                        for f in [Field::LevelPrice, Field::LevelQuantity] {
                            c.check(&id, "route.level", route.field(f).unwrap(), &level, &scope);
                        }
                    }
                }
            }
        }
        drop(scope);
        if let Some((k, v)) = captured {
            context.insert(k, v);
        }
    }
}

#[test]
fn fast_path_and_jq_agree_on_every_venue_expression() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (venues, problems) = load_venues_dir(&root.join("venues"));
    assert!(problems.is_empty(), "{problems:#?}");
    let mut c = Checker {
        checked: 0,
        fast: 0,
        mismatches: Vec::new(),
    };
    for (id, venue) in &venues {
        let frames = frames(&root.join("fixtures").join(id));
        check_venue(venue, &frames, &mut c);
    }
    assert!(
        c.mismatches.is_empty(),
        "{} disagreements:\n{}",
        c.mismatches.len(),
        c.mismatches.join("\n")
    );
    eprintln!(
        "{} evaluations checked, {} on the fast path",
        c.checked, c.fast
    );
    assert!(c.checked > 5_000, "only {} evaluations checked", c.checked);
    // The point of the fast path: nearly every evaluation avoids the interpreter.
    assert!(
        c.fast * 100 >= c.checked * 95,
        "only {}/{} evaluations on the fast path",
        c.fast,
        c.checked
    );
}
