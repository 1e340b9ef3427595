//! The canonical market-data model: pure types, no I/O.
//!
//! Every venue's frames are mapped into these types. Prices and quantities are
//! [`rust_decimal::Decimal`] holding the venue's value exactly (never `f64`);
//! times are [`Timestamp`]s in nanoseconds since the Unix epoch. An [`Event`] is
//! one canonical message: an envelope (venue, instrument, times, deterministic
//! id) around a [`Payload`] of one [`DataType`].

mod data_type;
mod event;
mod instrument;
mod payload;
mod sequence;
mod subject;
mod symbol;
pub mod text;
mod time;

pub use data_type::{DataType, UnknownDataType};
pub use event::{Event, EventId, Instrument};
pub use instrument::{InstrumentKind, InstrumentRecord, OptionType, RECORD_KEYS, TradingStatus};
pub use payload::{
    BookKind, BookSnapshot, BookUpdate, DecimalText, FundingRate, Level, Liquidation, Payload,
    RelayMark, Side, Status, StatusState, Ticker, Trade, write_decimal,
};
pub use sequence::{SequenceCheck, SequenceRule};
pub use subject::subject_matches;
pub use symbol::{subject, subject_token};
pub use time::{HumanDuration, TimeUnit, Timestamp};
