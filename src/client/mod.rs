//! A consumer of the relay's output, for downstream Rust programs: join a
//! book at any moment and follow it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mdrelay::client::ClientError> {
//! let nats = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
//! let mut feed = mdrelay::client::BookFeed::join(&nats, "okx", "btc-usdt", Default::default()).await?;
//! loop {
//!     let change = feed.next().await?;
//!     if feed.state() == mdrelay::client::SyncState::Synced {
//!         let (bid, ask) = feed.tracker().best();
//!         println!("{change:?}: {bid:?} / {ask:?}");
//!     }
//! }
//! # }
//! ```
//!
//! How a join works (docs/consumers.md has the whole contract):
//! 1. fetch the last `l2_snapshot` of the book (JetStream direct get, or
//!    "last message for subject" when the stream does not allow direct
//!    reads);
//! 2. replay the instrument's subjects from a little before that snapshot was
//!    stored (an ordered consumer), skipping the book events it already
//!    contains — snapshots and deltas come from different publisher queues,
//!    so their store order is not their production order;
//! 3. apply the deltas that follow, checking that each continues the one
//!    before (the venue's update ids with its sequence rule, or the relay's
//!    marks); a hole, or a `gap` / `disconnected` status event, turns the book
//!    stale; the venue's next snapshot in the stream, or the relay's next
//!    `l2_snapshot`, recovers it.
//!
//! - [`BookTracker`]: the book and its position, as a pure state machine;
//! - [`BookFeed`]: the NATS side (join, replay, recovery);
//! - [`last_snapshot`], [`last_snapshots`]: fetching snapshots, one or many
//!   (many with JetStream's batch direct get on servers 2.11 and later).

mod batch_get;
mod feed;
mod fetch;
mod tracker;

pub use feed::{BookFeed, Change, FeedStats, JoinOptions};
pub use fetch::{Fetched, Subjects, last_snapshot, last_snapshots, token_of};
pub use tracker::{BookTracker, Position, SyncState, TrackerStats, Verdict};

/// Why a book cannot be joined or followed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No JetStream stream captures the subject.
    #[error(
        "no JetStream stream captures `{subject}` (is this the relay's NATS, and does its config declare the streams? docs/consumers.md)"
    )]
    NoStream {
        /// The subject.
        subject: String,
    },
    /// The book has no snapshot.
    #[error(
        "no snapshot on `{subject}`: the relay has published none for this book (check the venue and symbol, that the relay runs, and that the subscription has `book_snapshot`)"
    )]
    NoSnapshot {
        /// The snapshot subject.
        subject: String,
    },
    /// The stored snapshot cannot be used.
    #[error("the snapshot on `{subject}` cannot be read: {reason}")]
    BadSnapshot {
        /// The snapshot subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A JetStream request failed (NATS unreachable, timeout, refused).
    #[error("JetStream: {0}")]
    JetStream(String),
    /// The replay of the book's stream ended (the connection closed).
    #[error("the replay of `{0}` ended")]
    Closed(String),
}
