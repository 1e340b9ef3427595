//! `mdrelay validate`: the fixture gate.

use std::path::PathBuf;
use std::process::ExitCode;

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
}

/// Compile all venues, run all cases, print a summary; non-zero on any
/// compile error or mismatch.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (venues, problems) = load_venues_dir(&args.venues);
    let mut failed = !problems.is_empty();
    for p in &problems {
        println!("COMPILE ERROR {p}");
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
        failed |= verdict == "FAIL";
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
