//! What `mdrelay bench` replays: the feeds of `benches/data/feeds.toml`
//! blasted at full speed, and every other venue file streaming its recorded
//! fixtures slowly in the background.

use std::path::Path;

use anyhow::Context;

/// One replayed feed (`benches/data/feeds.toml`).
#[derive(Debug, serde::Deserialize)]
pub(super) struct Feed {
    pub(super) venue: String,
    pub(super) files: Vec<String>,
    pub(super) types: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct FeedsFile {
    pub(super) feeds: Vec<Feed>,
    #[serde(default)]
    pub(super) background: Option<Background>,
}

/// Every other venue file, loaded and streaming its fixtures slowly, so
/// that peak RSS covers all venues.
#[derive(Debug, serde::Deserialize)]
pub(super) struct Background {
    /// Frames per second per venue.
    pub(super) rate: f64,
}

pub(super) fn feeds_file(root: &Path) -> anyhow::Result<FeedsFile> {
    let path = root.join("benches/data/feeds.toml");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    toml::from_str::<FeedsFile>(&text).with_context(|| path.display().to_string())
}

/// The feeds the benchmark replays, from `benches/data/feeds.toml`.
pub(super) fn feeds(root: &Path) -> anyhow::Result<Vec<Feed>> {
    Ok(feeds_file(root)?.feeds)
}

/// A background venue: its id, its first market (if it has several), and
/// the fixture files it replays.
pub(super) struct BackgroundVenue {
    pub(super) id: String,
    pub(super) market: Option<String>,
    /// The data types offered (on that market).
    pub(super) types: Vec<&'static str>,
    pub(super) files: Vec<std::path::PathBuf>,
}

/// Every venue file without a feed, with its recorded fixtures (derived
/// `malformed` cases left out).
pub(super) fn background_venues(root: &Path) -> anyhow::Result<Vec<BackgroundVenue>> {
    let featured: Vec<String> = feeds(root)?.into_iter().map(|f| f.venue).collect();
    let (venues, _) = crate::config::venue::load_venues_dir(&root.join("venues"));
    let mut out = Vec::new();
    for (id, v) in venues {
        if featured.contains(&id) {
            continue;
        }
        let dir = root.join("fixtures").join(&id);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.ends_with(".jsonl") && !n.ends_with(".expected.jsonl") && !n.starts_with("malformed")
        });
        files.sort();
        if files.is_empty() {
            continue;
        }
        let market = (v.markets.len() > 1)
            .then(|| v.markets.keys().next().cloned())
            .flatten();
        let types = v
            .channels
            .iter()
            .filter(|(_, ch)| {
                market
                    .as_ref()
                    .is_none_or(|m| ch.markets.is_empty() || ch.markets.contains(m))
            })
            .map(|(t, _)| t.as_str())
            .collect();
        out.push(BackgroundVenue {
            id,
            market,
            types,
            files,
        });
    }
    Ok(out)
}
