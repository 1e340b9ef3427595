//! `mdrelay map`: the playground for writing mappings.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::venue_arg::{check_market, venue_file};
use crate::application::fixture::{FrameLine, implausible_times, parse_frame_line};
use crate::config::venue::load_venue;
use crate::domain::Timestamp;
use crate::engine::mapper::{Mapper, Outcome};
use crate::serialization::to_json_line;

/// Arguments of `mdrelay map`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The venue: an id (`okx`) or a venue file (`venues/okx.toml`).
    #[arg(long)]
    pub venue: String,
    /// Directory of venue files (for a venue given by id).
    #[arg(long, default_value = "venues")]
    pub venues: PathBuf,
    /// The market, for venues with several (`[markets]`; required there).
    #[arg(long)]
    pub market: Option<String>,
    /// Use this receive time (ms since the epoch) instead of the clock, for
    /// reproducible output.
    #[arg(long)]
    pub receive_time_ms: Option<i64>,
    /// Also print one line per control frame and unrouted frame.
    #[arg(long)]
    pub verbose: bool,
}

/// Read frames from stdin, print events to stdout and problems to stderr.
pub(super) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = venue_file(&args.venue, &args.venues)?;
    let venue = load_venue(&file).with_context(|| format!("loading {}", file.display()))?;
    check_market(&venue, args.market.as_deref())?;
    let mut mapper = Mapper::new(venue.id.clone(), args.market.clone(), Default::default());
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut events = Vec::new();
    let (mut frames, mut mapped, mut control, mut unrouted, mut failures) = (0usize, 0, 0, 0, 0);
    let mut time_warnings = 0usize;
    for (i, line) in stdin.lines().enumerate() {
        let line = line.context("reading stdin")?;
        let n = i + 1;
        let frame = match parse_frame_line(&line) {
            FrameLine::Skip => continue,
            FrameLine::Frame(f) => f,
            FrameLine::Invalid(e) => {
                eprintln!("line {n}: {e}");
                failures += 1;
                continue;
            }
        };
        frames += 1;
        let now = args
            .receive_time_ms
            .map_or_else(Timestamp::now, |ms| Timestamp(ms * 1_000_000));
        events.clear();
        let result = mapper.map(&venue, frame.as_raw(), now, &mut events);
        if let Some(gap) = mapper.take_gap() {
            eprintln!("line {n}: {gap} (the relay reconnects here)");
        }
        match result {
            Ok(outcome) => {
                mapped += events.len();
                match outcome {
                    Outcome::Control(_) => control += 1,
                    Outcome::Unrouted => unrouted += 1,
                    Outcome::Data { .. } => {}
                }
                for e in &events {
                    writeln!(stdout, "{}", to_json_line(e))?;
                }
                let clock = Timestamp::now();
                for e in &events {
                    for w in implausible_times(e, clock) {
                        // After the frame's events, in frame order.
                        stdout.flush()?;
                        eprintln!("line {n}: warning: {w}");
                        time_warnings += 1;
                    }
                }
                if args.verbose {
                    match outcome {
                        Outcome::Control(c) => match &c.message {
                            Some(m) => writeln!(
                                stdout,
                                "# line {n}: control {}: {}",
                                c.kind.as_str(),
                                crate::domain::text::clip(m)
                            )?,
                            None => writeln!(stdout, "# line {n}: control {}", c.kind.as_str())?,
                        },
                        Outcome::Unrouted => writeln!(stdout, "# line {n}: unrouted")?,
                        Outcome::Data { .. } => {}
                    }
                }
            }
            Err(e) => {
                failures += 1;
                // What was printed before goes out first: stdout and
                // stderr stay in frame order when both go to a terminal.
                stdout.flush()?;
                eprintln!("line {n}: {e}");
            }
        }
        // One frame's events at a time, so a consumer of the output (or a
        // person watching it) sees each frame as it is mapped.
        stdout.flush()?;
    }
    stdout.flush()?;
    eprintln!(
        "{frames} frames: {mapped} events, {control} control, {unrouted} unrouted, {failures} failed"
    );
    if time_warnings > 0 {
        eprintln!(
            "{time_warnings} mapped time(s) before 2009 or more than a day ahead: check the routes' time_unit"
        );
    }
    if frames == 0 {
        eprintln!("error: no frames on stdin (one frame per line)");
        return Ok(ExitCode::from(2));
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
