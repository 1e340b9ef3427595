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
        "config/relay.toml:6:22: environment variable `NATS_HOST` is not set (use `${NATS_HOST:-default}` for a default)",
        "config/relay.toml: http.listen: `not an address` is not an address like 127.0.0.1:8080",
        "config/relay.toml: nats.urls: `http://x` is not a nats:// or tls:// URL",
        "config/relay.toml: nats.urls: `` is not a nats:// or tls:// URL",
        "config/relay.toml: nats.publish.max_in_flight: must be at least 1",
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
