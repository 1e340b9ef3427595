//! `--venue` and `--market` as every command takes them: a venue is named
//! by its id (`okx`, the file `<venues dir>/okx.toml`) or by a venue file
//! path (`venues/okx.toml`); an unknown one is an error that lists the
//! known ones, never a silent no-op.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::engine::venue::Venue;

/// The venue file for `arg`: a path (it contains `/` or ends in `.toml`)
/// that must exist, or an id that must have a file in `venues_dir`.
pub fn venue_file(arg: &str, venues_dir: &Path) -> anyhow::Result<PathBuf> {
    if arg.contains('/') || arg.contains('\\') || arg.ends_with(".toml") {
        let path = PathBuf::from(arg);
        if !path.is_file() {
            bail!("no venue file `{arg}`");
        }
        return Ok(path);
    }
    let path = venues_dir.join(format!("{arg}.toml"));
    if path.is_file() {
        return Ok(path);
    }
    let known = venue_ids(venues_dir);
    if known.is_empty() {
        bail!(
            "unknown venue `{arg}`: no venue files in {}",
            venues_dir.display()
        );
    }
    bail!(
        "unknown venue `{arg}` (no {}); known venues: {}",
        path.display(),
        known.join(", ")
    )
}

/// The venue ids of `dir` (the stems of its `*.toml` files), sorted.
pub fn venue_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Check `--market` against the venue's markets, as the relay config is
/// checked: required and known when the venue has several, absent when it
/// has none.
pub fn check_market(venue: &Venue, market: Option<&str>) -> anyhow::Result<()> {
    let known = || venue.markets.keys().cloned().collect::<Vec<_>>().join(", ");
    match (market, venue.markets.is_empty()) {
        (Some(m), true) => bail!("venue `{}` has no markets (drop `--market {m}`)", venue.id),
        (Some(m), false) if !venue.markets.contains_key(m) => bail!(
            "unknown market `{m}` of venue `{}`; its markets: {}",
            venue.id,
            known()
        ),
        (None, false) => bail!(
            "venue `{}` has several markets: say which with --market ({})",
            venue.id,
            known()
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venues() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("venues")
    }

    #[test]
    fn ids_and_paths_name_the_same_file() {
        let by_id = venue_file("okx", &venues()).unwrap();
        assert_eq!(by_id, venues().join("okx.toml"));
        let path = venues().join("okx.toml");
        assert_eq!(
            venue_file(path.to_str().unwrap(), Path::new("x")).unwrap(),
            path
        );
    }

    #[test]
    fn unknown_venues_are_errors_listing_the_known_ones() {
        let e = venue_file("nosuch", &venues()).unwrap_err().to_string();
        assert!(
            e.contains("unknown venue `nosuch`") && e.contains("okx"),
            "{e}"
        );
        let e = venue_file("venues/nosuch.toml", &venues())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no venue file"), "{e}");
    }

    #[test]
    fn markets_are_checked() {
        let load = |id: &str| {
            crate::config::venue::load_venue(&venues().join(format!("{id}.toml"))).unwrap()
        };
        let bybit = load("bybit");
        assert!(check_market(&bybit, Some("spot")).is_ok());
        let e = check_market(&bybit, Some("spott")).unwrap_err().to_string();
        assert!(
            e.contains("unknown market `spott`") && e.contains("spot"),
            "{e}"
        );
        assert!(check_market(&bybit, None).is_err());
        let okx = load("okx");
        assert!(check_market(&okx, None).is_ok());
        assert!(check_market(&okx, Some("spot")).is_err());
    }
}
