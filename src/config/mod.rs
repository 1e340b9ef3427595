//! Configuration: venue definition files and the relay config.
//!
//! Both are compiled in two stages. Stage one reads TOML into raw types that
//! mirror the file (serde + schemars, `deny_unknown_fields`, every field
//! documented); each top-level section, and each element of an array of
//! tables, is read on its own so that one mistake does not hide the next.
//! Stage two checks the raw values and builds the typed plan the engine runs
//! (jq compiled, durations typed, names resolved). Every problem found in
//! either stage is collected with its file, line, column and field path, and
//! all of them are reported together ([`Problems`]).

mod env;
mod problems;
pub mod relay;
mod secret;
mod source;
mod types;
pub mod venue;

pub use problems::{ConfigError, Problem, Problems};
pub use secret::{Secret, redact_url};
pub use types::{Dur, Expect, Jq};

/// The JSON Schemas of the config files, as (file name, pretty JSON text).
pub fn schemas() -> Vec<(&'static str, String)> {
    let venue = schemars::schema_for!(venue::raw::VenueFile);
    let relay = schemars::schema_for!(relay::raw::RelayFile);
    let pretty = |s: &schemars::Schema| {
        let mut t = serde_json::to_string_pretty(s).expect("schemas serialize");
        t.push('\n');
        t
    };
    vec![
        ("venue.schema.json", pretty(&venue)),
        ("relay.schema.json", pretty(&relay)),
    ]
}
