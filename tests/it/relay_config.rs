//! The relay config: shipped files compile, problems are listed together
//! with their location, `${VAR}` substitution works, secrets stay hidden.

use std::path::Path;

use mdrelay::config::relay::compile_relay;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compile(
    text: &str,
    env: &[(&str, &str)],
) -> Result<mdrelay::config::relay::RelayConfig, Vec<String>> {
    let text = format!(
        "venues_dir = \"{}\"\n{text}",
        root().join("venues").display()
    );
    compile_relay(Path::new("config/relay.toml"), &text, |k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .map_err(|ps| ps.iter().map(ToString::to_string).collect())
}

#[test]
fn shipped_configs_compile() {
    for name in ["relay.toml", "relay.minimal.toml", "demo.toml"] {
        let path = root().join("config").join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let text = format!(
            "venues_dir = \"{}\"\n{text}",
            root().join("venues").display()
        );
        if let Err(p) = compile_relay(&path, &text, |_| None) {
            panic!("{name}: {p:#?}");
        }
    }
}

#[test]
fn all_problems_are_reported_with_locations() {
    let err = compile(
        r#"
[service]
worker_threads = 0
[http]
listen = "not an address"
[nats]
urls = ["http://x", "${NATS_HOST}"]
[nats.publish]
max_in_flight = 0
[[nats.streams]]
name = "BAD.NAME"
subjects = []
[[venues]]
id = "okx"
[[venues.subscriptions]]
instrument = "BTC-USDT"
types = ["trade", "liquidation", "funding_rate"]
market = "spot"
[[venues]]
id = "nosuchvenue"
[[venues]]
id = "okx"
"#,
        &[],
    )
    .unwrap_err();
    let want = [
        "config/relay.toml:8:22: environment variable `NATS_HOST` is not set (use `${NATS_HOST:-default}` for a default)",
        "config/relay.toml: http.listen: `not an address` is not an address like 127.0.0.1:8080",
        "config/relay.toml: nats.urls: `http://x` is not a nats:// or tls:// URL",
        "config/relay.toml: nats.urls: `` is not a nats:// or tls:// URL",
        "config/relay.toml: nats.publish.max_in_flight: must be at least 1",
        "config/relay.toml: service.worker_threads: must be at least 1",
        "config/relay.toml: nats.streams[0].name: `BAD.NAME` is not a valid stream name",
        "config/relay.toml: nats.streams[0].subjects: at least one subject is required",
        "config/relay.toml: venues[0].subscriptions[0].market: venue `okx` has no markets (remove `market = \"spot\"`)",
        "config/relay.toml: venues[1].id: no venue file",
        "config/relay.toml: venues[2].id: venue `okx` is configured twice",
    ];
    for w in want {
        assert!(
            err.iter().any(|e| e.starts_with(w)),
            "missing `{w}` in:\n{err:#?}"
        );
    }
    assert_eq!(err.len(), want.len(), "{err:#?}");
}

#[test]
fn environment_variables_are_substituted() {
    let cfg = compile(
        "[nats]\nurls = [\"${NATS_URL:-nats://127.0.0.1:4222}\"]\nauth = { type = \"token\", token = \"${NATS_TOKEN}\" }\n",
        &[("NATS_TOKEN", "s3cr3t-token")],
    )
    .unwrap();
    assert_eq!(cfg.nats.urls, ["nats://127.0.0.1:4222"]);
    let debug = format!("{cfg:?}");
    assert!(
        !debug.contains("s3cr3t-token"),
        "secret leaked in Debug output"
    );
    assert!(debug.contains("[redacted]"));
}

#[test]
fn subscription_types_must_exist_on_the_venue() {
    let err = compile(
        "[[venues]]\nid = \"binance-spot\"\n[[venues.subscriptions]]\ninstrument = \"BTCUSDT\"\ntypes = [\"funding_rate\"]\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        err,
        [
            "config/relay.toml: venues[0].subscriptions[0].types: venue `binance-spot` has no channel for funding_rate"
        ]
    );
}

/// One malformed setting at a time: each gets an error naming the file, the
/// field and the reason.
#[test]
fn table_of_malformed_settings() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[service]\nlog_format = \"xml\"",
            "service.log_format",
            "unknown variant",
        ),
        (
            "[service]\nshutdown_timeout = \"forever\"",
            "service.shutdown_timeout",
            "invalid duration",
        ),
        (
            "[service]\nworker_threads = -1",
            "service.worker_threads",
            "invalid value",
        ),
        (
            "[http]\nlisten = \"8080\"",
            "http.listen",
            "is not an address",
        ),
        ("[nats]\nurls = []", "nats.urls", "at least one URL"),
        (
            "[health]\nsilence_fraction = 0",
            "health.silence_fraction",
            "must be above 0 and at most 1",
        ),
        (
            "[health]\nsilence_fraction = 1.5",
            "health.silence_fraction",
            "must be above 0 and at most 1",
        ),
        (
            "[health]\nerror_memory = \"0s\"",
            "health.error_memory",
            "must be above 0",
        ),
        (
            "fixtures_dir = \"/nonexistent/fixtures\"",
            "fixtures_dir",
            "is not a directory",
        ),
        (
            "[nats]\nauth = { type = \"kerberos\" }",
            "nats.auth",
            "unknown variant",
        ),
        (
            "[nats]\nauth = { type = \"token\" }",
            "nats.auth",
            "missing field `token`",
        ),
        (
            "[nats]\nauth = { type = \"credentials\", path = \"/nonexistent.creds\" }",
            "nats.auth.path",
            "does not exist",
        ),
        (
            "[nats]\npayload_format = \"xml\"",
            "nats.payload_format",
            "unknown variant",
        ),
        (
            "[nats.publish]\nack_timeout = \"0s\"",
            "nats.publish.ack_timeout",
            "must be positive",
        ),
        (
            "[[nats.streams]]\nname = \"S\"\nsubjects = [\"a\"]\nstorage = \"tape\"",
            "nats.streams[0].storage",
            "unknown variant",
        ),
        (
            "[pipeline.trade]\nwhen_full = \"panic\"",
            "pipeline.trade.when_full",
            "unknown variant",
        ),
        ("[pipeline.candles]\ncapacity = 1", "pipeline", "candles"),
        (
            "[[venues]]\nid = \"okx\"\nreconnect = { initial_delay = \"1h\", max_delay = \"1s\" }",
            "venues[0].reconnect",
            "",
        ),
        (
            "[[venues]]\nid = \"okx\"\n[[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"candles\"]",
            "venues[0].subscriptions[0].types",
            "candles",
        ),
        (
            "[[venues]]\nid = \"okx\"\n[[venues.subscriptions]]\ntypes = [\"trade\"]",
            "venues[0].subscriptions[0]",
            "instrument",
        ),
        (
            "[[venues]]\nid = \"okx\"\n[[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"trade\"]\nbook_top = { depth = 5, interval = \"1s\" }",
            "venues[0].subscriptions[0].book_top",
            "needs `l2_orderbook`",
        ),
        (
            "[[venues]]\nid = \"okx\"\n[[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"l2_orderbook\"]\nbook_top = { depth = 5, interval = \"10ms\" }",
            "venues[0].subscriptions[0].book_top.interval",
            "at least 100ms",
        ),
        (
            "[[venues]]\nid = \"okx\"\n[[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"l2_orderbook\"]\nbook_top = { depth = 0, interval = \"1s\" }",
            "venues[0].subscriptions[0].book_top.depth",
            "1..=1000",
        ),
        (
            "[[venues]]\nid = \"okx\"\n[[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"trade\"]\nbook_snapshot = {}",
            "venues[0].subscriptions[0].book_snapshot",
            "needs `l2_orderbook`",
        ),
        (
            "[[venues]]\nid = \"okx\"\nbook_snapshot = { interval = \"50ms\" }\n[[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"l2_orderbook\"]",
            "venues[0].subscriptions[0].book_snapshot.interval",
            "at least 100ms",
        ),
        (
            "[[nats.streams]]\nname = \"S\"\nsubjects = [\"market.>\"]\nmax_msgs_per_subject = \"one\"",
            "nats",
            "max_msgs_per_subject",
        ),
        (
            "[[venues]]\nid = \"okx\"\n[[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"l2_top\"]",
            "venues[0].subscriptions[0].types",
            "no channel for l2_top",
        ),
        ("unknown_section = 1", "unknown_section", "unknown key"),
    ];
    let mut failures = Vec::new();
    for (snippet, field, reason) in cases {
        match compile(snippet, &[]) {
            Ok(_) => failures.push(format!("`{snippet}` was accepted")),
            Err(errs) => {
                let hit = errs.iter().any(|e| {
                    e.starts_with("config/relay.toml") && e.contains(field) && e.contains(reason)
                });
                if !hit {
                    failures.push(format!(
                        "`{snippet}`: want `{field}` / `{reason}`, got {errs:?}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `book_snapshot`: the venue's applies to its subscriptions with books
/// (default interval 10 s), a subscription's own wins, `enabled = false`
/// turns it off.
#[test]
fn book_snapshots_come_from_the_venue_or_the_subscription() {
    let cfg = compile(
        "[[venues]]\nid = \"okx\"\nbook_snapshot = {}\n\
         [[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"l2_orderbook\"]\n\
         [[venues.subscriptions]]\ninstrument = \"ETH-USDT\"\ntypes = [\"l2_orderbook\"]\nbook_snapshot = { interval = \"2s\" }\n\
         [[venues.subscriptions]]\ninstrument = \"SOL-USDT\"\ntypes = [\"l2_orderbook\"]\nbook_snapshot = { enabled = false }\n\
         [[venues.subscriptions]]\ninstrument = \"XRP-USDT\"\ntypes = [\"trade\"]\n",
        &[],
    )
    .unwrap();
    let got: Vec<_> = cfg.venues[0]
        .subscriptions
        .iter()
        .map(|s| s.book_snapshot)
        .collect();
    use std::time::Duration;
    assert_eq!(
        got,
        [
            Some(Duration::from_secs(10)),
            Some(Duration::from_secs(2)),
            None,
            None
        ]
    );
}

/// A bad config stops `mdrelay run` before anything starts.
#[test]
fn nothing_starts_with_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(
        &path,
        format!(
            "venues_dir = \"{}\"\n[http]\nlisten = \"nope\"\n[[venues]]\nid = \"okx\"\n[[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"trade\"]\n",
            root().join("venues").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdrelay"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("http.listen"), "{stderr}");
    assert!(!stderr.contains("starting venue"), "{stderr}");
}

#[test]
fn bad_liveness_intervals_and_channels_are_refused_with_their_location() {
    let err = compile(
        r#"
[nats]
urls = ["nats://127.0.0.1:4222"]
[[venues]]
id = "okx"
liveness = { ticker = "0s" }
[[venues.subscriptions]]
instrument = "BTC-USDT"
types = ["ticker"]
[[venues]]
id = "binance-spot"
liveness = { trade = "-5s" }
[[venues]]
id = "kraken"
liveness = { tradez = "1m" }
[[venues]]
id = "coinbase-exchange"
liveness = { l2_top = "1m", funding_rate = "1m" }
"#,
        &[],
    )
    .unwrap_err();
    let joined = err.join("\n");
    for want in [
        "config/relay.toml:7:23: venues[0].liveness: invalid expected interval `0s`: must be above zero",
        "config/relay.toml:13:22: venues[1].liveness: invalid expected interval `-5s`",
        "config/relay.toml:16:14: venues[2].liveness: unknown variant `tradez`",
        "venues[3].liveness.l2_top: `l2_top` events come from the relay, not from a venue channel",
        "venues[3].liveness.funding_rate: venue `coinbase-exchange` has no channel for funding_rate",
    ] {
        assert!(joined.contains(want), "missing `{want}` in:\n{joined}");
    }
}
