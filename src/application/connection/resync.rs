//! The pipeline's book side that is not a frame: starting the books of a
//! session (REST snapshots, checksum scales), what arrives over REST,
//! resyncing one instrument after a gap, and the periodic top-N and
//! full-depth snapshots. Still synchronous: requests go out as
//! [`Effects`], the loop makes them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::error::SessionError;
use super::fetch::{Fetch, Fetched};
use super::messages::{instrument_url, scales_result};
use super::pipeline::{Effects, FetchRequest, FramePipeline};
use super::with_origin;
use crate::application::subscribe::{Item, subscribe_messages};
use crate::domain::{DataType, Instrument, StatusState, Timestamp};
use crate::infrastructure::logs::{clip, truncate};

/// How long to wait before retrying a failed REST request.
pub(super) const RETRY: Duration = Duration::from_secs(1);

impl FramePipeline<'_> {
    /// The instruments this connection subscribed for books.
    pub(super) fn book_instruments(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .plan
            .items
            .iter()
            .filter(|i| i.data_type == DataType::L2Orderbook)
            .map(|i| i.instrument.clone())
            .collect();
        v.dedup();
        v
    }

    /// After subscribing: REST-bootstrapped books buffer their deltas and
    /// fetch a snapshot; checksum scales are fetched where needed; top-N
    /// and full-depth snapshots start being kept.
    pub(super) fn start_books(&mut self, fx: &mut Effects) {
        self.start_books_of(None, fx);
    }

    /// [`FramePipeline::start_books`] for the instruments in `only` (all
    /// when `None`): instruments just added to a running connection.
    pub(super) fn start_books_of(&mut self, only: Option<&[String]>, fx: &mut Effects) {
        let wanted = |i: &str| only.is_none_or(|o| o.iter().any(|x| x == i));
        let plan = self.plan.clone();
        for (instrument, top) in plan.book_tops.iter().filter(|(i, _)| wanted(i)) {
            self.books
                .keep_top(&self.venue.book, instrument, top.depth, top.interval);
        }
        for (instrument, policy) in plan.book_snapshots.iter().filter(|(i, _)| wanted(i)) {
            self.books.keep_snapshot(
                &self.venue.book,
                instrument,
                policy.interval,
                policy.max_updates,
            );
        }
        if !plan.types.contains(&DataType::L2Orderbook) {
            return;
        }
        let books: Vec<String> = self
            .book_instruments()
            .into_iter()
            .filter(|i| wanted(i))
            .collect();
        if self.venue.book.scales.is_some() {
            for inst in &books {
                self.fetch(Fetch::Scales, inst.clone(), Duration::ZERO, fx);
            }
        }
        if self.venue.book.snapshot.is_some() {
            for inst in books {
                let dropped = self.books.await_snapshot(&self.venue.book, &inst);
                self.counters
                    .book_resync
                    .get(DataType::L2Orderbook)
                    .inc_by(dropped);
                self.fetch(Fetch::Snapshot, inst, Duration::ZERO, fx);
            }
        }
    }

    /// Ask for a per-instrument REST request (`[book.snapshot]` or
    /// `[book.checksum.scales]`).
    pub(super) fn fetch(&self, what: Fetch, instrument: String, delay: Duration, fx: &mut Effects) {
        let book = &self.venue.book;
        let expr = match what {
            Fetch::Snapshot => book.snapshot.as_ref().map(|s| &s.url),
            Fetch::Scales => book.scales.as_ref().map(|s| &s.url),
        };
        let Some(expr) = expr else { return };
        let market = self.plan.market.as_deref();
        let url = match instrument_url(&self.venue, expr, &instrument, market) {
            Ok(u) => u,
            Err(e) => {
                warn!(venue = %self.conn.venue_id, %instrument, ?what, error = %e, "cannot build the request URL");
                return;
            }
        };
        let url = match &self.conn.rest_url {
            Some(origin) => with_origin(&url, origin),
            None => url,
        };
        fx.fetch.push(FetchRequest {
            what,
            instrument,
            url,
            delay,
        });
    }

    /// A REST answer arrived.
    pub(super) fn fetched(&mut self, f: Fetched, fx: &mut Effects) {
        match f.what {
            Fetch::Snapshot => self.rest_snapshot(f.instrument, f.result, fx),
            Fetch::Scales => self.scales(f.instrument, f.result, fx),
        }
    }

    fn rest_snapshot(
        &mut self,
        instrument: String,
        result: Result<String, String>,
        fx: &mut Effects,
    ) {
        let body = match result {
            Ok(b) => b,
            Err(e) => {
                if let Some(suppressed) = self.counters.log("snapshot request") {
                    warn!(venue = %self.conn.venue_id, %instrument, error = %clip(&e), suppressed, "snapshot request failed; retrying");
                }
                self.fetch(Fetch::Snapshot, instrument, RETRY, fx);
                return;
            }
        };
        let venue = self.venue.clone();
        let Some(snap) = venue.book.snapshot.as_ref() else {
            return;
        };
        let mut events = Vec::with_capacity(1);
        if let Err(e) = self.mapper.map_document(
            &venue,
            &snap.route,
            &body,
            &instrument,
            Timestamp::now(),
            &mut events,
        ) {
            if let Some(suppressed) = self.counters.log("snapshot mapping") {
                warn!(venue = %self.conn.venue_id, %instrument, error = %e, body = truncate(&body, 200), suppressed, "snapshot did not map; retrying");
            }
            self.fetch(Fetch::Snapshot, instrument, RETRY, fx);
            return;
        }
        let Some(ev) = events.pop() else { return };
        self.counters.generated.get(ev.data_type()).inc();
        if let Err(refetch) = self
            .books
            .on_rest_snapshot(&venue.book, ev, &mut self.steps)
        {
            debug!(venue = %self.conn.venue_id, %instrument, reason = %refetch.0, "snapshot too old; fetching another");
            self.fetch(Fetch::Snapshot, instrument, Duration::from_millis(250), fx);
        }
        self.steps(Instant::now(), fx);
    }

    /// An instrument's checksum number scales arrived (or failed: retried).
    fn scales(&mut self, instrument: String, result: Result<String, String>, fx: &mut Effects) {
        let Some(source) = self.venue.book.scales.as_ref() else {
            return;
        };
        let market = self.plan.market.as_deref();
        match result.and_then(|body| scales_result(source, body, &instrument, market)) {
            Ok(scales) => {
                debug!(venue = %self.conn.venue_id, %instrument, ?scales, "checksum scales");
                self.books.set_scales(&self.venue.book, &instrument, scales);
            }
            Err(e) => {
                warn!(venue = %self.conn.venue_id, %instrument, error = %clip(&e), "checksum scales unavailable (checksums unverified meanwhile); retrying");
                self.fetch(Fetch::Scales, instrument, RETRY, fx);
            }
        }
    }

    /// A gap on one instrument: tell consumers, then resync that instrument
    /// only (REST snapshot, or unsubscribe + subscribe), or end the session
    /// when the venue offers neither.
    pub(super) fn gap(&mut self, instrument: Arc<Instrument>, reason: String, fx: &mut Effects) {
        if let Some(suppressed) = self.counters.log("book gap") {
            warn!(venue = %self.conn.venue_id, instrument = %instrument.venue_instrument, %reason, suppressed, "book gap: resyncing");
        }
        self.counters.gaps.inc();
        self.counters.resyncs.inc();
        self.live.book_resyncing(&instrument.venue_instrument);
        self.status_of(instrument.clone(), StatusState::Gap, &reason, fx);
        let name = instrument.venue_instrument.clone();
        if self.venue.book.snapshot.is_some() {
            self.fetch(Fetch::Snapshot, name, Duration::ZERO, fx);
            return;
        }
        self.resubscribe(&name, &[DataType::L2Orderbook], fx)
            .unwrap_or_else(|| fx.end(SessionError::Resync(reason)));
    }

    /// Unsubscribe and subscribe `types` of one instrument again; `None`
    /// when the venue has no unsubscribe template.
    pub(super) fn resubscribe(
        &mut self,
        instrument: &str,
        types: &[DataType],
        fx: &mut Effects,
    ) -> Option<()> {
        let venue = self.venue.clone();
        let unsub = venue.subscribe.unsubscribe.as_ref()?;
        let items: Vec<Item> = self
            .plan
            .items
            .iter()
            .filter(|i| i.instrument == instrument && types.contains(&i.data_type))
            .cloned()
            .collect();
        let market = self.plan.market.as_deref();
        let request_id = &mut self.next_request_id;
        let mut rendered = subscribe_messages(&venue, unsub, market, &items, request_id);
        if let (Ok(msgs), Some(sub)) = (&mut rendered, &venue.subscribe.message) {
            match subscribe_messages(&venue, sub, market, &items, request_id) {
                Ok(m) => msgs.extend(m),
                Err(e) => rendered = Err(e),
            }
        }
        match rendered {
            Ok(msgs) => fx.send.extend(msgs),
            Err(e) => fx.end(SessionError::Template(format!("resync: {e}"))),
        }
        Some(())
    }

    /// Top-N snapshots due at the wall-clock boundary `boundary_ms`.
    pub(super) fn tops(&mut self, boundary_ms: i64, fx: &mut Effects) {
        let mut due = Vec::new();
        self.books
            .tops(&self.conn.venue_id, boundary_ms, Timestamp::now(), &mut due);
        self.generated(due, fx);
    }

    /// Full-depth snapshots due at `boundary_ms`. None while this session
    /// is a successor holding its book events back: its books are ahead of
    /// what is published.
    pub(super) fn snapshots(&mut self, boundary_ms: i64, fx: &mut Effects) {
        if self.holding {
            return;
        }
        let mut due = Vec::new();
        let venue = self.venue.clone();
        self.books.snapshots(
            &self.conn.venue_id,
            &venue.book,
            boundary_ms,
            Timestamp::now(),
            &mut due,
        );
        self.generated(due, fx);
    }

    fn generated(&mut self, events: Vec<crate::domain::Event>, fx: &mut Effects) {
        let received = Instant::now();
        for ev in events {
            self.counters.generated.get(ev.data_type()).inc();
            self.publish(ev, received, fx);
        }
    }
}
