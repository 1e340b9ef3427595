//! Instruments from the venue: `select` filters over reference data, end
//! to end (the set changes while the relay runs; bad responses keep the
//! last good set), per venue against recorded responses, and bad filters
//! refused at load with their place.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use axum::extract::State;
use axum::routing::get;
use mdrelay::application::instruments::map_page;
use mdrelay::config::relay::compile_relay;
use mdrelay::config::relay::select::{accepts, compile_select};
use mdrelay::config::venue::load_venue;
use mdrelay::tools::replay::ReplaySpec;
use serde_json::Value;

/// What the fake reference endpoint answers.
#[derive(Clone, Debug)]
enum Answer {
    /// The recorded exchangeInfo with only these symbols kept.
    Listing(Vec<&'static str>),
    /// A JSON body of another shape.
    WrongShape,
    /// A listing with no symbol.
    Empty,
    /// HTTP 500.
    Error,
}

type Shared = Arc<Mutex<(Answer, usize)>>;

/// `/fapi/v1/exchangeInfo` from the recorded Binance USD-M response, with
/// whole elements of `symbols` removed (the kept ones are the recorded
/// bytes, re-serialized).
async fn reference_server() -> (String, Shared) {
    let recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/binance-usdm/reference/exchangeInfo.json"))
            .unwrap(),
    )
    .unwrap();
    let state: Shared = Arc::new(Mutex::new((Answer::Listing(vec![]), 0)));
    async fn info(
        State((recorded, state)): State<(Arc<Value>, Shared)>,
    ) -> (axum::http::StatusCode, String) {
        let answer = {
            let mut s = state.lock().unwrap();
            s.1 += 1;
            s.0.clone()
        };
        match answer {
            Answer::Listing(keep) => {
                let mut body = (*recorded).clone();
                let symbols: Vec<Value> = body["symbols"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|s| keep.contains(&s["symbol"].as_str().unwrap()))
                    .cloned()
                    .collect();
                body["symbols"] = Value::Array(symbols);
                (axum::http::StatusCode::OK, body.to_string())
            }
            Answer::WrongShape => (
                axum::http::StatusCode::OK,
                "{\"code\":0,\"data\":[1,2]}".into(),
            ),
            Answer::Empty => (axum::http::StatusCode::OK, "{\"symbols\":[]}".into()),
            Answer::Error => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "oops".into()),
        }
    }
    let app = axum::Router::new()
        .route("/fapi/v1/exchangeInfo", get(info))
        .with_state((Arc::new(recorded), state.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

/// Stored events of one subject token and type.
fn of(all: &[Stored], token: &str, t: &str) -> Vec<Value> {
    let subject = format!("market.binance-usdm.{token}.{t}");
    all.iter()
        .filter(|m| m.subject == subject)
        .map(|m| m.json.clone())
        .collect()
}

async fn health(relay: &mdrelay::application::relay::RelayHandle) -> Value {
    let (_, body) = http_get(relay.http_addr, "/health").await;
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selected_instruments_follow_the_reference_data_and_survive_bad_responses() {
    let nats = Nats::start();
    let (rest, answer) = reference_server().await;
    answer.lock().unwrap().0 = Answer::Listing(vec!["BTCUSDT", "ETHUSDT"]);
    let replay = Replay::start(
        ReplaySpec {
            frames: agg_trades(&["BTCUSDT", "ETHUSDT", "BCHUSDT"], 5_000),
            rate: Some(60.0),
            live: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let refresh = Duration::from_secs(2);
    let relay = relay(&format!(
        "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n\
         [[venues]]\nid = \"binance-usdm\"\nurl = \"{}\"\nrest_url = \"{rest}\"\nreference_refresh = \"2s\"\n\
         [[venues.subscriptions]]\nselect = 'kind == \"perpetual\" and quote == \"USDT\"'\ntypes = [\"trade\"]\n",
        nats.url(),
        replay.url()
    ))
    .await;
    let stream = Stream::connect(&nats, "MARKET").await;
    let has = |all: &[Stored], token: &str| !of(all, token, "trade").is_empty();
    let start = Instant::now();
    loop {
        let all = stream.all().await;
        if has(&all, "btc-usdt_usdt") && has(&all, "eth-usdt_usdt") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "selected instruments stream"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("first selection streaming after {:?}", start.elapsed());
    let all = stream.all().await;
    assert!(!has(&all, "bch-usdt_usdt"), "BCHUSDT is not listed yet");

    // A new listing streams within a refresh interval (plus connecting).
    answer.lock().unwrap().0 = Answer::Listing(vec!["BTCUSDT", "ETHUSDT", "BCHUSDT"]);
    let listed = Instant::now();
    loop {
        if has(&stream.all().await, "bch-usdt_usdt") {
            break;
        }
        assert!(
            listed.elapsed() < refresh + Duration::from_secs(4),
            "BCHUSDT streams within one refresh interval"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "new listing streaming {:?} after it was listed",
        listed.elapsed()
    );
    // On the running connection: no new one, a SUBSCRIBE for it alone.
    assert_eq!(
        replay.stats.connections.load(Relaxed),
        1,
        "no new connection"
    );
    let sent = sent_by_relay(&replay);
    let bch: Vec<&String> = sent.iter().filter(|m| m.contains("bchusdt")).collect();
    assert_eq!(bch.len(), 1, "one subscribe for the new listing: {sent:?}");
    assert!(
        bch[0].contains("\"SUBSCRIBE\"") && !bch[0].contains("btcusdt"),
        "{}",
        bch[0]
    );
    let kv = stream.js.get_key_value("MARKET_INSTRUMENTS").await.unwrap();
    let rec: Value =
        serde_json::from_slice(&kv.get("binance-usdm.BCHUSDT").await.unwrap().unwrap()).unwrap();
    assert_eq!(rec["kind"], "perpetual");
    assert_eq!(rec["tick_size"], "0.01");
    cli_shows_the_bucket(&nats);

    bad_answers_keep_the_set(&relay, &answer, &stream).await;

    // A delisting unsubscribes that instrument alone.
    answer.lock().unwrap().0 = Answer::Listing(vec!["BTCUSDT", "BCHUSDT"]);
    let delisted = Instant::now();
    loop {
        let all = stream.all().await;
        let st = of(&all, "eth-usdt_usdt", "status");
        if st.iter().any(|s| s["data"]["state"] == "unsubscribed") {
            break;
        }
        assert!(
            delisted.elapsed() < Duration::from_secs(25),
            "an unsubscribed status event"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        health(&relay).await["instruments"]["binance-usdm"]["failing"],
        false
    );
    // Unsubscribed on the running connection: an UNSUBSCRIBE for it alone,
    // and no new connection.
    let sent = sent_by_relay(&replay);
    let unsub: Vec<&String> = sent.iter().filter(|m| m.contains("UNSUBSCRIBE")).collect();
    assert_eq!(unsub.len(), 1, "{sent:?}");
    assert!(
        unsub[0].contains("ethusdt@aggTrade") && !unsub[0].contains("btcusdt"),
        "{}",
        unsub[0]
    );
    assert_eq!(
        replay.stats.connections.load(Relaxed),
        1,
        "no new connection"
    );
    // ETHUSDT stops at once (the fake venue keeps sending it: the relay
    // no longer publishes it).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let eth_then = of(&stream.all().await, "eth-usdt_usdt", "trade").len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = stream.all().await;
    assert_eq!(
        of(&all, "eth-usdt_usdt", "trade").len(),
        eth_then,
        "ETHUSDT no longer streams"
    );

    no_trade_lost(&all, &["btc-usdt_usdt", "bch-usdt_usdt"]);
    relay.shutdown().await;
    replay.stop().await;
}

/// The text messages the relay sent the fake venue, all on its first
/// connection.
fn sent_by_relay(replay: &Replay) -> Vec<String> {
    let texts = replay.stats.texts.lock().unwrap();
    assert!(texts.iter().all(|(conn, _)| *conn == 0), "{texts:?}");
    texts.iter().map(|(_, t)| t.clone()).collect()
}

/// `mdrelay instruments` shows the bucket, filtered.
fn cli_shows_the_bucket(nats: &Nats) {
    let cli = |filter: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mdrelay"))
            .args([
                "instruments",
                "binance-usdm",
                filter,
                "--json",
                "--nats",
                &nats.url(),
            ])
            .arg("--venues")
            .arg(root().join("venues"))
            .output()
            .unwrap()
    };
    let out = cli(r#"base == "BCH" or base == "ETH""#);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let symbols: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["symbol"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(symbols, ["BCHUSDT", "ETHUSDT"]);
    let none = cli(r#"kind == "option""#);
    assert!(!none.status.success(), "an empty result is a failure");
    assert!(String::from_utf8_lossy(&none.stderr).contains("no instrument of 3 listed matches"));
}

/// Bad answers keep everything running, and say so.
async fn bad_answers_keep_the_set(
    relay: &mdrelay::application::relay::RelayHandle,
    answer: &Shared,
    stream: &Stream,
) {
    for bad in [Answer::WrongShape, Answer::Empty, Answer::Error] {
        let before = answer.lock().unwrap().1;
        answer.lock().unwrap().0 = bad.clone();
        wait_until(
            Duration::from_secs(10),
            "a refresh with the bad answer",
            || answer.lock().unwrap().1 >= before + 2,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let h = health(relay).await;
        let v = &h["instruments"]["binance-usdm"];
        assert_eq!(v["failing"], true, "{bad:?}: {h}");
        assert!(v["last_error"].as_str().is_some(), "{bad:?}: {h}");
        assert_eq!(v["selected"], 3, "{bad:?}: the last good set is kept: {h}");
        let n = |all: &[Stored]| of(all, "eth-usdt_usdt", "trade").len();
        let a = n(&stream.all().await);
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(n(&stream.all().await) > a, "{bad:?}: ETHUSDT still streams");
    }
    let m = relay.metrics.encode();
    assert!(metric(&m, "mdrelay_reference_failures_total", "binance-usdm") >= 3.0);
    assert_eq!(
        metric(&m, "mdrelay_instruments_selected", "binance-usdm"),
        3.0
    );
}

/// Each instrument's trade ids run without a hole from the first stored to
/// the last.
fn no_trade_lost(all: &[Stored], tokens: &[&str]) {
    for token in tokens {
        let ids: BTreeSet<u64> = of(all, token, "trade")
            .iter()
            .map(|e| {
                e["data"]["trade_id"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches('a')
                    .parse()
                    .unwrap()
            })
            .collect();
        let (lo, hi) = (*ids.first().unwrap(), *ids.last().unwrap());
        eprintln!("{token}: ids {lo}..={hi}, {} stored", ids.len());
        assert_eq!(ids.len() as u64, hi - lo + 1, "{token}: no trade lost");
    }
}

/// Per venue: the filter picks exactly the instruments an independent
/// reading of the recorded response (plain JSON, no jq) says it should.
/// A recorded response, a filter, and what an independent reading says it
/// selects.
struct Case {
    venue: &'static str,
    response: &'static str,
    request: &'static str,
    filter: &'static str,
    expect: fn(&Value) -> BTreeSet<String>,
}
fn list<'v>(v: &'v Value, path: &[&str]) -> &'v Vec<Value> {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_array().unwrap()
}
fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

fn reference_cases() -> Vec<Case> {
    vec![
        Case {
            venue: "binance-usdm",
            response: "exchangeInfo.json",
            request: "exchange-info",
            filter: r#"kind == "perpetual" and quote == "USDT" and status == "trading""#,
            expect: |v| {
                list(v, &["symbols"])
                    .iter()
                    .filter(|x| {
                        s(x, "contractType") == "PERPETUAL"
                            && s(x, "quoteAsset") == "USDT"
                            && s(x, "status") == "TRADING"
                    })
                    .map(|x| s(x, "symbol"))
                    .collect()
            },
        },
        Case {
            venue: "binance-coinm",
            response: "exchangeInfo.json",
            request: "exchange-info",
            filter: r#"kind == "future""#,
            expect: |v| {
                list(v, &["symbols"])
                    .iter()
                    .filter(|x| s(x, "contractType").ends_with("QUARTER"))
                    .map(|x| s(x, "symbol"))
                    .collect()
            },
        },
        Case {
            venue: "okx",
            response: "instruments-swap.json",
            request: "swap",
            filter: r#"settle == "USDT""#,
            expect: |v| {
                list(v, &["data"])
                    .iter()
                    .filter(|x| s(x, "settleCcy") == "USDT")
                    .map(|x| s(x, "instId"))
                    .collect()
            },
        },
        Case {
            venue: "deribit",
            response: "get_instruments-btc.json",
            request: "btc",
            filter: r#"kind == "option" and option_type == "call" and (strike | tonumber) >= 50000"#,
            expect: |v| {
                list(v, &["result"])
                    .iter()
                    .filter(|x| {
                        s(x, "kind") == "option"
                            && s(x, "option_type") == "call"
                            && x["strike"].as_f64().unwrap() >= 50000.0
                    })
                    .map(|x| s(x, "instrument_name"))
                    .collect()
            },
        },
        Case {
            venue: "kraken",
            response: "AssetPairs.json",
            request: "asset-pairs",
            filter: r#"quote == "USD""#,
            expect: |v| {
                v["result"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, x)| !k.ends_with(".d") && s(x, "wsname").ends_with("/USD"))
                    .map(|(_, x)| {
                        s(x, "wsname")
                            .replace("XBT/", "BTC/")
                            .replace("XDG/", "DOGE/")
                    })
                    .collect()
            },
        },
        Case {
            venue: "coinbase-exchange",
            response: "products.json",
            request: "products",
            filter: r#"quote == "USD" and status == "trading""#,
            expect: |v| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .filter(|x| {
                        s(x, "quote_currency") == "USD"
                            && s(x, "status") == "online"
                            && x["trading_disabled"] != true
                            && x["cancel_only"] != true
                    })
                    .map(|x| s(x, "id"))
                    .collect()
            },
        },
        Case {
            venue: "kucoin",
            response: "symbols-v1.json",
            request: "symbols",
            filter: r#"quote == "USDT" and status == "trading""#,
            expect: |v| {
                list(v, &["data"])
                    .iter()
                    .filter(|x| s(x, "quoteCurrency") == "USDT" && x["enableTrading"] == true)
                    .map(|x| s(x, "symbol"))
                    .collect()
            },
        },
        Case {
            venue: "binance-spot",
            response: "exchangeInfo.json",
            request: "exchange-info",
            filter: r#"status == "halted""#,
            expect: |v| {
                list(v, &["symbols"])
                    .iter()
                    .filter(|x| s(x, "status") == "BREAK")
                    .map(|x| s(x, "symbol"))
                    .collect()
            },
        },
    ]
}

#[test]
fn filters_select_exactly_the_expected_instruments_per_venue() {
    for c in reference_cases() {
        let venue = load_venue(&root().join(format!("venues/{}.toml", c.venue))).unwrap();
        let req = venue
            .reference
            .iter()
            .find(|r| r.name == c.request)
            .unwrap();
        let path = root().join(format!("fixtures/{}/reference/{}", c.venue, c.response));
        let body = std::fs::read_to_string(&path).unwrap();
        let page = map_page(&venue, req, &body).unwrap();
        let filter = compile_select(c.filter).unwrap();
        let got: BTreeSet<String> = page
            .records
            .iter()
            .filter(|r| accepts(&filter, r).unwrap())
            .map(|r| r.symbol.clone())
            .collect();
        let want = (c.expect)(&serde_json::from_str(&body).unwrap());
        assert!(!want.is_empty(), "{}: the case selects something", c.venue);
        assert_eq!(got, want, "{}: `{}`", c.venue, c.filter);
        eprintln!(
            "{}: {} of {} selected",
            c.venue,
            got.len(),
            page.records.len()
        );
    }
}

fn problems(config: &str) -> Vec<String> {
    let text = format!(
        "venues_dir = \"{}\"\n{config}",
        root().join("venues").display()
    );
    match compile_relay(&root().join("config/test.toml"), &text, |_| None) {
        Ok(_) => Vec::new(),
        Err(p) => p.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn bad_selections_are_refused_at_load_with_their_place() {
    let p = problems(
        "[[venues]]\nid = \"okx\"\n[[venues.subscriptions]]\nselect = 'kind == \"perpetual\" and nosuch'\ntypes = [\"trade\"]\n",
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].contains("test.toml:5:35"), "{}", p[0]);
    assert!(
        p[0].contains("venues[0].subscriptions[0].select"),
        "{}",
        p[0]
    );
    let p = problems(
        "[[venues]]\nid = \"okx\"\n[[venues.subscriptions]]\nselect = 'kind == \"spot\"'\ninstrument = \"BTC-USDT\"\ntypes = [\"trade\"]\n",
    );
    assert!(
        p.iter()
            .any(|p| p.contains("either `instrument` or `select`")),
        "{p:#?}"
    );
    let p = problems(
        "[[venues]]\nid = \"bitfinex\"\n[[venues.subscriptions]]\nselect = 'true'\ntypes = [\"trade\"]\n",
    );
    assert!(
        p.iter().any(|p| p.contains("declares no reference data")),
        "{p:#?}"
    );
    let p = problems(
        "[[venues]]\nid = \"okx\"\nreference_refresh = \"10ms\"\n[[venues.subscriptions]]\nselect = 'true'\nlimit = 0\ntypes = [\"trade\"]\n",
    );
    assert!(
        p.iter()
            .any(|p| p.contains("reference_refresh") && p.contains("at least 1s")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|p| p.contains("limit") && p.contains("at least 1")),
        "{p:#?}"
    );
}

/// A synthetic reference response (this test's own) of `n` USDT
/// perpetuals, each a copy of the recorded BTCUSDT element renamed.
fn many_perpetuals(n: usize) -> String {
    let recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/binance-usdm/reference/exchangeInfo.json"))
            .unwrap(),
    )
    .unwrap();
    let btc = recorded["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["symbol"] == "BTCUSDT")
        .unwrap()
        .clone();
    let symbols: Vec<Value> = (0..n)
        .map(|i| {
            let mut s = btc.clone();
            s["symbol"] = Value::String(format!("S{i:04}USDT"));
            s["baseAsset"] = Value::String(format!("S{i:04}"));
            s["pair"] = s["symbol"].clone();
            s
        })
        .collect();
    serde_json::json!({ "symbols": symbols }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_selected_instruments_spread_over_connections_with_paced_subscribes() {
    let nats = Nats::start();
    // The shipped venue file with a smaller per-connection limit and
    // message size, so 600 instruments need 3 connections of 10 paced
    // subscribe messages each.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("venues/binance-usdm.toml"))
        .unwrap()
        .replace("max_streams = 1024", "max_streams = 200")
        .replace("max_items_per_message = 200", "max_items_per_message = 20");
    std::fs::write(dir.path().join("binance-usdm.toml"), text).unwrap();
    let body = many_perpetuals(600);
    let app = axum::Router::new().route("/fapi/v1/exchangeInfo", get(move || async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rest = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let replay = Replay::start(
        ReplaySpec {
            frames: agg_trades(&["S0000USDT", "S0599USDT"], 1_000),
            rate: Some(20.0),
            live: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let started = Instant::now();
    let relay = relay_in(
        dir.path(),
        &format!(
            "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n\
             [[venues]]\nid = \"binance-usdm\"\nurl = \"{}\"\nrest_url = \"{rest}\"\n\
             [[venues.subscriptions]]\nselect = 'kind == \"perpetual\" and quote == \"USDT\"'\nlimit = 600\ntypes = [\"trade\"]\n",
            nats.url(),
            replay.url()
        ),
    )
    .await;
    let stats = replay.stats.clone();
    let msgs = || {
        stats
            .messages_received
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    wait_until(
        Duration::from_secs(20),
        "the first subscribe message",
        || msgs() > 0,
    )
    .await;
    let first = Instant::now();
    wait_until(Duration::from_secs(30), "30 subscribe messages", || {
        msgs() >= 30
    })
    .await;
    let paced = first.elapsed();
    let all_subscribed = started.elapsed();
    let conns = stats.connections.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "600 instruments: {conns} connections, 30 subscribe messages over {paced:?}, all subscribed {all_subscribed:?} after start"
    );
    assert_eq!(conns, 3, "600 items / max_streams 200");
    // 10 messages per connection at 10 per second: the last leaves 0.9 s
    // after the first (connections pace independently, in parallel).
    assert!(paced >= Duration::from_millis(850), "paced: {paced:?}");
    let m = relay.metrics.encode();
    assert_eq!(
        metric(&m, "mdrelay_instruments_selected", "binance-usdm"),
        600.0
    );
    assert_eq!(metric(&m, "mdrelay_connections", "binance-usdm"), 3.0);
    // Both ends of the sorted selection stream.
    let stream = Stream::connect(&nats, "MARKET").await;
    let start = Instant::now();
    loop {
        let all = stream.all().await;
        if !of(&all, "s0000-usdt_usdt", "trade").is_empty()
            && !of(&all, "s0599-usdt_usdt", "trade").is_empty()
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "both ends stream"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    relay.shutdown().await;
    replay.stop().await;
}

#[test]
fn bad_rest_and_reference_sections_are_refused_with_their_place() {
    let src = r#"name = "x"
[connection]
url = "wss://example.com/ws"
[subscribe]
message = '.'
[rest]
budget = { requests = 0, per = "0s" }
[[reference]]
name = "a"
url = "ftp://example.com/list"
market = "moon"
records = '.list[] | {symbol: .s, kind: nosuch}'
[[reference]]
name = "a"
url = "https://example.com/list"
records = '.'
max_pages = 0
"#;
    let errs: Vec<String> = match mdrelay::config::venue::compile_venue(
        "x",
        std::path::Path::new("venues/x.toml"),
        src,
    ) {
        Ok(_) => panic!("compiled"),
        Err(p) => p.iter().map(ToString::to_string).collect(),
    };
    let want = [
        "venues/x.toml:7:23: rest.budget.requests: must be at least 1",
        "venues/x.toml:7:32: rest.budget.per: must be above 0",
        "reference[0].url: `ftp://example.com/list` is not an http(s):// URL",
        "reference[0].market: unknown market `moon`",
        "venues/x.toml:12:41: reference[0].records: jq: undefined filter `nosuch`",
        "venues/x.toml:14:8: reference[1].name: `a`: names must be non-empty and unique",
        "reference[1].max_pages: must be at least 1",
    ];
    for w in want {
        assert!(
            errs.iter().any(|e| e.contains(w)),
            "missing `{w}` in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
}

#[test]
fn a_response_of_the_wrong_shape_is_an_error_not_an_empty_list() {
    let venue = load_venue(&root().join("venues/okx.toml")).unwrap();
    let req = venue.reference.iter().find(|r| r.name == "swap").unwrap();
    for body in [
        "not json",
        r#"{"code":"0","data":{"instId":"x"}}"#,
        r#"{"code":"0","data":[{"instId":"BTC-USD-SWAP","instType":"SWAP"}]}"#,
    ] {
        let e = map_page(&venue, req, body).unwrap_err();
        eprintln!("{body}: {e}");
    }
    // A record the mapping cannot complete names its index and key.
    let kucoin = load_venue(&root().join("venues/kucoin.toml")).unwrap();
    let e = map_page(
        &kucoin,
        &kucoin.reference[0],
        r#"{"data":[{"symbol":"X-Y","enableTrading":true}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("record 0") && e.contains("`base` is required"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_one_at_a_time_do_not_pile_up_connections() {
    let nats = Nats::start();
    let (rest, answer) = reference_server().await;
    let all = [
        "BTCUSDT", "ETHUSDT", "BCHUSDT", "EOSUSDT", "TRXUSDT", "XLMUSDT",
    ];
    answer.lock().unwrap().0 = Answer::Listing(all[..1].to_vec());
    let replay = Replay::start(
        ReplaySpec {
            frames: agg_trades(&all, 5_000),
            rate: Some(60.0),
            live: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let relay = relay(&format!(
        "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n\
         [[venues]]\nid = \"binance-usdm\"\nurl = \"{}\"\nrest_url = \"{rest}\"\nreference_refresh = \"1s\"\n\
         [[venues.subscriptions]]\nselect = 'kind == \"perpetual\"'\ntypes = [\"trade\"]\n",
        nats.url(),
        replay.url()
    ))
    .await;
    let connections = || {
        metric(
            &relay.metrics.encode(),
            "mdrelay_connections",
            "binance-usdm",
        )
    };
    let mut most = 0.0f64;
    for n in 2..=all.len() {
        answer.lock().unwrap().0 = Answer::Listing(all[..n].to_vec());
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(1500) {
            most = most.max(connections());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Each listing joined the running connection (far below max_streams):
    // one connection from first to last, one socket at the fake venue.
    let end = connections();
    eprintln!("connections: at most {most}, at the end {end}");
    assert_eq!(
        (most, end),
        (1.0, 1.0),
        "connections at most and at the end"
    );
    assert_eq!(replay.stats.connections.load(Relaxed), 1);
    let stream = Stream::connect(&nats, "MARKET").await;
    let stored = stream.all().await;
    for s in all {
        let token = format!("{}-usdt_usdt", s.trim_end_matches("USDT").to_lowercase());
        assert!(!of(&stored, &token, "trade").is_empty(), "{s} streams");
    }
    relay.shutdown().await;
    replay.stop().await;
}

/// A venue file with no unsubscribe template cannot drop an instrument from
/// a running connection: the connection hands over to a new one with the
/// new plan (overlapping), and the instrument that stays loses no trade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_unsubscribe_template_a_delisting_hands_over_without_a_hole() {
    let nats = Nats::start();
    let (rest, answer) = reference_server().await;
    answer.lock().unwrap().0 = Answer::Listing(vec!["BTCUSDT", "ETHUSDT"]);
    let venues = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("venues/binance-usdm.toml")).unwrap();
    let edited: String = text
        .lines()
        .filter(|l| !l.starts_with("unsubscribe ="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(edited.len(), text.len(), "the template was there");
    std::fs::write(venues.path().join("binance-usdm.toml"), edited).unwrap();
    let replay = Replay::start(
        ReplaySpec {
            frames: agg_trades(&["BTCUSDT", "ETHUSDT"], 5_000),
            rate: Some(60.0),
            live: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let relay = relay_in(
        venues.path(),
        &format!(
            "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n\
             [[venues]]\nid = \"binance-usdm\"\nurl = \"{}\"\nrest_url = \"{rest}\"\nreference_refresh = \"1s\"\n\
             [[venues.subscriptions]]\nselect = 'kind == \"perpetual\"'\ntypes = [\"trade\"]\n",
            nats.url(),
            replay.url()
        ),
    )
    .await;
    let stream = Stream::connect(&nats, "MARKET").await;
    let streaming = |all: &[Stored], token: &str| !of(all, token, "trade").is_empty();
    let start = Instant::now();
    while !streaming(&stream.all().await, "eth-usdt_usdt") {
        assert!(start.elapsed() < Duration::from_secs(20), "ETHUSDT streams");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    answer.lock().unwrap().0 = Answer::Listing(vec!["BTCUSDT"]);
    wait_until(
        Duration::from_secs(20),
        "a second connection took over",
        || replay.stats.connections.load(Relaxed) == 2,
    )
    .await;
    // Past the handover: ETHUSDT stopped, BTCUSDT flows on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let eth_then = of(&stream.all().await, "eth-usdt_usdt", "trade").len();
    let btc_then = of(&stream.all().await, "btc-usdt_usdt", "trade").len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = stream.all().await;
    assert_eq!(of(&all, "eth-usdt_usdt", "trade").len(), eth_then);
    assert!(of(&all, "btc-usdt_usdt", "trade").len() > btc_then);
    let st = of(&all, "eth-usdt_usdt", "status");
    assert!(
        st.iter().any(|s| s["data"]["state"] == "unsubscribed"),
        "{st:?}"
    );
    // The new connection subscribed BTCUSDT alone.
    let texts = replay.stats.texts.lock().unwrap().clone();
    let second: Vec<&String> = texts
        .iter()
        .filter(|(c, _)| *c == 1)
        .map(|(_, t)| t)
        .collect();
    assert!(
        second
            .iter()
            .any(|t| t.contains("btcusdt@aggTrade") && !t.contains("ethusdt")),
        "{texts:?}"
    );
    no_trade_lost(&all, &["btc-usdt_usdt"]);
    relay.shutdown().await;
    replay.stop().await;
}
