//! Venue definition files: `venues/<id>.toml` → [`crate::engine::venue::Venue`].
//!
//! See `docs/venue-format.md` for the reference of every field.

mod compile;
mod fingerprint;
pub mod raw;
pub mod reference;
mod routes;

pub use compile::{compile_venue, load_venue, load_venues_dir};
