//! `mdrelay validate`: the fixture gate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::application::captures::check_venue;
use crate::application::fixture::run_venue;
use crate::config::venue::load_venues_dir;

/// Arguments of `mdrelay validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of venue files.
    #[arg(long, default_value = "venues")]
    pub venues: PathBuf,
    /// Directory of fixtures (`<dir>/<venue>/<case>.jsonl`).
    #[arg(long, default_value = "fixtures")]
    pub fixtures: PathBuf,
    /// Rewrite the expected files from the current output.
    #[arg(long)]
    pub bless: bool,
    /// Only these venues (by id).
    #[arg(long = "venue")]
    pub only: Vec<String>,
    /// Instead of the fixtures, map every `<DIR>/<venue>/capture-*.jsonl`
    /// (long recorded sessions, e.g. `../shared/corpus`) and report counts
    /// per venue and data type; fails if any frame fails to map.
    #[arg(long, value_name = "DIR")]
    pub captures: Option<PathBuf>,
    /// Also list each venue's per-frame expressions that run in the jq
    /// interpreter instead of the native fast path (they cost more per
    /// frame; docs/venue-format.md lists what the fast path covers).
    #[arg(long)]
    pub interpreted: bool,
}

/// Compile all venues, run all cases, print a summary; non-zero on any
/// compile error or mismatch.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (venues, problems) = load_venues_dir(&args.venues);
    let mut failed = !problems.is_empty();
    for p in &problems {
        println!("COMPILE ERROR {p}");
    }
    if let Some(corpus) = &args.captures {
        let selected = venues
            .iter()
            .filter(|(id, _)| args.only.is_empty() || args.only.contains(id));
        failed |= !captures(selected, corpus, &args.fixtures);
        return Ok(exit(failed));
    }
    for (id, venue) in &venues {
        if !args.only.is_empty() && !args.only.contains(id) {
            continue;
        }
        let report = run_venue(venue, &args.fixtures.join(id), args.bless);
        let (mut frames, mut events, mut errors, mut bad) = (0, 0, 0, 0);
        for c in &report.cases {
            frames += c.counts.frames;
            events += c.counts.events;
            errors += c.counts.errors;
            bad += usize::from(c.mismatch.is_some());
        }
        let verdict = if bad == 0 && report.problems.is_empty() && !report.cases.is_empty() {
            "ok"
        } else {
            "FAIL"
        };
        println!(
            "{verdict:4} {id:<18} cases {:>3}  frames {frames:>5}  events {events:>6}  frame errors {errors:>3}  mismatches {bad}",
            report.cases.len()
        );
        if report.cases.is_empty() {
            println!(
                "     no fixture cases in {}",
                args.fixtures.join(id).display()
            );
        }
        for p in &report.problems {
            println!("     {p}");
        }
        for c in &report.cases {
            if let Some(m) = &c.mismatch {
                println!("     case {}: output differs\n{m}", c.name);
            } else if c.blessed {
                println!("     case {}: expected output written", c.name);
            }
        }
        if args.interpreted {
            for i in crate::engine::venue::interpreted(venue) {
                println!("     interpreted: {}  `{}`", i.at, i.source);
            }
        }
        failed |= verdict == "FAIL";
    }
    Ok(exit(failed))
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The `--captures` mode; true when every frame mapped.
fn captures<'a>(
    venues: impl Iterator<Item = (&'a String, &'a crate::engine::venue::Venue)>,
    corpus: &Path,
    fixtures: &Path,
) -> bool {
    let mut ok = true;
    for (id, venue) in venues {
        let reports = match check_venue(venue, corpus, &fixtures.join(id)) {
            Ok(r) => r,
            Err(e) => {
                println!("FAIL {id:<18} {e}");
                ok = false;
                continue;
            }
        };
        for r in reports {
            let verdict = if r.errors == 0 { "ok" } else { "FAIL" };
            let file = r.path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            println!(
                "{verdict:4} {id:<18} {file:<26} frames {:>6}  events {:>6} ({})  control {}  unrouted {}  gaps {}  errors {}{}",
                r.frames,
                r.total_events(),
                r.per_type(),
                r.control,
                r.unrouted,
                r.gaps,
                r.errors,
                r.market
                    .as_deref()
                    .map(|m| format!("  market {m}"))
                    .unwrap_or_default(),
            );
            for e in &r.examples {
                println!("     {e}");
            }
            ok &= r.errors == 0;
        }
    }
    ok
}
