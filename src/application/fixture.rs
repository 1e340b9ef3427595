//! Fixture cases: recorded frames and the canonical output they must give.
//!
//! `fixtures/<venue>/<case>.jsonl` holds frames, one per line, exactly as
//! received (a binary frame is written `{"binary_base64":"..."}`).
//! `<case>.expected.jsonl` holds the transcript: for each frame, the JSON of
//! every event it produced (receive time fixed at the epoch), or one marker
//! line for frames that produce none: `{"line":N,"control":"ack"}`,
//! `{"line":N,"unrouted":true}`, `{"line":N,"error":"..."}`; a frame that
//! reveals a connection sequence gap is preceded by `{"line":N,"gap":"..."}`.
//! An optional `fixtures/<venue>/cases.toml` sets per-case options:
//! `[cases.<case>] market = "linear"`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use std::time::Duration;

use crate::domain::{Event, Payload, Timestamp};
use crate::engine::mapper::{Mapper, Outcome};
use crate::engine::venue::Venue;
pub use crate::serialization::frames::{FrameLine, OwnedFrame, binary_line, parse_frame_line};
use crate::serialization::to_json_line;

/// Counts of what a case's frames turned into.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Frames read.
    pub frames: usize,
    /// Events produced.
    pub events: usize,
    /// Control frames.
    pub control: usize,
    /// Frames no rule matched.
    pub unrouted: usize,
    /// Frames that failed to map.
    pub errors: usize,
    /// Connection sequence gaps seen (`frames.sequence`).
    pub gaps: usize,
    /// Mapped times outside the plausible range ([`implausible_times`]).
    pub time_warnings: usize,
}

/// The earliest plausible mapped time, 2009-01-01T00:00:00Z: older dates
/// (1970, mostly) come from a time read in the wrong unit.
pub const EARLIEST_PLAUSIBLE: Timestamp = Timestamp(1_230_768_000 * 1_000_000_000);

/// How far past the clock a mapped time may be (a day): more is a time
/// read in the wrong unit too.
pub const MOST_AHEAD: Duration = Duration::from_secs(86_400);

/// Warnings for the mapped times of `event` (`exchange_time`,
/// `next_funding_time`) outside the plausible range: before
/// [`EARLIEST_PLAUSIBLE`] or more than [`MOST_AHEAD`] past `now`. Each
/// names the field and the value. Not errors: `validate` and `map` print
/// them, the relay publishes such events as they are.
pub fn implausible_times(event: &Event, now: Timestamp) -> Vec<String> {
    let mut found = Vec::new();
    let mut check = |field: &str, t: Option<Timestamp>| {
        let Some(t) = t else { return };
        let latest = now.0.saturating_add(MOST_AHEAD.as_nanos() as i64);
        let why = if t < EARLIEST_PLAUSIBLE {
            "before 2009-01-01"
        } else if t.0 > latest {
            "more than a day in the future"
        } else {
            return;
        };
        found.push(format!(
            "{} {} {field} = {} ({} ns since the epoch) is {why}: a time in the wrong unit? (the route's `time_unit`)",
            event.payload.data_type().as_str(),
            event.instrument.venue_instrument,
            t.to_rfc3339(),
            t.0
        ));
    };
    check("exchange_time", event.exchange_time);
    if let Payload::Funding(f) = &event.payload {
        check("next_funding_time", f.next_funding_time);
    }
    found
}

/// Map `frames` through `venue` and return the transcript (see module docs).
pub fn transcript(venue: &Venue, market: Option<&str>, frames: &str) -> (Vec<String>, Counts) {
    let (out, counts, _) = transcript_checked(venue, market, frames, Timestamp::now());
    (out, counts)
}

/// [`transcript`], plus a warning (`line N: ...`) for each mapped time
/// outside the plausible range ([`implausible_times`], `now` being the
/// clock). The warnings are not part of the transcript.
pub fn transcript_checked(
    venue: &Venue,
    market: Option<&str>,
    frames: &str,
    now: Timestamp,
) -> (Vec<String>, Counts, Vec<String>) {
    let mut warnings = Vec::new();
    let mut mapper = Mapper::new(
        venue.id.clone(),
        market.map(str::to_owned),
        Default::default(),
    );
    let mut out = Vec::new();
    let mut counts = Counts::default();
    let mut events = Vec::new();
    for (i, line) in frames.lines().enumerate() {
        let n = i + 1;
        let frame = match parse_frame_line(line) {
            FrameLine::Skip => continue,
            FrameLine::Frame(f) => f,
            FrameLine::Invalid(e) => {
                counts.errors += 1;
                out.push(marker(n, "error", serde_json::Value::String(e)));
                continue;
            }
        };
        counts.frames += 1;
        events.clear();
        let result = mapper.map(venue, frame.as_raw(), Timestamp(0), &mut events);
        if let Some(gap) = mapper.take_gap() {
            counts.gaps += 1;
            out.push(marker(n, "gap", gap.to_string().into()));
        }
        match result {
            Ok(Outcome::Data { .. }) if !events.is_empty() => {
                counts.events += events.len();
                for e in &events {
                    let found = implausible_times(e, now);
                    warnings.extend(found.into_iter().map(|w| format!("line {n}: {w}")));
                }
                out.extend(events.iter().map(to_json_line));
            }
            Ok(Outcome::Data { .. }) => out.push(marker(n, "events", 0.into())),
            Ok(Outcome::Control(c)) => {
                counts.control += 1;
                let mut m = format!("{{\"line\":{n},\"control\":\"{}\"", c.kind.as_str());
                for (key, value) in [("reply", c.reply), ("message", c.message)] {
                    if let Some(v) = value {
                        m.push_str(&format!(",\"{key}\":{}", serde_json::Value::String(v)));
                    }
                }
                m.push('}');
                out.push(m);
            }
            Ok(Outcome::Unrouted) => {
                counts.unrouted += 1;
                out.push(marker(n, "unrouted", true.into()));
            }
            Err(e) => {
                counts.errors += 1;
                out.push(marker(n, "error", e.to_string().into()));
            }
        }
    }
    counts.time_warnings = warnings.len();
    (out, counts, warnings)
}

/// The venue instruments whose events `frames` (one per line) carry, as
/// they map through `venue`: what a relay replaying them must subscribe to
/// (events of instruments a connection did not subscribe are not
/// published).
pub fn instruments_in(
    venue: &Venue,
    market: Option<&str>,
    frames: &str,
) -> std::collections::BTreeSet<String> {
    let mut mapper = Mapper::new(
        venue.id.clone(),
        market.map(str::to_owned),
        Default::default(),
    );
    let mut found = std::collections::BTreeSet::new();
    let mut events = Vec::new();
    for line in frames.lines() {
        if let FrameLine::Frame(f) = parse_frame_line(line) {
            events.clear();
            let _ = mapper.map(venue, f.as_raw(), Timestamp(0), &mut events);
            for e in &events {
                if !found.contains(&e.instrument.venue_instrument) {
                    found.insert(e.instrument.venue_instrument.clone());
                }
            }
        }
    }
    found
}

fn marker(line: usize, key: &str, value: serde_json::Value) -> String {
    format!("{{\"line\":{line},\"{key}\":{value}}}")
}

/// Options of one case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseOptions {
    /// The market the frames were recorded on.
    pub market: Option<String>,
}

/// `fixtures/<venue>/cases.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasesFile {
    /// Per fixture case (file stem).
    #[serde(default)]
    pub cases: BTreeMap<String, CaseOptions>,
    /// Per corpus capture (file stem, e.g. `capture-book`), for
    /// `mdrelay validate --captures`.
    #[serde(default)]
    pub captures: BTreeMap<String, CaptureOptions>,
}

/// Options of one corpus capture.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureOptions {
    /// The market the frames were recorded on.
    pub market: Option<String>,
    /// Frames mapped before the capture and not counted (e.g. the subscribe
    /// acks that assign channel ids), relative to the fixture folder.
    pub preamble: Option<String>,
}

/// Read `dir/cases.toml`; a missing file means no options.
pub fn read_cases_file(dir: &Path) -> Result<CasesFile, String> {
    let path = dir.join("cases.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(_) => Ok(CasesFile::default()),
    }
}

/// The result of one case.
#[derive(Debug)]
pub struct CaseReport {
    /// Case name (file stem).
    pub name: String,
    /// What the frames produced.
    pub counts: Counts,
    /// A readable diff when the output differs from the expected file.
    pub mismatch: Option<String>,
    /// Whether the expected file was (re)written.
    pub blessed: bool,
    /// Mapped times outside the plausible range, `line N: ...` (printed,
    /// not failures).
    pub warnings: Vec<String>,
}

/// The result of one venue's cases.
#[derive(Debug)]
pub struct VenueReport {
    /// The venue id.
    pub venue: String,
    /// Per case.
    pub cases: Vec<CaseReport>,
    /// Problems reading the fixtures themselves.
    pub problems: Vec<String>,
}

/// Run every case of `venue` found in `dir` (`fixtures/<venue>`).
pub fn run_venue(venue: &Venue, dir: &Path, bless: bool) -> VenueReport {
    let mut report = VenueReport {
        venue: venue.id.to_string(),
        cases: Vec::new(),
        problems: Vec::new(),
    };
    let options = read_cases_file(dir).unwrap_or_else(|e| {
        report.problems.push(e);
        CasesFile::default()
    });
    for path in case_files(dir) {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let market = options.cases.get(&name).and_then(|o| o.market.as_deref());
        match run_case(venue, &path, market, bless) {
            Ok(c) => report.cases.push(c),
            Err(e) => report.problems.push(e),
        }
    }
    for name in options.cases.keys() {
        if !dir.join(format!("{name}.jsonl")).exists() {
            report.problems.push(format!(
                "cases.toml names `{name}` but {name}.jsonl does not exist"
            ));
        }
    }
    report
}

/// The frame files of a fixture directory, sorted.
pub fn case_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        name.ends_with(".jsonl") && !name.ends_with(".expected.jsonl")
    });
    files.sort();
    files
}

fn run_case(
    venue: &Venue,
    path: &Path,
    market: Option<&str>,
    bless: bool,
) -> Result<CaseReport, String> {
    let frames = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (got, counts, warnings) = transcript_checked(venue, market, &frames, Timestamp::now());
    let expected_path = path.with_extension("expected.jsonl");
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    let mut text = got.join("\n");
    text.push('\n');
    if bless {
        std::fs::write(&expected_path, &text)
            .map_err(|e| format!("{}: {e}", expected_path.display()))?;
        return Ok(CaseReport {
            name,
            counts,
            mismatch: None,
            blessed: true,
            warnings,
        });
    }
    let mismatch = match std::fs::read_to_string(&expected_path) {
        Ok(want) => diff(&want.lines().collect::<Vec<_>>(), &got),
        Err(_) => Some(format!(
            "missing {} (run with --bless to create it)",
            expected_path.display()
        )),
    };
    Ok(CaseReport {
        name,
        counts,
        mismatch,
        blessed: false,
        warnings,
    })
}

/// A short line diff: the first differences, with line numbers.
pub(crate) fn diff(want: &[&str], got: &[String]) -> Option<String> {
    if want.len() == got.len() && want.iter().zip(got).all(|(a, b)| a == b) {
        return None;
    }
    let mut out = String::new();
    let mut shown = 0;
    for i in 0..want.len().max(got.len()) {
        let (a, b) = (want.get(i).copied(), got.get(i).map(String::as_str));
        if a != b {
            if shown == 8 {
                out.push_str("  ...\n");
                break;
            }
            shown += 1;
            if let Some(a) = a {
                out.push_str(&format!("  expected line {}: {a}\n", i + 1));
            }
            if let Some(b) = b {
                out.push_str(&format!("  actual   line {}: {b}\n", i + 1));
            }
        }
    }
    out.push_str(&format!(
        "  ({} expected lines, {} actual)",
        want.len(),
        got.len()
    ));
    Some(out)
}
