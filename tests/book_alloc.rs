//! Gap detection and checksums allocate nothing per update: recorded book
//! events go through the book keeper under a counting allocator.
//!
//! - sequence checks (Binance spot and USD-M, recorded captures): zero
//!   allocations per update once each instrument has been seen;
//! - checksums (OKX, Kraken v1, recorded captures): the allocations of
//!   keeping the book itself (tree nodes for new price levels), and none
//!   more for building the checksum string and its CRC.
//!
//! One test in this file, so no other test thread allocates meanwhile.

// A counting global allocator needs `unsafe` (it forwards to `System`).
#![allow(unsafe_code)]
// The shared test helpers are `pub` for the integration tests' modules.
#![allow(unreachable_pub)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use mdrelay::config::venue::load_venue;
use mdrelay::domain::{Event, Payload};
use mdrelay::engine::book::LocalBook;
use mdrelay::engine::book::{BookKeeper, Step};
use mdrelay::engine::venue::Venue;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

mod common;

use common::{book_events, root};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Allocations of the keeper over `events`, counting only updates of
/// instruments it has seen before (the first creates its state), and the
/// number of such updates.
fn keeper_allocations(venue: &Venue, events: Vec<Event>) -> (u64, usize) {
    let mut keeper = BookKeeper::new();
    let mut steps: Vec<Step> = Vec::with_capacity(events.len() + 16);
    let mut seen = std::collections::HashSet::new();
    let (mut used, mut n) = (0, 0);
    for e in events {
        let known = seen.contains(&e.instrument.venue_instrument);
        if !known {
            seen.insert(e.instrument.venue_instrument.clone());
        }
        let before = allocations();
        keeper.on_update(&venue.book, e, &mut steps);
        if known {
            used += allocations() - before;
            n += 1;
        }
    }
    assert!(
        steps.iter().all(|s| matches!(s, Step::Publish(_))),
        "{}: the recorded events pass",
        venue.id
    );
    (used, n)
}

/// Allocations of maintaining the local books alone over the same updates.
fn book_allocations(venue: &Venue, events: &[Event]) -> u64 {
    let mut books: std::collections::HashMap<String, LocalBook> = Default::default();
    let mut used = 0;
    for e in events {
        let Payload::Book(u) = &e.payload else {
            continue;
        };
        let name = &e.instrument.venue_instrument;
        if !books.contains_key(name) {
            books.insert(name.clone(), LocalBook::new());
            books.get_mut(name).unwrap().apply(u, venue.book.depth);
            continue;
        }
        let book = books.get_mut(name).unwrap();
        let before = allocations();
        book.apply(u, venue.book.depth);
        used += allocations() - before;
    }
    used
}

#[test]
fn gap_detection_and_checksums_allocate_nothing_per_update() {
    let mut report = Vec::new();
    for (venue, file) in [
        ("binance-spot", "benches/data/binance-spot.book.jsonl"),
        ("binance-usdm", "benches/data/binance-usdm.book.jsonl"),
    ] {
        let v = load_venue(&root().join(format!("venues/{venue}.toml"))).unwrap();
        assert!(v.book.sequence.is_some() && v.book.checksum.is_none());
        let evs = book_events(&v, Path::new(file), None);
        let (used, n) = keeper_allocations(&v, evs);
        report.push(format!("{venue}: {used} allocations over {n} updates"));
        assert_eq!(used, 0, "{venue}: sequence checks allocate");
    }
    for (venue, file) in [
        ("okx", "benches/data/okx.book.jsonl"),
        ("kraken-v1", "benches/data/kraken-v1.book.jsonl"),
    ] {
        let v = load_venue(&root().join(format!("venues/{venue}.toml"))).unwrap();
        assert!(v.book.checksum.is_some());
        let evs = book_events(&v, Path::new(file), None);
        let book_only = book_allocations(&v, &evs);
        let (used, n) = keeper_allocations(&v, evs);
        report.push(format!(
            "{venue}: {used} allocations over {n} updates; keeping the book alone: {book_only}"
        ));
        assert!(
            used <= book_only,
            "{venue}: checksum adds allocations ({used} > {book_only})"
        );
    }
    eprintln!("{}", report.join("\n"));
}
