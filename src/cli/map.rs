//! `mdrelay map`: the playground for writing mappings.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::application::fixture::{FrameLine, parse_frame_line};
use crate::config::venue::load_venue;
use crate::domain::Timestamp;
use crate::engine::mapper::{Mapper, Outcome};
use crate::serialization::to_json_line;

/// Arguments of `mdrelay map`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The venue file.
    #[arg(long)]
    pub venue: PathBuf,
    /// The market, for venues with several (`[markets]`).
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
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let venue =
        load_venue(&args.venue).with_context(|| format!("loading {}", args.venue.display()))?;
    let mut mapper = Mapper::new(venue.id.clone(), args.market.clone(), Default::default());
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut events = Vec::new();
    let mut failures = 0usize;
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
                for e in &events {
                    writeln!(stdout, "{}", to_json_line(e))?;
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
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
