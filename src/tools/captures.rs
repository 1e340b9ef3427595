//! Capture checks: map long recorded sessions (`capture-*.jsonl` in a
//! corpus directory laid out as `<corpus>/<venue>/capture-*.jsonl`) and count
//! what every frame became, per data type. A capture passes when no frame
//! fails to map. Used by `mdrelay validate --captures <dir>` and by the
//! `captures` integration test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::domain::{DataType, Timestamp};
use crate::engine::mapper::{Mapper, Outcome};
use crate::engine::venue::Venue;
use crate::serialization::frames::{FrameLine, parse_frame_line};

use crate::application::fixture::read_cases_file;

/// What one capture file turned into.
#[derive(Debug, Default, Clone)]
pub struct CaptureReport {
    /// The capture file.
    pub path: PathBuf,
    /// The market it was mapped as (from `fixtures/<venue>/cases.toml`).
    pub market: Option<String>,
    /// Frames read.
    pub frames: usize,
    /// Events per data type.
    pub events: BTreeMap<DataType, usize>,
    /// Control frames (acks, heartbeats, info, errors).
    pub control: usize,
    /// Frames no route or control rule matched.
    pub unrouted: usize,
    /// Frames that failed to map.
    pub errors: usize,
    /// Connection sequence gaps (`frames.sequence`): messages missing from
    /// the recording. Reported, not failures: the frames still map.
    pub gaps: usize,
    /// Up to five examples of failures.
    pub examples: Vec<String>,
}

impl CaptureReport {
    /// Total events.
    pub fn total_events(&self) -> usize {
        self.events.values().sum()
    }

    /// `trade 12, l2_orderbook 300`.
    pub fn per_type(&self) -> String {
        let parts: Vec<String> = self
            .events
            .iter()
            .map(|(t, n)| format!("{} {n}", t.as_str()))
            .collect();
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// The capture files of `venue` under `corpus` (sorted).
pub fn capture_files(corpus: &Path, venue: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus.join(venue))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        name.starts_with("capture-") && name.ends_with(".jsonl")
    });
    files.sort();
    files
}

/// Map every capture of `venue`. `fixtures` is the venue's fixture folder,
/// whose `cases.toml` may set `[captures.<file stem>] market = "..."`.
pub fn check_venue(
    venue: &Venue,
    corpus: &Path,
    fixtures: &Path,
) -> Result<Vec<CaptureReport>, String> {
    let cases = read_cases_file(fixtures)?;
    let mut out = Vec::new();
    for path in capture_files(corpus, &venue.id) {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let options = cases.captures.get(stem);
        let market = options.and_then(|o| o.market.clone());
        let read =
            |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        let preamble = match options.and_then(|o| o.preamble.as_deref()) {
            Some(p) => read(&fixtures.join(p))?,
            None => String::new(),
        };
        let text = read(&path)?;
        let mut report = check_text(venue, market.as_deref(), &preamble, &text);
        report.path = path;
        report.market = market;
        out.push(report);
    }
    Ok(out)
}

/// Map the frames of `text` (one per line), after those of `preamble`
/// (not counted), and count the outcomes.
pub fn check_text(
    venue: &Venue,
    market: Option<&str>,
    preamble: &str,
    text: &str,
) -> CaptureReport {
    let mut mapper = Mapper::new(
        venue.id.clone(),
        market.map(str::to_owned),
        Default::default(),
    );
    let mut report = CaptureReport::default();
    let mut events = Vec::new();
    for line in preamble.lines() {
        if let FrameLine::Frame(f) = parse_frame_line(line) {
            let _ = mapper.map(venue, f.as_raw(), Timestamp(0), &mut events);
            let _ = mapper.take_gap();
            events.clear();
        }
    }
    for (i, line) in text.lines().enumerate() {
        let frame = match parse_frame_line(line) {
            FrameLine::Skip => continue,
            FrameLine::Frame(f) => f,
            FrameLine::Invalid(e) => {
                report.fail(i + 1, &e);
                continue;
            }
        };
        report.frames += 1;
        events.clear();
        let result = mapper.map(venue, frame.as_raw(), Timestamp(0), &mut events);
        report.gaps += usize::from(mapper.take_gap().is_some());
        match result {
            Ok(Outcome::Data { .. }) => {
                for e in &events {
                    *report.events.entry(e.data_type()).or_default() += 1;
                }
            }
            Ok(Outcome::Control(_)) => report.control += 1,
            Ok(Outcome::Unrouted) => report.unrouted += 1,
            Err(e) => report.fail(i + 1, &e.to_string()),
        }
    }
    report
}

impl CaptureReport {
    fn fail(&mut self, line: usize, reason: &str) {
        self.errors += 1;
        if self.examples.len() < 5 {
            let mut r = reason.to_owned();
            if r.len() > 200 {
                let mut cut = 200;
                while !r.is_char_boundary(cut) {
                    cut -= 1;
                }
                r.truncate(cut);
                r.push('…');
            }
            self.examples.push(format!("line {line}: {r}"));
        }
    }
}
