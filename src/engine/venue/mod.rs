//! A compiled venue: everything the engine and the runtime need to know about
//! one venue, built from its TOML file by [`crate::config::venue`].
//!
//! A venue is a value: nothing in the engine branches on which venue it is.

mod field;
mod plan;
mod reference;
mod report;

pub use field::{Field, FieldSpec, FieldType, fields_for};
pub(crate) use plan::holds;
pub use plan::{
    Batch, BookRules, BookSync, Bootstrap, Channel, Compression, Connection, ControlKind,
    ControlRule, Dispatch, FirstDelta, Frames, Heartbeat, LevelMemory, Market, RestSnapshot, Route,
    ScaleSource, SnapshotAlign, Subscribe, Symbols, Venue,
};
pub use reference::{ReferenceRequest, RestRules};
pub use report::{Interpreted, interpreted};
