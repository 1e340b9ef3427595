//! Tooling on the same engine, outside the relay's production path: the
//! long recorded sessions of the corpus (`captures`), `mdrelay record`
//! (`record`, the relay with a tap) and the fake venue server behind
//! `mdrelay replay` and the tests (`replay`). It builds on `application`;
//! nothing in `application` depends on it. (The fixture runner stays in
//! `application::fixture`: the reload gate runs it before applying a venue
//! file.)

pub mod captures;
pub mod record;
pub mod replay;
