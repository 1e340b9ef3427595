//! The native fast path and the jq interpreter give the same events and the
//! same errors, through the real [`Mapper`].
//!
//! Every shipped venue maps each of its fixture cases twice, frame by frame
//! and in order (so context captured from acks, level memory and id chains
//! evolve alike): once as the relay does, once with the fast path switched
//! off (`Mapper::set_fast_path(false)`), so every expression runs in jaq.
//! The frames are the recorded ones (`fixtures/<venue>/*.jsonl`), then
//! damaged copies (`fuzz_frames`' damage cases: truncation, type swaps,
//! hostile numbers, ...) and generated ones (a number or numeric string of
//! random digits, scale and exponent in place of a value). Per frame, the
//! outcome (events as canonical JSON, control verdict, unrouted, error text,
//! connection gap) must be identical.
//!
//! The test also counts, at run time, which path answered each evaluation
//! (`Mapper::take_eval_stats`) and fails when the share that stayed on the
//! fast path falls under a floor: a change that silently sends evaluations
//! to the interpreter is a regression, even when the results agree.
//!
//! `MDRELAY_AGREEMENT_CASES` sets the damaged and generated frames per
//! fixture case (default 40).

use std::collections::BTreeMap;
use std::path::Path;

use mdrelay::application::fixture::{
    FrameLine, OwnedFrame, case_files, parse_frame_line, read_cases_file,
};
use mdrelay::config::venue::load_venues_dir;
use mdrelay::domain::Timestamp;
use mdrelay::engine::expr::EvalStats;
use mdrelay::engine::mapper::{Mapper, Outcome, RawFrame};
use mdrelay::engine::venue::Venue;
use mdrelay::serialization::to_json_line;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use crate::fuzz_frames::{Damage, apply, damage, tokens};

/// Everything a frame turned into, as text.
fn verdict(mapper: &mut Mapper, venue: &Venue, raw: RawFrame<'_>) -> String {
    let mut events = Vec::new();
    let result = mapper.map(venue, raw, Timestamp(0), &mut events);
    let mut out = String::new();
    if let Some(gap) = mapper.take_gap() {
        out.push_str(&format!("gap {gap}\n"));
    }
    match result {
        Ok(Outcome::Data { events: n }) => {
            out.push_str(&format!("data {n}\n"));
            for e in &events {
                out.push_str(&to_json_line(e));
                out.push('\n');
            }
        }
        Ok(Outcome::Control(c)) => out.push_str(&format!("control {c:?}")),
        Ok(Outcome::Unrouted) => out.push_str("unrouted"),
        Err(e) => out.push_str(&format!("error {e}")),
    }
    out
}

/// One venue's two mappers: as the relay runs it, and interpreter only.
struct Pair {
    fast: Mapper,
    jq: Mapper,
}

impl Pair {
    fn new(venue: &Venue, market: Option<&str>) -> Pair {
        let make = || {
            Mapper::new(
                venue.id.clone(),
                market.map(str::to_owned),
                Default::default(),
            )
        };
        let mut jq = make();
        jq.set_fast_path(false);
        Pair { fast: make(), jq }
    }

    /// Map with both; the outcome, or both outcomes when they differ.
    fn map(&mut self, venue: &Venue, raw: RawFrame<'_>) -> Result<String, (String, String)> {
        let fast = verdict(&mut self.fast, venue, raw);
        let jq = verdict(&mut self.jq, venue, raw);
        if fast == jq {
            Ok(fast)
        } else {
            Err((fast, jq))
        }
    }
}

/// A generated value: a number (or numeric string) of random digits, scale,
/// sign and exponent, in place of the n-th number or string value.
fn generated() -> impl Strategy<Value = (usize, String, bool, bool)> {
    (
        0usize..60,
        "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,30})?([eE][-+]?[0-9]{1,2})?",
        any::<bool>(),
        any::<bool>(),
    )
}

fn replace_value(
    text: &str,
    (i, number, quoted, in_string): &(usize, String, bool, bool),
) -> String {
    let spots = tokens(text, !in_string);
    let Some(&(a, z)) = spots.get(i % spots.len().max(1)) else {
        return text.to_owned();
    };
    let value = if *quoted {
        format!("\"{number}\"")
    } else {
        number.clone()
    };
    format!("{}{value}{}", &text[..a], &text[z..])
}

#[derive(Default)]
struct Tally {
    frames: usize,
    stats: EvalStats,
    /// Of `stats`, on recorded frames only.
    recorded: EvalStats,
    jq_stats: EvalStats,
}

struct Run {
    per_venue: BTreeMap<String, Tally>,
    mismatches: Vec<String>,
}

impl Run {
    fn frame(&mut self, pair: &mut Pair, venue: &Venue, what: &str, raw: RawFrame<'_>) {
        let tally = self.per_venue.entry(venue.id.to_string()).or_default();
        tally.frames += 1;
        if let Err((fast, jq)) = pair.map(venue, raw)
            && self.mismatches.len() < 20
        {
            let shown = match raw {
                RawFrame::Text(t) => t.chars().take(300).collect::<String>(),
                RawFrame::Binary(b) => format!("<{} binary bytes>", b.len()),
            };
            self.mismatches.push(format!(
                "{} {what}: {shown}\n  fast path: {fast}\n  jq only:   {jq}",
                venue.id
            ));
        }
        let stats = pair.fast.take_eval_stats();
        tally.stats.add(&stats);
        if what.ends_with("(recorded)") {
            tally.recorded.add(&stats);
        }
        tally.jq_stats.add(&pair.jq.take_eval_stats());
    }
}

fn cases_per_file() -> usize {
    std::env::var("MDRELAY_AGREEMENT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

fn check_venue(venue: &Venue, dir: &Path, runner: &mut TestRunner, run: &mut Run) {
    let options = read_cases_file(dir).unwrap();
    for path in case_files(dir) {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let market = options.cases.get(&stem).and_then(|o| o.market.as_deref());
        let mut pair = Pair::new(venue, market);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut frames = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if let FrameLine::Frame(f) = parse_frame_line(line) {
                let what = format!("{stem}.jsonl:{} (recorded)", n + 1);
                run.frame(&mut pair, venue, &what, f.as_raw());
                // Damaging multi-MB snapshots adds nothing a smaller frame
                // does not, at a high price in the interpreter.
                if line.len() < 200_000 {
                    frames.push(f);
                }
            }
        }
        if frames.is_empty() {
            continue;
        }
        let strategy = (any::<usize>(), damage(), generated());
        for _ in 0..cases_per_file() {
            let (fi, d, g) = strategy.new_tree(runner).unwrap().current();
            let frame = &frames[fi % frames.len()];
            let (bytes, binary) = apply(frame, &d);
            let raw = match std::str::from_utf8(&bytes) {
                Ok(t) if !binary => RawFrame::Text(t),
                _ => RawFrame::Binary(&bytes),
            };
            run.frame(&mut pair, venue, &format!("{stem} damaged {d:?}"), raw);
            if let OwnedFrame::Text(t) = frame {
                let changed = replace_value(t, &g);
                let what = format!("{stem} generated {g:?}");
                run.frame(&mut pair, venue, &what, RawFrame::Text(&changed));
            }
        }
        // Hostile numbers in place of each of the first numbers of one
        // (small) frame, in turn.
        let small = frames
            .iter()
            .find(|f| matches!(f, OwnedFrame::Text(t) if t.len() < 4096));
        if let Some(frame @ OwnedFrame::Text(t)) = small {
            for i in 0..tokens(t, true).len().min(20) {
                for n in ["1e400", "123456789012345678901234567890", "-0", "0.1"] {
                    let (bytes, _) = apply(frame, &Damage::Number(i, n));
                    if let Ok(t) = std::str::from_utf8(&bytes) {
                        let what = format!("{stem} number {i} = {n}");
                        run.frame(&mut pair, venue, &what, RawFrame::Text(t));
                    }
                }
            }
        }
    }
}

#[test]
fn the_real_mapper_gives_the_same_events_with_and_without_the_fast_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (venues, problems) = load_venues_dir(&root.join("venues"));
    assert!(problems.is_empty(), "{problems:#?}");
    let mut runner = TestRunner::deterministic();
    let mut run = Run {
        per_venue: BTreeMap::new(),
        mismatches: Vec::new(),
    };
    for (id, venue) in &venues {
        check_venue(
            venue,
            &root.join("fixtures").join(id),
            &mut runner,
            &mut run,
        );
    }
    assert!(
        run.mismatches.is_empty(),
        "{} disagreements:\n{}",
        run.mismatches.len(),
        run.mismatches.join("\n")
    );
    let mut all = EvalStats::default();
    let mut recorded = EvalStats::default();
    let mut low = Vec::new();
    for (id, t) in &run.per_venue {
        let s = t.stats;
        let share = s.fast as f64 / s.total().max(1) as f64;
        eprintln!(
            "{id:<20} {:>6} frames {:>8} evaluations: {:>5.1} % fast, {} fallbacks, {} interpreted",
            t.frames,
            s.total(),
            share * 100.0,
            s.fallbacks,
            s.interpreted
        );
        // The switch works: with it off nothing ran on the fast path.
        assert_eq!(
            (t.jq_stats.fast, t.jq_stats.fallbacks),
            (0, 0),
            "{id}: evaluations on the fast path with it switched off"
        );
        if share < FLOOR_PER_VENUE {
            low.push(format!("{id}: {:.1} %", share * 100.0));
        }
        all.add(&s);
        recorded.add(&t.recorded);
    }
    eprintln!(
        "recorded frames: {} evaluations, {} fallbacks, {} interpreted",
        recorded.total(),
        recorded.fallbacks,
        recorded.interpreted
    );
    // Well-formed frames rarely need the interpreter mid-way.
    assert!(
        recorded.fallbacks * 1000 <= recorded.total(),
        "{} of {} evaluations on recorded frames fell back",
        recorded.fallbacks,
        recorded.total()
    );
    let share = all.fast as f64 / all.total().max(1) as f64;
    eprintln!(
        "all venues: {} evaluations, {:.1} % stayed on the fast path, {} fallbacks, {} interpreted",
        all.total(),
        share * 100.0,
        all.fallbacks,
        all.interpreted
    );
    assert!(all.total() > 50_000, "only {} evaluations", all.total());
    // Hostile numbers make the fast path hand over: the count sees it.
    assert!(all.fallbacks > 0, "no run-time fallback counted");
    assert!(
        low.is_empty(),
        "venues under the fast-path floor of {:.0} %: {low:?}",
        FLOOR_PER_VENUE * 100.0
    );
    assert!(
        share >= FLOOR_ALL,
        "{:.1} % of evaluations stayed on the fast path (floor {:.0} %)",
        share * 100.0,
        FLOOR_ALL * 100.0
    );
}

/// Least share of evaluations that must stay on the fast path, per venue.
const FLOOR_PER_VENUE: f64 = 0.85;
/// ... and over every venue.
const FLOOR_ALL: f64 = 0.97;
