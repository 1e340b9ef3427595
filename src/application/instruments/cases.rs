//! Reference-data fixture cases: `fixtures/<venue>/reference/cases.toml`
//! lists recorded response bodies and the `[[reference]]` request each
//! answers; `<response stem>.expected.jsonl` holds the canonical records
//! the mapping must give (one JSON object per line), then the next page's
//! query (`{"next_page":{...}}`) when the mapping asks for one.

use std::path::Path;

use serde::Deserialize;

use super::map_page;
use crate::engine::venue::Venue;

/// `fixtures/<venue>/reference/cases.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    /// The cases.
    #[serde(default)]
    case: Vec<CaseEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseEntry {
    /// The response body file, relative to the folder.
    response: String,
    /// The `[[reference]]` request (by name) it answers.
    request: String,
}

/// One checked response.
#[derive(Debug)]
pub struct ReferenceCase {
    /// The response file.
    pub response: String,
    /// Records the mapping gave.
    pub records: usize,
    /// A readable difference from the expected records, or the error.
    pub mismatch: Option<String>,
    /// Whether the expected file was (re)written.
    pub blessed: bool,
}

/// Check (or with `bless`, write) every case in `dir`
/// (`fixtures/<venue>/reference`). Problems reading the folder are
/// returned as errors; a venue with `[[reference]]` but no cases is one.
pub fn run_reference_cases(
    venue: &Venue,
    dir: &Path,
    bless: bool,
) -> (Vec<ReferenceCase>, Vec<String>) {
    let mut problems = Vec::new();
    let path = dir.join("cases.toml");
    let file: CasesFile = match std::fs::read_to_string(&path) {
        Ok(t) => toml::from_str(&t).unwrap_or_else(|e| {
            problems.push(format!("{}: {e}", path.display()));
            CasesFile::default()
        }),
        Err(_) => CasesFile::default(),
    };
    if file.case.is_empty() && !venue.reference.is_empty() {
        problems.push(format!(
            "no reference-data cases in {} for the venue's [[reference]] requests",
            path.display()
        ));
    }
    let mut cases = Vec::new();
    for c in &file.case {
        let Some(req) = venue.reference.iter().find(|r| r.name == c.request) else {
            problems.push(format!(
                "{}: case `{}` names request `{}`, which the venue file does not declare",
                path.display(),
                c.response,
                c.request
            ));
            continue;
        };
        let body = match std::fs::read_to_string(dir.join(&c.response)) {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!("{}: {e}", dir.join(&c.response).display()));
                continue;
            }
        };
        let stem = c.response.trim_end_matches(".json");
        let expected = dir.join(format!("{stem}.expected.jsonl"));
        let (lines, count) = match map_page(venue, req, &body) {
            Ok(page) => {
                let mut lines: Vec<String> = page.records.iter().map(|r| r.to_json()).collect();
                if let Some(next) = page.next {
                    lines.push(serde_json::json!({ "next_page": next }).to_string());
                }
                (lines, page.records.len())
            }
            Err(e) => {
                cases.push(ReferenceCase {
                    response: c.response.clone(),
                    records: 0,
                    mismatch: Some(format!("  mapping failed: {e}")),
                    blessed: false,
                });
                continue;
            }
        };
        if bless {
            let mut text = lines.join("\n");
            text.push('\n');
            if let Err(e) = std::fs::write(&expected, text) {
                problems.push(format!("{}: {e}", expected.display()));
            }
        }
        let mismatch = if bless {
            None
        } else {
            match std::fs::read_to_string(&expected) {
                Ok(want) => {
                    crate::application::fixture::diff(&want.lines().collect::<Vec<_>>(), &lines)
                }
                Err(_) => Some(format!(
                    "  missing {} (run with --bless to create it)",
                    expected.display()
                )),
            }
        };
        let mismatch = match (mismatch, count) {
            (None, 0) => Some("  the mapping gave no instrument".to_owned()),
            (m, _) => m,
        };
        cases.push(ReferenceCase {
            response: c.response.clone(),
            records: count,
            mismatch,
            blessed: bless,
        });
    }
    (cases, problems)
}
