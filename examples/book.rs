//! Follow one order book from mdrelay's bus with `mdrelay::client`.
//!
//! ```sh
//! cargo run --example book -- okx btc-usdt                 # best bid / ask as they change
//! cargo run --example book -- okx btc-usdt --once          # the book once it is consistent, as JSON
//! cargo run --example book -- --nats nats://host:4222 okx BTC/USDT
//! ```
//!
//! Joining: the client fetches the book's last `l2_snapshot`, replays the
//! book's subjects from just before it, skips what the snapshot contains and
//! applies the rest; it says when the book is stale (a gap) and recovers by
//! itself (docs/consumers.md).

use mdrelay::client::{BookFeed, Change, ClientError, JoinOptions, Position, SyncState};

/// The book as JSON: position, state, every level (`[price, quantity]`).
pub fn book_json(feed: &BookFeed) -> serde_json::Value {
    let side = |levels: &mut dyn Iterator<Item = &mdrelay::domain::Level>| -> Vec<[String; 2]> {
        levels
            .map(|l| [l.price.to_string(), l.quantity.to_string()])
            .collect()
    };
    let mut v = serde_json::json!({
        "state": feed.state().as_str(),
        "bids": side(&mut feed.book().bids()),
        "asks": side(&mut feed.book().asks()),
        "bad_payloads": feed.stats().bad_payloads,
    });
    match feed.tracker().position() {
        Some(Position::UpdateId(id)) => v["last_update_id"] = id.into(),
        Some(Position::Mark(m)) => {
            v["relay_epoch"] = m.epoch.into();
            v["relay_seq"] = m.seq.into();
        }
        None => {}
    }
    v
}

/// Join `venue`'s book of `symbol` and return it as soon as it is
/// consistent (synced with the end of the stream).
pub async fn consistent_book(
    nats: &async_nats::Client,
    venue: &str,
    symbol: &str,
) -> Result<serde_json::Value, ClientError> {
    let mut feed = BookFeed::join(nats, venue, symbol, JoinOptions::default()).await?;
    while feed.state() != SyncState::Synced {
        if let Change::BadPayload(what) = feed.next().await? {
            eprintln!("skipped: {what}");
        }
    }
    Ok(book_json(&feed))
}

/// Print the best bid and ask at every change, with the book's state.
async fn watch(nats: &async_nats::Client, venue: &str, symbol: &str) -> Result<(), ClientError> {
    let mut feed = BookFeed::join(nats, venue, symbol, JoinOptions::default()).await?;
    loop {
        let change = feed.next().await?;
        let (bid, ask) = feed.tracker().best();
        let show = |l: Option<mdrelay::domain::Level>| {
            l.map_or("-".to_owned(), |l| format!("{} x {}", l.quantity, l.price))
        };
        println!(
            "{:<9} {:<40} bid {:<30} ask {}",
            feed.state().as_str(),
            format!("{change:?}"),
            show(bid),
            show(ask)
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    if let Some(i) = args.iter().position(|a| a == "--nats") {
        url = args.get(i + 1).ok_or("--nats needs a URL")?.clone();
        args.drain(i..=i + 1);
    }
    let once = args.iter().any(|a| a == "--once");
    args.retain(|a| a != "--once");
    let [venue, symbol] = args.as_slice() else {
        return Err("usage: book [--nats URL] VENUE SYMBOL [--once]".into());
    };
    let nats = async_nats::connect(&url).await?;
    if once {
        println!("{}", consistent_book(&nats, venue, symbol).await?);
    } else {
        watch(&nats, venue, symbol).await?;
    }
    Ok(())
}
