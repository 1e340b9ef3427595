//! What `mdrelay book` shows: the ladder as text for a terminal, or the
//! book as one JSON object for scripts. Pure functions of the book.

use std::fmt::Write as _;

use crate::client::{BookTracker, Position};
use crate::domain::{Level, Timestamp};

/// The position as `update id N` or `mark E-S`.
fn position_text(p: Option<Position>) -> String {
    match p {
        Some(Position::UpdateId(id)) => format!("update id {id}"),
        Some(Position::Mark(m)) => format!("mark {}-{}", m.epoch, m.seq),
        None => "no position".into(),
    }
}

/// Seconds since the book last changed.
fn age(t: &BookTracker, now: Timestamp) -> Option<f64> {
    t.last_change().map(|c| (now.0 - c.0) as f64 / 1e9)
}

/// The ladder: a header line (instrument, state, position, age), then the
/// top `depth` levels, bids left and asks right, then the spread.
pub(super) fn render(title: &str, t: &BookTracker, depth: usize, now: Timestamp) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{title}   {}   {}",
        t.state().as_str(),
        position_text(t.position())
    );
    if let Some(a) = age(t, now) {
        let _ = write!(s, "   age {a:.1} s");
    }
    s.push('\n');
    if let Some(r) = t.stale_reason() {
        let _ = writeln!(s, "stale: {r}");
    }
    let (nb, na) = t.book().len();
    let _ = writeln!(s, "{nb} bids, {na} asks");
    let _ = writeln!(
        s,
        "{:>18} {:>16}  |  {:<16} {:<18}",
        "bid qty", "bid", "ask", "ask qty"
    );
    let bids: Vec<&Level> = t.book().bids().take(depth).collect();
    let asks: Vec<&Level> = t.book().asks().take(depth).collect();
    for i in 0..bids.len().max(asks.len()) {
        let (bq, bp) = bids.get(i).map_or((String::new(), String::new()), |l| {
            (l.quantity.to_string(), l.price.to_string())
        });
        let (ap, aq) = asks.get(i).map_or((String::new(), String::new()), |l| {
            (l.price.to_string(), l.quantity.to_string())
        });
        let _ = writeln!(s, "{bq:>18} {bp:>16}  |  {ap:<16} {aq:<18}");
    }
    match t.spread() {
        Some(sp) => {
            let _ = writeln!(s, "spread {sp}");
        }
        None => s.push_str("spread -\n"),
    }
    s
}

fn levels(ls: impl Iterator<Item = Level>) -> serde_json::Value {
    ls.map(|l| serde_json::json!([l.price.to_string(), l.quantity.to_string()]))
        .collect()
}

/// The book as one JSON object: venue, symbol token, state, position,
/// the top `depth` levels per side (`[price, quantity]` strings), spread,
/// age.
pub(super) fn json(
    venue: &str,
    token: &str,
    t: &BookTracker,
    depth: usize,
    now: Timestamp,
) -> String {
    let mut v = serde_json::json!({
        "venue": venue,
        "symbol": token,
        "state": t.state().as_str(),
        "bids": levels(t.book().bids().take(depth).copied()),
        "asks": levels(t.book().asks().take(depth).copied()),
        "levels": { "bids": t.book().len().0, "asks": t.book().len().1 },
    });
    match t.position() {
        Some(Position::UpdateId(id)) => v["last_update_id"] = id.into(),
        Some(Position::Mark(m)) => {
            v["relay_epoch"] = m.epoch.into();
            v["relay_seq"] = m.seq.into();
        }
        None => {}
    }
    if let Some(sp) = t.spread() {
        v["spread"] = sp.to_string().into();
    }
    if let Some(a) = age(t, now) {
        v["age_seconds"] = a.into();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BookKind, BookSnapshot, BookUpdate};

    #[test]
    fn ladders_and_json_show_the_book() {
        let l = |p: i64, q: i64| Level {
            price: p.into(),
            quantity: q.into(),
        };
        let snap = BookSnapshot {
            book: BookUpdate {
                kind: BookKind::Snapshot,
                bids: vec![l(10, 1), l(9, 2)],
                asks: vec![l(12, 3)],
                first_update_id: None,
                last_update_id: Some(42),
                prev_update_id: None,
                checksum: None,
                mark: None,
            },
            sequence: None,
            depth: None,
        };
        let t = BookTracker::from_snapshot(&snap, Timestamp(1_000_000_000));
        let text = render("okx btc-usdt", &t, 5, Timestamp(3_000_000_000));
        assert!(text.starts_with("okx btc-usdt   resyncing   update id 42   age 2.0 s\n"));
        assert!(text.contains("spread 2\n"));
        assert_eq!(text.lines().count(), 6);
        let v: serde_json::Value =
            serde_json::from_str(&json("okx", "btc-usdt", &t, 1, Timestamp(0))).unwrap();
        assert_eq!(v["bids"], serde_json::json!([["10", "1"]]));
        assert_eq!(v["last_update_id"], 42);
        assert_eq!(v["levels"]["bids"], 2);
    }
}
