//! The NATS side of a consumer's book: join from the last snapshot, replay
//! the instrument's stream through a [`BookTracker`], and rejoin from a newer
//! snapshot when the book turned stale.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream::Stream};
use async_nats::{Client, Subscriber};
use futures_util::StreamExt;

use super::fetch::{last_in, stream_for};
use super::tracker::{BookTracker, SyncState, Verdict};
use super::{ClientError, Fetched, Subjects};
use crate::domain::{DataType, Event};
use crate::engine::book::LocalBook;
use crate::serialization::decode;

/// How a book is joined and followed.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// How long before the snapshot's store time the replay starts. The
    /// relay queues snapshots and deltas to different publishers, so a delta
    /// produced just after the snapshot may be stored before it; a replay
    /// starting too late shows up as a hole (stale, then the next snapshot).
    pub lookback: Duration,
    /// While stale, how often the last snapshot is checked for a newer one
    /// (a new snapshot's publication is also noticed at once).
    pub stale_poll: Duration,
    /// How long [`BookFeed::join`] waits for a first snapshot when the book
    /// has none yet (zero: fail at once with [`ClientError::NoSnapshot`]).
    pub wait: Duration,
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            lookback: Duration::from_secs(1),
            stale_poll: Duration::from_secs(1),
            wait: Duration::ZERO,
        }
    }
}

/// What [`BookFeed::next`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A delta was applied (levels changed).
    Applied(usize),
    /// The book was replaced by a snapshot (the venue's, in the stream).
    Reset,
    /// The book was replaced by a newer `l2_snapshot` after being stale; it
    /// is `Resyncing` until the replay catches up.
    Rejoined,
    /// The book is no longer right, for this reason.
    Stale(String),
    /// The replay reached the end of the stream: the book is consistent and
    /// follows the live stream.
    Synced,
    /// A message that could not be decoded, or not of its subject's type:
    /// counted, skipped.
    BadPayload(String),
}

/// Counters of the NATS side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Messages that could not be used (see [`Change::BadPayload`]).
    pub bad_payloads: u64,
    /// The last such problem.
    pub last_bad: Option<String>,
    /// Joins from a newer snapshot after the book turned stale.
    pub rejoins: u64,
    /// Messages of the instrument's other data types, skipped.
    pub other: u64,
}

/// One book, joined and followed.
pub struct BookFeed {
    client: Client,
    subjects: Subjects,
    snapshots: Stream,
    market: Stream,
    replay: Replay,
    notify: Subscriber,
    poll: tokio::time::Interval,
    tracker: BookTracker,
    /// Snapshot-stream sequence of the snapshot joined from.
    joined: u64,
    opts: JoinOptions,
    stats: FeedStats,
    /// A change to report before reading on.
    queued: Option<Change>,
}

impl std::fmt::Debug for BookFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookFeed")
            .field("subjects", &self.subjects)
            .field("state", &self.tracker.state())
            .field("position", &self.tracker.position())
            .field("stats", &self.stats)
            .finish()
    }
}

impl BookFeed {
    /// Join `venue`'s book of `symbol` (a subject token such as `btc-usdt`,
    /// or a canonical symbol such as `BTC/USDT`): fetch its last snapshot and
    /// start the replay. The book is [`SyncState::Resyncing`] until
    /// [`Change::Synced`].
    pub async fn join(
        client: &Client,
        venue: &str,
        symbol: &str,
        opts: JoinOptions,
    ) -> Result<BookFeed, ClientError> {
        let js = jetstream::new(client.clone());
        let subjects = Subjects::new(venue, symbol);
        // Independent requests: in parallel.
        let (snapshots, market, notify) = tokio::join!(
            stream_for(&js, &subjects.snapshot),
            stream_for(&js, &subjects.book),
            client.subscribe(subjects.snapshot.clone()),
        );
        let (snapshots, market) = (snapshots?, market?);
        let mut notify = notify.map_err(|e| ClientError::JetStream(format!("subscribing: {e}")))?;
        let fetched = first_snapshot(&snapshots, &subjects, &mut notify, opts.wait).await?;
        let tracker = BookTracker::from_snapshot(fetched.snapshot(), fetched.event.receive_time);
        let replay = Replay::start(&market, &subjects, &fetched, &opts).await?;
        let caught_up = replay.caught_up();
        let mut poll = tokio::time::interval(opts.stale_poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut feed = BookFeed {
            client: client.clone(),
            subjects,
            snapshots,
            market,
            replay,
            notify,
            poll,
            tracker,
            joined: fetched.sequence,
            opts,
            stats: FeedStats::default(),
            queued: None,
        };
        if caught_up && feed.tracker.caught_up() {
            feed.queued = Some(Change::Synced);
        }
        Ok(feed)
    }

    /// Wait for the next change to the book (events that change nothing are
    /// consumed silently). Errors are the connection's; the feed goes on
    /// after them where it can.
    pub async fn next(&mut self) -> Result<Change, ClientError> {
        loop {
            if let Some(c) = self.queued.take() {
                return Ok(c);
            }
            let stale = self.tracker.state() == SyncState::Stale;
            tokio::select! {
                m = self.replay.next() => {
                    let m = match m {
                        None => return Err(ClientError::Closed(self.subjects.instrument.clone())),
                        Some(Err(e)) => return Err(ClientError::JetStream(format!("replay: {e}"))),
                        Some(Ok(m)) => m,
                    };
                    let change = self.on_message(&m);
                    if self.replay.caught_up() && self.tracker.caught_up() {
                        if change.is_none() {
                            return Ok(Change::Synced);
                        }
                        self.queued = Some(Change::Synced);
                    }
                    if let Some(c) = change {
                        return Ok(c);
                    }
                }
                _ = self.notify.next(), if stale => {
                    if let Some(c) = self.rejoin().await? {
                        return Ok(c);
                    }
                }
                _ = self.poll.tick(), if stale => {
                    if let Some(c) = self.rejoin().await? {
                        return Ok(c);
                    }
                }
            }
        }
    }

    /// One replayed message through the tracker.
    fn on_message(&mut self, m: &async_nats::Message) -> Option<Change> {
        let subject = m.subject.as_str();
        let want = if subject == self.subjects.book {
            DataType::L2Orderbook
        } else if subject == self.subjects.status {
            DataType::Status
        } else {
            self.stats.other += 1;
            return None;
        };
        let ct = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Content-Type"))
            .map(|v| v.as_str());
        let ev = match decode(ct, &m.payload) {
            Ok(ev) if ev.data_type() == want => ev,
            Ok(ev) => {
                return Some(self.bad(format!("a {} event on `{subject}`", ev.data_type())));
            }
            Err(e) => return Some(self.bad(format!("`{subject}`: {e}"))),
        };
        self.apply(&ev)
    }

    /// Feed a decoded event of the instrument to the book.
    fn apply(&mut self, ev: &Event) -> Option<Change> {
        match self.tracker.on_event(ev) {
            Verdict::Applied(n) => Some(Change::Applied(n)),
            Verdict::Reset => Some(Change::Reset),
            Verdict::Stale(r) => Some(Change::Stale(r)),
            Verdict::Contained | Verdict::Ignored => None,
        }
    }

    fn bad(&mut self, what: String) -> Change {
        self.stats.bad_payloads += 1;
        self.stats.last_bad = Some(what.clone());
        Change::BadPayload(what)
    }

    /// Stale: join again from the last snapshot if it is newer than the one
    /// joined from, and taken after what made the book stale (snapshots and
    /// status events go through different publishers, so a snapshot stored
    /// later may have been taken before the gap).
    async fn rejoin(&mut self) -> Result<Option<Change>, ClientError> {
        let fetched = last_in(&self.snapshots, &self.subjects.snapshot).await?;
        if fetched.sequence <= self.joined
            || self
                .tracker
                .stale_since()
                .is_some_and(|t| fetched.event.receive_time <= t)
        {
            return Ok(None);
        }
        self.replay = Replay::start(&self.market, &self.subjects, &fetched, &self.opts).await?;
        self.tracker
            .reset_to(fetched.snapshot(), fetched.event.receive_time);
        self.joined = fetched.sequence;
        self.stats.rejoins += 1;
        if self.replay.caught_up() && self.tracker.caught_up() {
            self.queued = Some(Change::Synced);
        }
        Ok(Some(Change::Rejoined))
    }

    /// The book and its position.
    pub fn tracker(&self) -> &BookTracker {
        &self.tracker
    }

    /// The book.
    pub fn book(&self) -> &LocalBook {
        self.tracker.book()
    }

    /// Whether the book can be trusted.
    pub fn state(&self) -> SyncState {
        self.tracker.state()
    }

    /// Counters of bad payloads, rejoins and skipped messages.
    pub fn stats(&self) -> &FeedStats {
        &self.stats
    }

    /// The book's subjects.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// The NATS client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// The last snapshot; when there is none yet, wait up to `wait` for one.
async fn first_snapshot(
    snapshots: &Stream,
    subjects: &Subjects,
    notify: &mut Subscriber,
    wait: Duration,
) -> Result<Fetched, ClientError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match last_in(snapshots, &subjects.snapshot).await {
            Err(ClientError::NoSnapshot { .. }) if tokio::time::Instant::now() < deadline => {
                // Published now, or stored while we subscribed: look again.
                let poll = tokio::time::Instant::now() + Duration::from_millis(500);
                let _ = tokio::time::timeout_at(poll.min(deadline), notify.next()).await;
            }
            other => return other,
        }
    }
}

/// The replay of an instrument's book and status subjects: two ordered
/// consumers (one filter subject each works on every JetStream server),
/// read as they come. Their relative order does not matter: a status event
/// is placed by its time (see [`BookTracker`]), book events by their ids or
/// marks.
struct Replay {
    book: consumer::pull::Ordered,
    status: consumer::pull::Ordered,
    /// Each consumer has delivered everything stored when it was created.
    done: [bool; 2],
}

impl Replay {
    /// Both consumers, from `lookback` before `snapshot` was stored.
    async fn start(
        market: &Stream,
        subjects: &Subjects,
        snapshot: &Fetched,
        opts: &JoinOptions,
    ) -> Result<Replay, ClientError> {
        let lookback = i64::try_from(opts.lookback.as_nanos()).unwrap_or(i64::MAX);
        let nanos = i128::from(snapshot.stored.0.saturating_sub(lookback));
        let start = consumer::DeliverPolicy::ByStartTime {
            start_time: async_nats::datetime::from_nanos(nanos)
                .map_err(|e| ClientError::JetStream(format!("start time: {e}")))?,
        };
        let (book, status) = tokio::join!(
            ordered(market, &subjects.book, start),
            ordered(market, &subjects.status, start)
        );
        let ((book, book_done), (status, status_done)) = (book?, status?);
        Ok(Replay {
            book,
            status,
            done: [book_done, status_done],
        })
    }

    /// Whether both consumers reached the end of what was stored.
    fn caught_up(&self) -> bool {
        self.done == [true, true]
    }

    /// The next message of either.
    async fn next(&mut self) -> Option<Result<jetstream::Message, consumer::pull::OrderedError>> {
        let (m, i) = tokio::select! {
            m = self.book.next() => (m, 0),
            m = self.status.next() => (m, 1),
        };
        if let Some(Ok(m)) = &m
            && m.info().is_ok_and(|info| info.pending == 0)
        {
            self.done[i] = true;
        }
        m
    }
}

/// An ordered consumer of `subject` from `start`; whether it has nothing to
/// deliver.
async fn ordered(
    market: &Stream,
    subject: &str,
    start: consumer::DeliverPolicy,
) -> Result<(consumer::pull::Ordered, bool), ClientError> {
    let err =
        |e: &dyn std::fmt::Display| ClientError::JetStream(format!("replay of `{subject}`: {e}"));
    let consumer = market
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject.to_owned(),
            deliver_policy: start,
            ..Default::default()
        })
        .await
        .map_err(|e| err(&e))?;
    // As the server answered the creation.
    let empty = consumer.cached_info().num_pending == 0;
    let messages = consumer.messages().await.map_err(|e| err(&e))?;
    Ok((messages, empty))
}
