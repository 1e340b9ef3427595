//! The consumer tools against a real relay and broker: `mdrelay book
//! --once --json`, the Rust example (examples/book.rs, compiled into this
//! module) and the Python example (examples/python/book.py, nats-py) reach
//! the same book as the relay's last snapshot; `mdrelay tail` decodes JSON and
//! protobuf; missing snapshots and unreachable servers exit non-zero with a
//! clear message.

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::*;
use crate::consumers::{COINBASE, Case, OKX, nats_section};
use async_nats::jetstream;
use mdrelay::tools::replay::ReplaySpec;
use tokio::process::Command;

#[allow(dead_code)]
#[path = "../../examples/book.rs"]
mod book_example;

/// Run the relay on `case`'s whole feed (with `extra` in `[nats]`); returns
/// the running relay and replay.
async fn fed(
    nats: &Nats,
    case: Case,
    format: &str,
) -> (mdrelay::application::relay::RelayHandle, Replay) {
    let frames = case.frames();
    let total = frames.len() as u64;
    let replay = Replay::start(
        ReplaySpec {
            frames,
            rate: Some(200.0),
            ..Default::default()
        },
        None,
    )
    .await;
    let config = format!(
        "{}{}",
        nats_section(nats).replace(
            "[nats]\n",
            &format!("[nats]\npayload_format = \"{format}\"\n")
        ),
        case.venue_section(&replay.url(), None, "1s")
    );
    let relay = relay(&config).await;
    let stats = replay.stats.clone();
    wait_until(Duration::from_secs(30), "the whole feed sent", || {
        stats.frames_sent.load(Ordering::Relaxed) >= total
    })
    .await;
    // Published, and the last periodic snapshot taken.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    (relay, replay)
}

fn mdrelay() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mdrelay"));
    c.stdin(Stdio::null()).kill_on_drop(true);
    c
}

/// Run a command to its end: (exit success, stdout, stderr).
async fn output(mut c: Command) -> (bool, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), c.output())
        .await
        .expect("finished within 60 s")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The relay's last snapshot of the book as `[price, quantity]` lists.
async fn relay_book(nats: &Nats, case: Case) -> (serde_json::Value, serde_json::Value) {
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let f = mdrelay::client::last_snapshot(&js, case.venue, case.token)
        .await
        .unwrap();
    let side = |ls: &[mdrelay::domain::Level]| -> serde_json::Value {
        ls.iter()
            .map(|l| serde_json::json!([l.price.to_string(), l.quantity.to_string()]))
            .collect()
    };
    let b = &f.snapshot().book;
    (side(&b.bids), side(&b.asks))
}

fn python_available() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import nats"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the Python example needs python3 with nats-py: pip install nats-py"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdrelay_book_the_rust_example_and_the_python_example_reach_the_relays_book() {
    python_available();
    let nats = Nats::start();
    let case = OKX;
    // `tail` listens from before the first event.
    let mut tail = mdrelay();
    tail.args([
        "tail",
        "market.okx.>",
        "--json",
        "--count",
        "3",
        "--nats",
        &nats.url(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let tail = tail.spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (relay, replay) = fed(&nats, case, "json").await;
    let (want_bids, want_asks) = relay_book(&nats, case).await;

    let mut cli = mdrelay();
    cli.args([
        "book",
        "okx",
        "btc-usdt",
        "--once",
        "--json",
        "--depth",
        "100000",
        "--nats",
        &nats.url(),
    ]);
    let (ok, out, err) = output(cli).await;
    assert!(ok, "{err}");
    let cli: serde_json::Value = serde_json::from_str(out.trim()).unwrap();

    let client = async_nats::connect(nats.url()).await.unwrap();
    let rust = book_example::consistent_book(&client, "okx", "BTC/USDT")
        .await
        .unwrap();

    let mut py = Command::new("python3");
    py.arg(root().join("examples/python/book.py"))
        .args([
            "okx",
            "btc-usdt",
            "--once",
            "--json",
            "--depth",
            "100000",
            "--nats",
            &nats.url(),
        ])
        .kill_on_drop(true);
    let (ok, out, err) = output(py).await;
    assert!(ok, "python: {err}");
    let python: serde_json::Value = serde_json::from_str(out.trim()).unwrap();

    for (name, got) in [
        ("mdrelay book", &cli),
        ("examples/book.rs", &rust),
        ("examples/python/book.py", &python),
    ] {
        assert_eq!(got["state"], "synced", "{name}");
        assert_eq!(got["bids"], want_bids, "{name}: bids");
        assert_eq!(got["asks"], want_asks, "{name}: asks");
        assert_eq!(got["bad_payloads"].as_u64().unwrap_or(0), 0, "{name}");
        for k in ["relay_epoch", "relay_seq", "last_update_id"] {
            assert_eq!(got[k], rust[k], "{name}: {k}");
        }
    }
    assert_eq!(want_asks.as_array().unwrap().len(), 400);
    eprintln!(
        "3 consumers, {} + {} levels each, equal",
        want_bids.as_array().unwrap().len(),
        want_asks.as_array().unwrap().len()
    );

    let (ok, out, err) = output_of(tail).await;
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines.iter().all(|l| l["venue"] == "okx"));

    // No snapshot for this book; nothing listening there.
    let mut missing = mdrelay();
    missing.args([
        "book",
        "okx",
        "eth-usdt",
        "--once",
        "--json",
        "--nats",
        &nats.url(),
    ]);
    let (ok, _, err) = output(missing).await;
    assert!(!ok);
    assert!(
        err.contains("no snapshot on `market.okx.eth-usdt.l2_snapshot`"),
        "{err}"
    );
    let mut py = Command::new("python3");
    py.arg(root().join("examples/python/book.py")).args([
        "okx",
        "eth-usdt",
        "--once",
        "--nats",
        &nats.url(),
    ]);
    let (ok, _, err) = output(py).await;
    assert!(!ok);
    assert!(err.contains("no snapshot"), "{err}");
    let mut gone = mdrelay();
    gone.args([
        "book",
        "okx",
        "btc-usdt",
        "--once",
        "--nats",
        &format!("nats://127.0.0.1:{}", free_port()),
    ]);
    let (ok, _, err) = output(gone).await;
    assert!(!ok);
    assert!(err.contains("cannot reach NATS"), "{err}");
    relay.shutdown().await;
    replay.stop().await;
}

async fn output_of(child: tokio::process::Child) -> (bool, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("finished")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_payloads_are_decoded_by_tail_and_book() {
    let nats = Nats::start();
    let case = COINBASE;
    let mut tail = mdrelay();
    tail.args(["tail", "--count", "5", "--nats", &nats.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let tail = tail.spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (relay, replay) = fed(&nats, case, "protobuf").await;
    let (ok, out, err) = output_of(tail).await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(out.contains(" coinbase-exchange SKL/GBP "), "{out}");
    assert!(err.is_empty(), "{err}");

    let (want_bids, want_asks) = relay_book(&nats, case).await;
    let mut cli = mdrelay();
    cli.args([
        "book",
        "coinbase-exchange",
        "SKL/GBP",
        "--once",
        "--json",
        "--depth",
        "100000",
        "--nats",
        &nats.url(),
    ]);
    let (ok, out, err) = output(cli).await;
    assert!(ok, "{err}");
    let got: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(got["state"], "synced");
    assert_eq!(got["bids"], want_bids);
    assert_eq!(got["asks"], want_asks);
    relay.shutdown().await;
    replay.stop().await;
}
