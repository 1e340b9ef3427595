//! Fuzzing the frame → event path: recorded fixture frames of every venue,
//! damaged in the ways real feeds and networks damage them (truncation, bit
//! flips, wrong types, huge numbers, deep nesting, invalid UTF-8, bad gzip),
//! go through each venue's mapper. Nothing may panic, and every frame must
//! come out as events, a control verdict, "unrouted" or a counted error.
//!
//! `cargo test` runs a bounded number of inputs; set `MDRELAY_FUZZ_CASES`
//! for a long run, e.g.
//! `MDRELAY_FUZZ_CASES=1000000 cargo test --release --test it fuzz_frames -- --nocapture`.

use std::path::Path;
use std::sync::OnceLock;

use mdrelay::application::fixture::{FrameLine, OwnedFrame, case_files, parse_frame_line};
use mdrelay::config::venue::load_venues_dir;
use mdrelay::domain::Timestamp;
use mdrelay::engine::mapper::{Mapper, Outcome, RawFrame};
use mdrelay::engine::venue::Venue;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

struct Corpus {
    venues: Vec<(Venue, Vec<OwnedFrame>)>,
}

fn corpus() -> &'static Corpus {
    static C: OnceLock<Corpus> = OnceLock::new();
    C.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let (venues, problems) = load_venues_dir(&root.join("venues"));
        assert!(problems.is_empty(), "{problems:#?}");
        let venues = venues
            .into_values()
            .map(|v| {
                let mut frames = Vec::new();
                for path in case_files(&root.join("fixtures").join(v.id.as_ref())) {
                    let text = std::fs::read_to_string(path).unwrap();
                    for line in text.lines() {
                        // Skip the multi-MB snapshots: mutating them is slow
                        // and adds nothing a smaller frame does not.
                        if line.len() > 200_000 {
                            continue;
                        }
                        if let FrameLine::Frame(f) = parse_frame_line(line) {
                            frames.push(f);
                        }
                    }
                }
                (v, frames)
            })
            .filter(|(_, f)| !f.is_empty())
            .collect();
        Corpus { venues }
    })
}

/// One way to damage a frame (also used by `fast_path_agreement`).
#[derive(Debug, Clone)]
pub(crate) enum Damage {
    Truncate(usize),
    FlipByte(usize, u8),
    /// Replace the n-th number with something hostile.
    Number(usize, &'static str),
    /// Replace the n-th string value with a number, or the n-th number with a string.
    SwapType(usize),
    /// Wrap the frame in this many arrays.
    Nest(usize),
    /// Make the bytes invalid UTF-8.
    InvalidUtf8(usize),
    /// Send the bytes as a binary frame (gzip venues inflate it; others refuse it).
    AsBinary(usize),
    /// Send arbitrary bytes as a binary frame.
    Garbage(Vec<u8>),
}

/// Every kind of damage, with its parameters.
pub(crate) fn damage() -> impl Strategy<Value = Damage> {
    let numbers = prop_oneof![
        Just("1e400"),
        Just("-0"),
        Just("123456789012345678901234567890123456789012345678901234567890"),
        Just("0.000000000000000000000000000000000000001"),
        Just("NaN"),
        Just("1.5e-400"),
        Just("99999999999999999999"),
        Just("-"),
        Just("1."),
    ];
    prop_oneof![
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::FlipByte(i, b)),
        (0usize..40, numbers).prop_map(|(i, n)| Damage::Number(i, n)),
        (0usize..40).prop_map(Damage::SwapType),
        prop_oneof![1usize..200, 100usize..5000].prop_map(Damage::Nest),
        any::<usize>().prop_map(Damage::InvalidUtf8),
        any::<usize>().prop_map(Damage::AsBinary),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Damage::Garbage),
    ]
}

/// Byte offsets of JSON numbers / string values (roughly: good enough to hit
/// real fields).
pub(crate) fn tokens(text: &str, numbers: bool) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            let after = b.get(i + 1..).unwrap_or(&[]);
            let is_key = after.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b':');
            if !numbers && !is_key {
                out.push((start, (i + 1).min(b.len())));
            }
            i += 1;
        } else if numbers && (b[i] == b'-' || b[i].is_ascii_digit()) {
            let start = i;
            while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                i += 1;
            }
            out.push((start, i));
        } else {
            i += 1;
        }
    }
    out
}

/// The damaged bytes of `frame`, and whether they go as a binary frame.
pub(crate) fn apply(frame: &OwnedFrame, d: &Damage) -> (Vec<u8>, bool) {
    let (bytes, binary) = match frame {
        OwnedFrame::Text(t) => (t.as_bytes().to_vec(), false),
        OwnedFrame::Binary(b) => (b.clone(), true),
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    match d {
        Damage::Truncate(i) => (bytes[..i % (bytes.len() + 1)].to_vec(), binary),
        Damage::FlipByte(i, x) => {
            let mut b = bytes;
            if !b.is_empty() {
                let n = b.len();
                b[i % n] ^= x | 1;
            }
            (b, binary)
        }
        Damage::Number(i, n) => {
            let t = tokens(&text, true);
            match t.get(i % t.len().max(1)) {
                Some(&(a, z)) => (
                    format!("{}{n}{}", &text[..a], &text[z..]).into_bytes(),
                    false,
                ),
                None => (bytes, binary),
            }
        }
        Damage::SwapType(i) => {
            let nums = tokens(&text, true);
            let strs = tokens(&text, false);
            if i % 2 == 0 && !strs.is_empty() {
                let (a, z) = strs[i % strs.len()];
                (
                    format!("{}12.5{}", &text[..a], &text[z..]).into_bytes(),
                    false,
                )
            } else if let Some(&(a, z)) = nums.get(i % nums.len().max(1)) {
                (
                    format!("{}\"{}\"{}", &text[..a], &text[a..z], &text[z..]).into_bytes(),
                    false,
                )
            } else {
                (bytes, binary)
            }
        }
        Damage::Nest(n) => (
            format!("{}{}{}", "[".repeat(*n), text, "]".repeat(*n)).into_bytes(),
            false,
        ),
        Damage::InvalidUtf8(i) => {
            let mut b = bytes;
            let n = b.len().max(1);
            b.insert(i % n, 0xff);
            (b, false)
        }
        Damage::AsBinary(i) => {
            let mut b = bytes;
            b.truncate(i % (b.len() + 1));
            (b, true)
        }
        Damage::Garbage(g) => (g.clone(), true),
    }
}

fn cases() -> u32 {
    std::env::var("MDRELAY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

#[test]
fn damaged_frames_never_panic_and_every_frame_is_accounted_for() {
    let c = corpus();
    assert!(
        c.venues.len() >= 20,
        "venues with fixtures: {}",
        c.venues.len()
    );
    let total = cases();
    let mut runner = TestRunner::new(Config {
        cases: total,
        failure_persistence: None,
        ..Config::default()
    });
    let tally = std::cell::RefCell::new([0u64; 4]);
    let strategy = (0..c.venues.len(), any::<usize>(), damage());
    let started = std::time::Instant::now();
    runner
        .run(&strategy, |(vi, fi, d)| {
            let (venue, frames) = &c.venues[vi];
            let frame = &frames[fi % frames.len()];
            let (bytes, binary) = apply(frame, &d);
            let mut mapper = Mapper::new(venue.id.clone(), None, Default::default());
            let mut events = Vec::new();
            let raw = if binary {
                RawFrame::Binary(&bytes)
            } else {
                match std::str::from_utf8(&bytes) {
                    Ok(t) => RawFrame::Text(t),
                    // A text frame with invalid UTF-8 never reaches the
                    // mapper (the WebSocket layer rejects it); as bytes it
                    // must still be refused cleanly.
                    Err(_) => RawFrame::Binary(&bytes),
                }
            };
            let slot = match mapper.map(venue, raw, Timestamp(0), &mut events) {
                Ok(Outcome::Data { events: n }) => {
                    prop_assert_eq!(n, events.len());
                    0
                }
                Ok(Outcome::Control(_)) => 1,
                Ok(Outcome::Unrouted) => 2,
                Err(e) => {
                    prop_assert!(events.is_empty(), "a failed frame publishes nothing: {e}");
                    prop_assert!(!e.to_string().is_empty());
                    3
                }
            };
            tally.borrow_mut()[slot] += 1;
            Ok(())
        })
        .unwrap();
    let t = tally.into_inner();
    let sum: u64 = t.iter().sum();
    eprintln!(
        "{sum} damaged frames in {:?}: {} data, {} control, {} unrouted, {} rejected (counted errors), 0 panics",
        started.elapsed(),
        t[0],
        t[1],
        t[2],
        t[3]
    );
    assert_eq!(sum, u64::from(total), "every input accounted for");
    assert!(t[3] > 0, "damage must be noticed at least sometimes");
}
