//! Order-book integrity, as data: the sequence rule that links one update to
//! the previous one, the local book the relay maintains per instrument, and
//! the checksum the venue publishes over it. The rules come from the venue
//! file's `[book]` section; this module only provides the mechanisms.
//!
//! - `local`: one instrument's book (levels, top-N, full depth);
//! - `checksum`: the venue checksum layouts;
//! - `keeper`: the per-connection [`BookKeeper`] that applies a venue's
//!   rules to each instrument's updates (sequence, checksum, REST
//!   bootstrap, gaps) and keeps the full-depth snapshots (`keeper::snapshots`).

mod checksum;
mod keeper;
mod local;

pub use crate::domain::{SequenceCheck, SequenceRule};
pub use checksum::{ChecksumLayout, ChecksumMode, ChecksumNumbers, ChecksumSpec, Scales};
pub use keeper::{BookDrop, BookKeeper, Refetch, Step};
pub use local::LocalBook;
