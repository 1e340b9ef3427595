//! `mdrelay validate`: the fixture gate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::application::fixture::run_venue;
use crate::application::templates::{check_templates, sample_instrument};
use crate::config::venue::{load_venue, load_venues_dir};
use crate::engine::venue::Venue;
use crate::tools::captures::{capture_files, check_venue};

use super::venue_arg::venue_file;

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
    /// Only these venues: an id (`okx`) or a venue file (`venues/okx.toml`);
    /// repeatable. An unknown one is an error.
    #[arg(long = "venue")]
    pub only: Vec<String>,
    /// Instead of the fixtures, map every `<DIR>/<venue>/capture-*.jsonl`
    /// (long recorded sessions, e.g. `../shared/corpus`) and report counts
    /// per venue and data type; fails if any frame fails to map, or if
    /// nothing could be checked.
    #[arg(long, value_name = "DIR")]
    pub captures: Option<PathBuf>,
    /// Also list each venue's per-frame expressions that run in the jq
    /// interpreter instead of the native fast path (they cost more per
    /// frame; docs/venue-format.md lists what the fast path covers).
    #[arg(long)]
    pub interpreted: bool,
}

/// What was checked, for the summary line.
#[derive(Debug, Default)]
struct Totals {
    venues: usize,
    cases: usize,
    frames: usize,
    events: usize,
    templates: usize,
    failures: usize,
    /// Mapped times outside the plausible range (printed, not failures).
    time_warnings: usize,
}

/// Compile the venues, run their cases and templates (or map the corpus
/// captures), print a line per venue and a summary; non-zero on any compile
/// error, mismatch, failing template, or when nothing was checked.
pub(super) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (venues, compile_errors) = select(&args)?;
    for p in &compile_errors {
        println!("COMPILE ERROR {p}");
    }
    let mut totals = Totals {
        failures: compile_errors.len(),
        ..Default::default()
    };
    if let Some(corpus) = &args.captures {
        captures(&venues, corpus, &args, &mut totals);
    } else {
        fixtures(&venues, &args, &mut totals);
    }
    let what = if args.captures.is_some() {
        "capture files".to_owned()
    } else {
        format!("cases, {} templates", totals.templates)
    };
    println!(
        "{} {} venue(s), {} {}, {} frames, {} events; {} failure(s)",
        if totals.failures == 0 {
            "ok:"
        } else {
            "FAILED:"
        },
        totals.venues,
        totals.cases,
        what,
        totals.frames,
        totals.events,
        totals.failures,
    );
    if totals.time_warnings > 0 {
        println!(
            "{} mapped time(s) before 2009 or more than a day ahead (warnings, not failures: see above)",
            totals.time_warnings
        );
    }
    if totals.cases == 0 && totals.failures == 0 {
        println!("nothing was checked");
        return Ok(ExitCode::FAILURE);
    }
    Ok(if totals.failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The venues to check: every file of `--venues`, or those named by
/// `--venue` (ids or paths; an unknown one is an error). Also the compile
/// problems.
fn select(args: &Args) -> anyhow::Result<(BTreeMap<String, Venue>, Vec<String>)> {
    if args.only.is_empty() {
        let (venues, problems) = load_venues_dir(&args.venues);
        return Ok((venues, problems.iter().map(|p| p.to_string()).collect()));
    }
    let mut venues = BTreeMap::new();
    let mut problems = Vec::new();
    for arg in &args.only {
        let file = venue_file(arg, &args.venues)?;
        match load_venue(&file) {
            Ok(v) => {
                venues.insert(v.id.to_string(), v);
            }
            Err(e) => problems.extend(e.problems().iter().map(|p| p.to_string())),
        }
    }
    Ok((venues, problems))
}

fn fixtures(venues: &BTreeMap<String, Venue>, args: &Args, totals: &mut Totals) {
    for (id, venue) in venues {
        let dir = args.fixtures.join(id);
        let report = run_venue(venue, &dir, args.bless);
        let (mut frames, mut events, mut errors, mut bad) = (0, 0, 0, 0);
        for c in &report.cases {
            frames += c.counts.frames;
            events += c.counts.events;
            errors += c.counts.errors;
            bad += usize::from(c.mismatch.is_some());
        }
        let instrument = sample_instrument(&dir).unwrap_or_else(|| "SAMPLE".into());
        let templates = check_templates(venue, &instrument);
        let broken = templates.iter().filter(|t| t.result.is_err()).count();
        let (refs, ref_problems) = crate::application::instruments::run_reference_cases(
            venue,
            &dir.join("reference"),
            args.bless,
        );
        let ref_bad = refs.iter().filter(|c| c.mismatch.is_some()).count() + ref_problems.len();
        let ok = bad == 0
            && broken == 0
            && ref_bad == 0
            && report.problems.is_empty()
            && !report.cases.is_empty();
        let verdict = if ok { "ok" } else { "FAIL" };
        println!(
            "{verdict:4} {id:<18} cases {:>3}  frames {frames:>5}  events {events:>6}  frame errors {errors:>3}  mismatches {bad}  templates {}",
            report.cases.len(),
            templates.len(),
        );
        if report.cases.is_empty() {
            println!("     no fixture cases in {}", dir.display());
        }
        for p in &report.problems {
            println!("     {p}");
        }
        for t in &templates {
            if let Err(e) = &t.result {
                println!(
                    "     template {} (sample instrument {instrument}): {e}",
                    t.template
                );
            }
        }
        for c in &report.cases {
            print_time_warnings(&c.name, &c.warnings);
            totals.time_warnings += c.warnings.len();
            if let Some(m) = &c.mismatch {
                println!("     case {}: output differs\n{m}", c.name);
            } else if c.blessed {
                println!("     case {}: expected output written", c.name);
            }
        }
        if !refs.is_empty() {
            println!(
                "     reference: {} response(s), {} instrument(s), {} mismatch(es)",
                refs.len(),
                refs.iter().map(|c| c.records).sum::<usize>(),
                refs.iter().filter(|c| c.mismatch.is_some()).count()
            );
        }
        for p in &ref_problems {
            println!("     reference: {p}");
        }
        for c in &refs {
            if let Some(m) = &c.mismatch {
                println!("     reference {}: output differs\n{m}", c.response);
            } else if c.blessed {
                println!("     reference {}: expected records written", c.response);
            }
        }
        if args.interpreted {
            for i in crate::engine::venue::interpreted(venue) {
                println!("     interpreted: {}  `{}`", i.at, i.source);
            }
        }
        totals.venues += 1;
        totals.cases += report.cases.len();
        totals.frames += frames;
        totals.events += events;
        totals.templates += templates.len();
        totals.failures += usize::from(!ok);
    }
}

/// The `--captures` mode: map every capture of every selected venue; say
/// which corpus folders and venues were not checked, and why.
fn captures(venues: &BTreeMap<String, Venue>, corpus: &Path, args: &Args, totals: &mut Totals) {
    let folders = match std::fs::read_dir(corpus) {
        Ok(rd) => {
            let mut f: Vec<String> = rd
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect();
            f.sort();
            f
        }
        Err(e) => {
            println!("FAIL cannot read the corpus {}: {e}", corpus.display());
            totals.failures += 1;
            return;
        }
    };
    for (id, venue) in venues {
        if capture_files(corpus, id).is_empty() {
            // A venue named on the command line must have captures.
            let named = !args.only.is_empty();
            println!(
                "{} {id:<18} no capture-*.jsonl in {}",
                if named { "FAIL" } else { "skip" },
                corpus.join(id).display()
            );
            totals.failures += usize::from(named);
            continue;
        }
        let reports = match check_venue(venue, corpus, &args.fixtures.join(id)) {
            Ok(r) => r,
            Err(e) => {
                println!("FAIL {id:<18} {e}");
                totals.failures += 1;
                continue;
            }
        };
        totals.venues += 1;
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
            totals.cases += 1;
            totals.frames += r.frames;
            totals.events += r.total_events();
            totals.failures += usize::from(r.errors > 0);
        }
    }
    if args.only.is_empty() {
        for folder in folders.iter().filter(|f| !venues.contains_key(*f)) {
            let n = capture_files(corpus, folder).len();
            if n > 0 {
                println!(
                    "skip {folder:<18} {n} capture(s): no venue `{folder}` in {} (another protocol or a venue that did not compile)",
                    args.venues.display()
                );
            }
        }
    }
}

/// Print a case's time warnings (the first few; recorded fixtures may hold
/// many frames with the same mapping).
fn print_time_warnings(case: &str, warnings: &[String]) {
    const SHOWN: usize = 5;
    for w in warnings.iter().take(SHOWN) {
        println!("     case {case}: warning: {w}");
    }
    if warnings.len() > SHOWN {
        println!(
            "     case {case}: ... and {} more time warning(s)",
            warnings.len() - SHOWN
        );
    }
}
