//! Order-book integrity, as data: the sequence rule that links one update to
//! the previous one, the local book the relay maintains per instrument, and
//! the checksum the venue publishes over it. The rules come from the venue
//! file's `[book]` section; this module only provides the mechanisms.

mod checksum;
mod local;

pub use crate::domain::{SequenceCheck, SequenceRule};
pub use checksum::{ChecksumLayout, ChecksumMode, ChecksumNumbers, ChecksumSpec, Scales};
pub use local::LocalBook;
