//! The fingerprint of a venue's connection settings: what, when it changes
//! on reload, needs the connections replaced (see `application::reload`).
//!
//! It is derived from the connection-level sections as written —
//! `[connection]` (with `[connection.bootstrap]`), `[markets]`,
//! `[subscribe]`, `[channels]` and `[heartbeat]` — through their derived
//! `Debug` form, so every field of those sections counts, including one
//! added later: no hand-kept list to forget a field in. Positions in the
//! file and comments do not count.

use std::fmt::Debug;

use xxhash_rust::xxh3::xxh3_64;

/// Hash the connection-level raw sections.
pub(super) fn fingerprint(sections: &impl Debug) -> u64 {
    xxh3_64(format!("{sections:?}").as_bytes())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::venue::compile_venue;

    /// A venue file setting every field of the connection-level sections.
    const BASE: &str = r#"name = "F"
[connection]
url = "wss://a.example/ws"
url_query = '"x=1"'
max_streams = 10
max_messages_per_second = 5
max_lifetime = "24h"
max_frame_bytes = 1000000
[connection.bootstrap]
method = "POST"
url = "https://a.example/token"
body = "{}"
ws_url = '.url'
ping_interval_ms = '.ping'
[markets.spot]
url = "wss://a.example/spot"
max_items_per_message = 10
[subscribe]
batch = "channel"
max_items_per_message = 20
message = '{op: "sub"}'
unsubscribe = '{op: "unsub"}'
on_connect = ['{op: "hello"}']
ack_timeout = "5s"
[channels.trade]
name = "trades"
params = { a = 1 }
markets = ["spot"]
instruments = "subscribed"
expected_interval = "60s"
[heartbeat]
interval = "20s"
message = '"ping"'
websocket_ping = false
silence_timeout = "30s"
pong_timeout = "10s"
[[routes]]
type = "trade"
when = '.e == "t"'
[routes.fields]
instrument = '.s'
price = '.p'
quantity = '.q'
side = '"buy"'
"#;

    /// One change per field: (the line as in BASE, the changed line).
    const CHANGES: &[(&str, &str)] = &[
        (
            "url = \"wss://a.example/ws\"",
            "url = \"wss://b.example/ws\"",
        ),
        ("url_query = '\"x=1\"'", "url_query = '\"x=2\"'"),
        ("max_streams = 10", "max_streams = 11"),
        ("max_messages_per_second = 5", "max_messages_per_second = 6"),
        ("max_lifetime = \"24h\"", "max_lifetime = \"23h\""),
        ("max_frame_bytes = 1000000", "max_frame_bytes = 1000001"),
        ("method = \"POST\"", "method = \"GET\""),
        (
            "url = \"https://a.example/token\"",
            "url = \"https://b.example/token\"",
        ),
        ("body = \"{}\"", "body = \"{ }\""),
        ("ws_url = '.url'", "ws_url = '.url2'"),
        ("ping_interval_ms = '.ping'", "ping_interval_ms = '.ping2'"),
        (
            "url = \"wss://a.example/spot\"",
            "url = \"wss://b.example/spot\"",
        ),
        ("max_items_per_message = 10", "max_items_per_message = 9"),
        ("batch = \"channel\"", "batch = \"instrument\""),
        ("max_items_per_message = 20", "max_items_per_message = 21"),
        ("message = '{op: \"sub\"}'", "message = '{op: \"sub2\"}'"),
        (
            "unsubscribe = '{op: \"unsub\"}'",
            "unsubscribe = '{op: \"unsub2\"}'",
        ),
        (
            "on_connect = ['{op: \"hello\"}']",
            "on_connect = ['{op: \"hi\"}']",
        ),
        ("ack_timeout = \"5s\"", "ack_timeout = \"6s\""),
        ("name = \"trades\"", "name = \"trade\""),
        ("params = { a = 1 }", "params = { a = 2 }"),
        ("markets = [\"spot\"]", "markets = []"),
        ("instruments = \"subscribed\"", "instruments = \"any\""),
        ("expected_interval = \"60s\"", "expected_interval = \"off\""),
        ("interval = \"20s\"", "interval = \"21s\""),
        ("message = '\"ping\"'", "message = '\"ping2\"'"),
        ("websocket_ping = false", "websocket_ping = true"),
        ("silence_timeout = \"30s\"", "silence_timeout = \"31s\""),
        ("pong_timeout = \"10s\"", "pong_timeout = \"11s\""),
    ];

    fn print(src: &str) -> u64 {
        compile_venue("f", Path::new("f.toml"), src)
            .unwrap_or_else(|e| panic!("{e:?}\n{src}"))
            .connection_fingerprint
    }

    /// The property names of a raw section's schema.
    fn properties<T: schemars::JsonSchema>() -> Vec<String> {
        let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap();
        schema["properties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn every_connection_level_field_is_in_the_fingerprint() {
        use crate::config::venue::raw::*;
        let base = print(BASE);
        // Every field of the sections appears in BASE and in CHANGES: a
        // field added to one of them fails here until it is covered.
        let fields = [
            properties::<RawConnection>(),
            properties::<RawBootstrap>(),
            properties::<RawMarket>(),
            properties::<RawSubscribe>(),
            properties::<RawChannel>(),
            properties::<RawHeartbeat>(),
        ]
        .concat();
        // `bootstrap` is a table: its own fields are listed.
        for f in fields.iter().filter(|f| *f != "bootstrap") {
            assert!(
                CHANGES
                    .iter()
                    .any(|(line, _)| line.starts_with(&format!("{f} ="))),
                "field `{f}` has no change in CHANGES"
            );
        }
        for (line, changed) in CHANGES {
            assert!(BASE.contains(line), "{line}");
            let src = BASE.replacen(line, changed, 1);
            assert_ne!(print(&src), base, "changing `{line}` to `{changed}`");
        }
        // Mappings, comments and layout do not count.
        let src = BASE.replace("price = '.p'", "price = '.px'");
        assert_eq!(print(&src), base, "a mapping change");
        let src = format!("# a comment\n\n{BASE}");
        assert_eq!(print(&src), base, "a comment and a blank line");
    }
}
