//! Every long recorded session (`capture-*.jsonl`) in the shared corpus maps
//! with zero failures through its venue file (`mdrelay validate --captures`).
//!
//! The corpus lives outside the repository (`../shared/corpus`, or the
//! directory in `MDRELAY_CORPUS`). Where it is absent the test says so and
//! checks nothing; set `MDRELAY_REQUIRE_CORPUS=1` to make that a failure.

use std::path::{Path, PathBuf};

use mdrelay::config::venue::load_venues_dir;
use mdrelay::tools::captures::check_venue;

fn corpus() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("MDRELAY_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/corpus"));
    dir.join("MANIFEST.md").exists().then_some(dir)
}

#[test]
fn every_corpus_capture_maps_without_failures() {
    let Some(corpus) = corpus() else {
        assert!(
            std::env::var_os("MDRELAY_REQUIRE_CORPUS").is_none(),
            "MDRELAY_REQUIRE_CORPUS is set but no corpus was found"
        );
        eprintln!("no corpus at ../shared/corpus or $MDRELAY_CORPUS: captures not checked");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (venues, problems) = load_venues_dir(&root.join("venues"));
    assert!(problems.is_empty(), "{problems:#?}");
    let mut failures = Vec::new();
    let mut files = 0;
    let mut frames = 0;
    for (id, venue) in &venues {
        let reports = check_venue(venue, &corpus, &root.join("fixtures").join(id))
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        for r in reports {
            files += 1;
            frames += r.frames;
            eprintln!(
                "{id} {}: {} frames -> {} events ({}), control {}, unrouted {}, errors {}",
                r.path.display(),
                r.frames,
                r.total_events(),
                r.per_type(),
                r.control,
                r.unrouted,
                r.errors
            );
            if r.errors > 0 {
                failures.push(format!(
                    "{id} {}: {} of {} frames failed: {:?}",
                    r.path.display(),
                    r.errors,
                    r.frames,
                    r.examples
                ));
            }
            if r.frames > 0 && r.total_events() == 0 {
                failures.push(format!("{id} {}: no events at all", r.path.display()));
            }
        }
    }
    eprintln!("{files} capture files, {frames} frames");
    assert!(files > 0, "the corpus has no capture for any shipped venue");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
