//! `mdrelay tail [SUBJECT]`: the events on the bus, decoded (JSON or
//! protobuf, by their `Content-Type`), one per line.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use futures_util::StreamExt;

use super::bus::BusArgs;
use crate::domain::{BookKind, BookUpdate, Event, Payload};
use crate::serialization::{decode, to_json_line};

/// Arguments of `mdrelay tail`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Subject to follow (NATS wildcards: `*` one token, `>` the rest),
    /// e.g. `market.okx.>` or `market.*.btc-usdt.trade`.
    #[arg(default_value = "market.>")]
    pub subject: String,
    /// Print each event as the canonical JSON line (docs/wire-format.md),
    /// whatever its payload format.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// The NATS connection.
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Run `mdrelay tail`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(tail(args))
}

async fn tail(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.bus.connect("mdrelay-tail").await?;
    let mut sub = client
        .subscribe(args.subject.clone())
        .await
        .map_err(|e| anyhow::anyhow!("subscribing to `{}`: {e}", args.subject))?;
    client.flush().await.ok();
    let mut out = std::io::stdout().lock();
    let (mut shown, mut bad) = (0u64, 0u64);
    loop {
        let msg = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            m = sub.next() => match m {
                Some(m) => m,
                None => break,
            },
        };
        let ct = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("Content-Type"))
            .map(|v| v.as_str());
        match decode(ct, &msg.payload) {
            Ok(ev) => {
                let line = if args.json {
                    to_json_line(&ev)
                } else {
                    human(&ev)
                };
                if writeln!(out, "{line}").is_err() {
                    break; // stdout closed (a pipe)
                }
                shown += 1;
            }
            Err(e) => {
                bad += 1;
                eprintln!("undecodable message on {}: {e}", msg.subject);
            }
        }
        if args.count.is_some_and(|n| shown + bad >= n) {
            break;
        }
    }
    let _ = out.flush();
    if bad > 0 {
        eprintln!("{bad} undecodable messages");
    }
    Ok(ExitCode::SUCCESS)
}

fn book(s: &mut String, u: &BookUpdate) {
    let kind = match u.kind {
        BookKind::Snapshot => "snapshot",
        BookKind::Delta => "delta",
    };
    let _ = write!(s, "{kind} {} bids {} asks", u.bids.len(), u.asks.len());
    if let Some(id) = u.last_update_id {
        let _ = write!(s, " u={id}");
    }
    if let Some(m) = u.mark {
        let _ = write!(s, " mark={}-{}", m.epoch, m.seq);
    }
    if let (Some(b), Some(a)) = (u.bids.first(), u.asks.first()) {
        let _ = write!(
            s,
            " | {} x {} / {} x {}",
            b.quantity, b.price, a.price, a.quantity
        );
    }
}

/// One line for a person: time, venue, symbol, type, the payload in short.
pub fn human(ev: &Event) -> String {
    let mut s = String::with_capacity(120);
    ev.receive_time.write_rfc3339(&mut s);
    let _ = write!(
        s,
        " {} {} {:<12} ",
        ev.venue,
        ev.instrument.symbol,
        ev.data_type().as_str()
    );
    match &ev.payload {
        Payload::Trade(t) => {
            let _ = write!(s, "{} {} @ {}", t.side.as_str(), t.quantity, t.price);
        }
        Payload::Ticker(t) => {
            let o = |d: &Option<rust_decimal::Decimal>| d.map_or("-".into(), |d| d.to_string());
            let _ = write!(
                s,
                "bid {} ask {} last {}",
                o(&t.bid_price),
                o(&t.ask_price),
                o(&t.last_price)
            );
        }
        Payload::Book(u) | Payload::BookTop(u) => book(&mut s, u),
        Payload::BookSnapshot(snap) => book(&mut s, &snap.book),
        Payload::Funding(f) => {
            let _ = write!(s, "rate {}", f.rate);
            if let Some(t) = f.next_funding_time {
                let _ = write!(s, " next {}", t.to_rfc3339());
            }
        }
        Payload::Liquidation(l) => {
            let _ = write!(s, "{} {} @ {}", l.side.as_str(), l.quantity, l.price);
        }
        Payload::Status(st) => {
            let _ = write!(s, "{}: {}", st.state.as_str(), st.reason);
        }
    }
    s
}
