//! The fixture gate as a test: every venue file compiles and every fixture
//! case reproduces its expected output exactly (`mdrelay validate`).

use std::path::Path;

use mdrelay::application::fixture::run_venue;
use mdrelay::config::venue::load_venues_dir;

#[test]
fn every_venue_compiles_and_matches_its_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (venues, problems) = load_venues_dir(&root.join("venues"));
    assert!(
        problems.is_empty(),
        "venue files do not compile:\n{problems:#?}"
    );
    assert!(
        venues.len() >= 3,
        "expected the shipped venues, found {}",
        venues.len()
    );
    let mut failures = Vec::new();
    for (id, venue) in &venues {
        let report = run_venue(venue, &root.join("fixtures").join(id), false);
        if report.cases.is_empty() {
            failures.push(format!("{id}: no fixture cases"));
        }
        failures.extend(report.problems.iter().map(|p| format!("{id}: {p}")));
        for case in &report.cases {
            if let Some(m) = &case.mismatch {
                failures.push(format!("{id}/{}: output differs\n{m}", case.name));
            }
            // `control` and `unmapped` cases hold frames that must give no
            // event (acks, heartbeats, data the venue file leaves out on purpose).
            if case.name == "malformed" && case.counts.errors == 0 {
                failures.push(format!("{id}/malformed: reported no frame error"));
            }
            if case.counts.events == 0
                && !matches!(case.name.as_str(), "control" | "unmapped" | "malformed")
            {
                failures.push(format!("{id}/{}: produced no events", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
