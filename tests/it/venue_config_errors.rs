//! A broken venue file gets every problem reported at once, each with its
//! line, column, field path and reason.

use std::path::Path;

use mdrelay::config::venue::compile_venue;

fn problems(src: &str) -> Vec<String> {
    match compile_venue("broken", Path::new("venues/broken.toml"), src) {
        Ok(_) => Vec::new(),
        Err(ps) => ps.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn all_problems_are_listed_with_their_location() {
    let src = r#"name = "Broken"
colour = "red"

[connection]
url = "https://not-a-websocket"
max_lifetime = "soon"

[subscribe]
message = '{op: "subscribe", args: [.[] | nosuch]}'

[heartbeat]
message = '"ping"'

[[control]]
kind = "ping"
when = '.op == "ping"'

[[control]]
kind = "shout"
when = 'true'

[[routes]]
type = "trade"
when = '.e == "trade"'
[routes.fields]
instrument = '.s'
price = '.p | ('
quantity = '.q'
sidee = '.m'

[[routes]]
type = "status"
when = 'true'
"#;
    let got = problems(src);
    let want = [
        "venues/broken.toml:2:1: colour: unknown key `colour`; expected one of: name, docs, connection, markets, subscribe, channels, symbols, heartbeat, frames, control, routes, book, rest, reference",
        "venues/broken.toml:6:16: connection.max_lifetime: invalid duration `soon`: expected number at 0 (examples: 500ms, 20s, 3m, 24h)",
        "venues/broken.toml:19:8: control[1].kind: unknown variant `shout`, expected one of `ack`, `error`, `pong`, `heartbeat`, `info`, `ping`, `reconnect`",
        "venues/broken.toml:9:43: subscribe.message: jq: undefined filter `nosuch`",
        "venues/broken.toml:12:11: heartbeat.interval: `interval` is required with `message` or `websocket_ping`",
        "venues/broken.toml:16:8: control[0]: a `ping` rule needs a `reply`",
        "venues/broken.toml:27:16: routes[0].fields.price: jq: expected closing parenthesis",
        "venues/broken.toml:29:9: routes[0].fields.sidee: `sidee` is not a field of trade; expected one of: instrument, symbol, exchange_time, event_key, price, quantity, side, trade_id",
        "venues/broken.toml:24:8: routes[0].fields: missing required field `side` for trade",
        "venues/broken.toml:33:8: routes[1].type: `status` events come from the relay, not from routes",
    ];
    assert_eq!(got, want, "\n got: {got:#?}");
}

#[test]
fn toml_syntax_errors_are_located() {
    let got = problems("name = \"x\"\n[connection\nurl = 1\n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("venues/broken.toml:2:"), "{got:?}");
    assert!(got[0].contains("TOML syntax"), "{got:?}");
}

#[test]
fn missing_sections_are_named() {
    let got = problems("docs = []\n");
    assert_eq!(
        got,
        [
            "venues/broken.toml: name: missing required `name`",
            "venues/broken.toml: connection: missing required `connection`",
        ]
    );
}
