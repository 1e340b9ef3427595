//! Per-instrument liveness: when each instrument of a connection last had
//! an event of each data type, whether it is live, and the state of its
//! book. A connection fills its [`InstrumentTable`] from the frame path
//! (atomic stores, no lock) and checks it on its timer; `/health` reads the
//! same table.
//!
//! The expected interval of a data type comes from, first to last: the
//! relay config (`[venues.liveness]`), the venue file's channel
//! (`expected_interval`), then [`default_interval`]. Tickers are expected
//! often; trades, funding and liquidations are off by default, because a
//! quiet market may have none for hours and must not flap.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Expect;
use crate::domain::{DataType, Timestamp};
use crate::engine::venue::Venue;

/// The expected interval of a data type when neither the relay config nor
/// the venue file declares one.
pub fn default_interval(t: DataType) -> Option<Duration> {
    match t {
        DataType::Ticker => Some(Duration::from_secs(60)),
        DataType::L2Orderbook => Some(Duration::from_secs(120)),
        _ => None,
    }
}

/// The expected interval of `t` on `venue`, with the relay config's
/// `overrides`.
pub fn expected_interval(
    venue: &Venue,
    overrides: &BTreeMap<DataType, Expect>,
    t: DataType,
) -> Option<Duration> {
    if let Some(e) = overrides.get(&t) {
        return e.interval();
    }
    match venue.channels.get(&t).and_then(|c| c.expected_interval) {
        Some(e) => e.interval(),
        None => default_interval(t),
    }
}

/// Whether an instrument's data type is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LiveState {
    /// Subscribed; no event yet.
    Waiting = 0,
    /// Events arrive.
    Live = 1,
    /// No event for longer than expected.
    Stale = 2,
}

impl LiveState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => LiveState::Live,
            2 => LiveState::Stale,
            _ => LiveState::Waiting,
        }
    }

    /// The name shown in `/health`.
    pub fn as_str(self) -> &'static str {
        match self {
            LiveState::Waiting => "waiting",
            LiveState::Live => "live",
            LiveState::Stale => "stale",
        }
    }
}

/// The state of a book the relay follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BookState {
    /// No book event published yet.
    Waiting = 0,
    /// Book events are published in sequence.
    Synced = 1,
    /// A gap was found; the book is being rebuilt.
    Resyncing = 2,
}

impl BookState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => BookState::Synced,
            2 => BookState::Resyncing,
            _ => BookState::Waiting,
        }
    }
}

/// One data type of one instrument.
#[derive(Debug)]
pub struct TypeSlot {
    /// The data type.
    pub data_type: DataType,
    /// Expected interval in milliseconds (0: not checked).
    expect_ms: AtomicU64,
    /// Receive time of the last event (ns since the epoch; 0: none).
    last_ns: AtomicI64,
    state: AtomicU8,
}

impl TypeSlot {
    /// The current state.
    pub fn state(&self) -> LiveState {
        LiveState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// The expected interval, if checked.
    pub fn expect(&self) -> Option<Duration> {
        match self.expect_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }
}

/// The book of one instrument.
#[derive(Debug)]
pub struct BookSlot {
    state: AtomicU8,
    /// The last update id published (`i64::MIN`: none).
    last_update_id: AtomicI64,
    /// Receive time of the last book event published (ns; 0: none).
    last_ns: AtomicI64,
}

/// One instrument of a connection.
#[derive(Debug)]
pub struct InstrumentSlot {
    /// The venue's instrument name.
    pub instrument: String,
    /// The canonical symbol.
    pub symbol: String,
    /// Its subscribed data types.
    pub types: Vec<TypeSlot>,
    /// Its book, when `l2_orderbook` is subscribed.
    pub book: Option<BookSlot>,
}

/// A state change found by [`InstrumentTable::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Index of the instrument in the table.
    pub slot: usize,
    /// The data type.
    pub data_type: DataType,
    /// How long it had no event.
    pub silent_for: Duration,
}

/// The instruments of one connection (shared by its sessions and
/// `/health`).
#[derive(Debug, Default)]
pub struct InstrumentTable {
    index: foldhash::HashMap<String, usize>,
    slots: Vec<InstrumentSlot>,
    /// When the table was made (ns): the age of a type with no event yet
    /// counts from here, or from the latest [`InstrumentTable::restart`].
    since_ns: AtomicI64,
}

impl InstrumentTable {
    /// A table for `(instrument, symbol, data types)`; intervals from
    /// `venue` and `overrides`.
    pub fn new(
        instruments: impl IntoIterator<Item = (String, String, Vec<DataType>)>,
        venue: &Venue,
        overrides: &BTreeMap<DataType, Expect>,
    ) -> Self {
        let mut t = InstrumentTable {
            since_ns: AtomicI64::new(Timestamp::now().0),
            ..InstrumentTable::default()
        };
        for (instrument, symbol, types) in instruments {
            if t.index.contains_key(&instrument) {
                continue;
            }
            let book = types.contains(&DataType::L2Orderbook).then(|| BookSlot {
                state: AtomicU8::new(BookState::Waiting as u8),
                last_update_id: AtomicI64::new(i64::MIN),
                last_ns: AtomicI64::new(0),
            });
            let types = types
                .into_iter()
                .filter(|d| DataType::MARKET.contains(d))
                .map(|data_type| TypeSlot {
                    data_type,
                    expect_ms: AtomicU64::new(0),
                    last_ns: AtomicI64::new(0),
                    state: AtomicU8::new(LiveState::Waiting as u8),
                })
                .collect();
            t.index.insert(instrument.clone(), t.slots.len());
            t.slots.push(InstrumentSlot {
                instrument,
                symbol,
                types,
                book,
            });
        }
        t.set_intervals(venue, overrides);
        t
    }

    /// Apply the intervals of a (reloaded) venue definition.
    pub fn set_intervals(&self, venue: &Venue, overrides: &BTreeMap<DataType, Expect>) {
        for s in &self.slots {
            for ty in &s.types {
                let ms = expected_interval(venue, overrides, ty.data_type).map_or(0, |d| {
                    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
                });
                ty.expect_ms.store(ms, Ordering::Relaxed);
            }
        }
    }

    /// Take over the state of the instruments `old` also has (the
    /// connection's instruments changed: those kept stay live or stale as
    /// they were, with their last event times and books).
    pub fn carry_from(&self, old: &InstrumentTable) {
        self.since_ns
            .store(old.since_ns.load(Ordering::Relaxed), Ordering::Relaxed);
        for s in &self.slots {
            let Some(o) = old.slot(&s.instrument) else {
                continue;
            };
            for ty in &s.types {
                if let Some(ot) = o.types.iter().find(|t| t.data_type == ty.data_type) {
                    ty.last_ns
                        .store(ot.last_ns.load(Ordering::Relaxed), Ordering::Relaxed);
                    ty.state
                        .store(ot.state.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            }
            if let (Some(b), Some(ob)) = (&s.book, &o.book) {
                b.state
                    .store(ob.state.load(Ordering::Relaxed), Ordering::Relaxed);
                b.last_update_id
                    .store(ob.last_update_id.load(Ordering::Relaxed), Ordering::Relaxed);
                b.last_ns
                    .store(ob.last_ns.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }

    /// The instruments.
    pub fn slots(&self) -> &[InstrumentSlot] {
        &self.slots
    }

    /// A new session subscribed: an instrument that had no event yet is
    /// given its full interval again from now.
    pub fn restart(&self, now: Timestamp) {
        self.since_ns.store(now.0, Ordering::Relaxed);
    }

    /// An event of `t` for `instrument` arrived at `at`. `true` when it
    /// brings a stale instrument back to live (the caller says so).
    #[inline]
    pub fn seen(&self, instrument: &str, t: DataType, at: Timestamp) -> Option<usize> {
        let i = self.index(instrument)?;
        self.seen_at(i, t, at).then_some(i)
    }

    /// The slot of a subscribed instrument (`None`: not one of this
    /// connection's).
    #[inline]
    pub fn index(&self, instrument: &str) -> Option<usize> {
        self.index.get(instrument).copied()
    }

    /// [`InstrumentTable::seen`] by slot: `true` when the event brings a
    /// stale type back to live.
    #[inline]
    pub fn seen_at(&self, slot: usize, t: DataType, at: Timestamp) -> bool {
        let Some(ty) = self.slots[slot].types.iter().find(|s| s.data_type == t) else {
            return false;
        };
        ty.last_ns.store(at.0, Ordering::Relaxed);
        // Live already (the common case): a load, no write.
        if ty.state.load(Ordering::Relaxed) == LiveState::Live as u8 {
            return false;
        }
        ty.state.swap(LiveState::Live as u8, Ordering::Relaxed) == LiveState::Stale as u8
    }

    /// A book event with `last_update_id` was published for `instrument`.
    pub fn book_published(&self, instrument: &str, last_update_id: Option<i64>, at: Timestamp) {
        let Some(b) = self.slot(instrument).and_then(|s| s.book.as_ref()) else {
            return;
        };
        b.state.store(BookState::Synced as u8, Ordering::Relaxed);
        b.last_ns.store(at.0, Ordering::Relaxed);
        if let Some(id) = last_update_id {
            b.last_update_id.store(id, Ordering::Relaxed);
        }
    }

    /// The book of `instrument` is being rebuilt after a gap.
    pub fn book_resyncing(&self, instrument: &str) {
        if let Some(b) = self.slot(instrument).and_then(|s| s.book.as_ref()) {
            b.state.store(BookState::Resyncing as u8, Ordering::Relaxed);
        }
    }

    /// The slot of `instrument`.
    pub fn slot(&self, instrument: &str) -> Option<&InstrumentSlot> {
        self.index.get(instrument).map(|&i| &self.slots[i])
    }

    /// Mark every checked type with no event for longer than expected as
    /// stale; each newly stale one is returned once.
    pub fn check(&self, now: Timestamp, out: &mut Vec<Transition>) {
        let since = self.since_ns.load(Ordering::Relaxed);
        for (i, s) in self.slots.iter().enumerate() {
            for ty in &s.types {
                let Some(expect) = ty.expect() else { continue };
                let last = ty.last_ns.load(Ordering::Relaxed).max(since);
                let silent = Duration::from_nanos((now.0 - last).max(0) as u64);
                if silent <= expect {
                    continue;
                }
                let was = ty.state.swap(LiveState::Stale as u8, Ordering::Relaxed);
                if was != LiveState::Stale as u8 {
                    out.push(Transition {
                        slot: i,
                        data_type: ty.data_type,
                        silent_for: silent,
                    });
                }
            }
        }
    }

    /// How many instruments are stale now, by data type.
    pub fn stale_counts(&self) -> BTreeMap<DataType, u64> {
        let mut m = BTreeMap::new();
        for s in &self.slots {
            for ty in &s.types {
                if ty.state() == LiveState::Stale {
                    *m.entry(ty.data_type).or_insert(0) += 1;
                }
            }
        }
        m
    }

    /// The `/health` form: one entry per instrument, and whether any is
    /// stale.
    pub fn report(&self, now: Timestamp) -> (Vec<Value>, bool) {
        let age = |ns: i64| (ns > 0).then(|| ((now.0 - ns).max(0) / 1_000_000) as u64);
        let mut any_stale = false;
        let list = self
            .slots
            .iter()
            .map(|s| {
                let mut types = serde_json::Map::new();
                let mut stale = false;
                for ty in &s.types {
                    let st = ty.state();
                    stale |= st == LiveState::Stale;
                    types.insert(
                        ty.data_type.as_str().into(),
                        json!({
                            "age_ms": age(ty.last_ns.load(Ordering::Relaxed)),
                            "state": st.as_str(),
                            "expected_ms": ty.expect().map(|d| d.as_millis() as u64),
                        }),
                    );
                }
                any_stale |= stale;
                let mut v = json!({
                    "instrument": s.instrument,
                    "symbol": s.symbol,
                    "data_types": types,
                });
                if let Some(b) = &s.book {
                    let book_stale = s.types.iter().any(|t| {
                        t.data_type == DataType::L2Orderbook && t.state() == LiveState::Stale
                    });
                    let state = match BookState::from_u8(b.state.load(Ordering::Relaxed)) {
                        BookState::Resyncing => "resyncing",
                        _ if book_stale => "stale",
                        BookState::Synced => "synced",
                        BookState::Waiting => "waiting",
                    };
                    let id = b.last_update_id.load(Ordering::Relaxed);
                    v["book"] = json!({
                        "state": state,
                        "last_update_id": (id != i64::MIN).then_some(id),
                        "age_ms": age(b.last_ns.load(Ordering::Relaxed)),
                    });
                }
                v
            })
            .collect();
        (list, any_stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::venue::compile_venue;

    fn venue(channels: &str) -> Venue {
        let src = format!(
            r#"name = "T"
[connection]
url = "wss://a.example/ws"
[subscribe]
message = '{{op: "sub"}}'
{channels}
[[routes]]
type = "trade"
when = '.e == "t"'
[routes.fields]
instrument = '.s'
price = '.p'
quantity = '.q'
side = '"buy"'
[[routes]]
type = "ticker"
when = '.e == "k"'
[routes.fields]
instrument = '.s'
bid_price = '.b'
ask_price = '.a'
"#
        );
        compile_venue("t", std::path::Path::new("venues/t.toml"), &src).expect("venue compiles")
    }

    const NS: i64 = 1_000_000_000;

    #[test]
    fn intervals_come_from_the_config_then_the_venue_then_the_defaults() {
        let v = venue(
            "[channels.trade]\nname = \"t\"\nexpected_interval = \"5m\"\n[channels.ticker]\nname = \"k\"\n",
        );
        let none = BTreeMap::new();
        assert_eq!(
            expected_interval(&v, &none, DataType::Trade),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            expected_interval(&v, &none, DataType::Ticker),
            Some(Duration::from_secs(60))
        );
        let over = BTreeMap::from([
            (DataType::Trade, Expect::Off),
            (DataType::Ticker, Expect::Every(Duration::from_secs(5))),
        ]);
        assert_eq!(expected_interval(&v, &over, DataType::Trade), None);
        assert_eq!(
            expected_interval(&v, &over, DataType::Ticker),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn an_instrument_goes_stale_once_then_live_again() {
        let v = venue("[channels.trade]\nname = \"t\"\n[channels.ticker]\nname = \"k\"\n");
        let over = BTreeMap::from([(DataType::Ticker, Expect::Every(Duration::from_secs(2)))]);
        let t = InstrumentTable::new(
            [
                (
                    "A".into(),
                    "A/B".into(),
                    vec![DataType::Ticker, DataType::Trade],
                ),
                ("C".into(), "C/D".into(), vec![DataType::Ticker]),
            ],
            &v,
            &over,
        );
        let t0 = Timestamp(t.since_ns.load(Ordering::Relaxed));
        let mut out = Vec::new();
        t.check(Timestamp(t0.0 + NS), &mut out);
        assert!(out.is_empty(), "within the interval: {out:?}");
        assert_eq!(t.seen("A", DataType::Ticker, Timestamp(t0.0 + NS)), None);
        t.check(Timestamp(t0.0 + 5 * NS / 2), &mut out);
        // C never had a ticker; A had one 1.5 s ago. Trades are off.
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].slot, out[0].data_type), (1, DataType::Ticker));
        out.clear();
        t.check(Timestamp(t0.0 + 4 * NS), &mut out);
        assert_eq!(out.len(), 1, "A now too; C is not reported twice: {out:?}");
        assert_eq!(out[0].slot, 0);
        assert_eq!(t.stale_counts().get(&DataType::Ticker), Some(&2));
        assert_eq!(
            t.seen("C", DataType::Ticker, Timestamp(t0.0 + 5 * NS)),
            Some(1)
        );
        assert_eq!(
            t.seen("C", DataType::Ticker, Timestamp(t0.0 + 5 * NS)),
            None
        );
        assert_eq!(
            t.seen("X", DataType::Ticker, Timestamp(t0.0 + 5 * NS)),
            None
        );
        let (report, any) = t.report(Timestamp(t0.0 + 6 * NS));
        assert!(any);
        assert_eq!(report[1]["data_types"]["ticker"]["state"], "live");
        assert_eq!(report[1]["data_types"]["ticker"]["age_ms"], 1000);
        assert_eq!(report[0]["data_types"]["ticker"]["state"], "stale");
        assert_eq!(report[0]["data_types"]["trade"]["state"], "waiting");
        assert!(report[0].get("book").is_none());
    }
}
