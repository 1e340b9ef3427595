//! Hostile or buggy jq in a venue file: expressions that could run forever
//! do not load (with file, line, field and reason), a generator that
//! explodes stops at the output limit and only its frame fails, and mappings
//! cannot read the process environment.

use std::path::Path;
use std::time::{Duration, Instant};

use mdrelay::config::venue::compile_venue;
use mdrelay::domain::Timestamp;
use mdrelay::engine::expr::MAX_OUTPUTS;
use mdrelay::engine::mapper::{Mapper, Outcome, RawFrame};

/// A minimal venue whose trade route maps each item of `each`.
fn venue(each: &str, price: &str) -> String {
    format!(
        r#"name = "Hostile"
[connection]
url = "wss://example.invalid/ws"
[subscribe]
message = '{{op: "subscribe"}}'
[[routes]]
type = "trade"
when = '.e == "t"'
each = '{each}'
[routes.fields]
instrument = '"X-Y"'
price = '{price}'
quantity = '1'
side = '"buy"'
"#
    )
}

fn problems(src: &str) -> Vec<String> {
    match compile_venue("hostile", Path::new("venues/hostile.toml"), src) {
        Ok(_) => Vec::new(),
        Err(ps) => ps.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn unbounded_or_environment_reading_expressions_do_not_load() {
    let cases = [
        ("repeat(.)", "1", "routes[0].each", "can loop"),
        (
            ".",
            "last(range(1e18))",
            "routes[0].fields.price",
            "`range` takes",
        ),
        (".", "def f: f; f", "routes[0].fields.price", "calls itself"),
        ("[.] | until(false; .)", "1", "routes[0].each", "can loop"),
        (".", "$ENV.HOME", "routes[0].fields.price", "$ENV"),
        (
            ".",
            "env.NATS_PASSWORD",
            "routes[0].fields.price",
            "`env` is not allowed",
        ),
        (
            ".",
            "input",
            "routes[0].fields.price",
            "`input` is not allowed",
        ),
    ];
    for (each, price, field, why) in cases {
        let got = problems(&venue(each, price));
        eprintln!("{each} / {price}: {got:?}");
        assert!(
            got.iter().any(|p| p.starts_with("venues/hostile.toml:")
                && p.contains(field)
                && p.contains(why)),
            "`{each}` / `{price}`: expected a located `{why}` problem at {field}, got {got:?}"
        );
    }
}

#[test]
fn an_exploding_generator_fails_only_its_frame() {
    let v = compile_venue(
        "hostile",
        Path::new("venues/hostile.toml"),
        &venue("range(100000), range(100000), range(100000)", "1"),
    )
    .expect("bounded ranges load");
    let mut mapper = Mapper::new(v.id.clone(), None, Default::default());
    let mut events = Vec::new();
    let start = Instant::now();
    let result = mapper.map(
        &v,
        RawFrame::Text(r#"{"e":"t"}"#),
        Timestamp(0),
        &mut events,
    );
    let took = start.elapsed();
    eprintln!("exploding frame: {result:?} after {took:?}");
    let err = result.expect_err("more than MAX_OUTPUTS items must fail the frame");
    assert!(
        err.to_string().contains(&MAX_OUTPUTS.to_string()),
        "the error names the limit: {err}"
    );
    assert!(events.is_empty(), "a failed frame publishes nothing");
    assert!(took < Duration::from_secs(10), "bounded: {took:?}");
    // The next frame maps normally.
    let v2 = compile_venue(
        "hostile",
        Path::new("venues/hostile.toml"),
        &venue(".", "7"),
    )
    .expect("loads");
    let r = mapper.map(
        &v2,
        RawFrame::Text(r#"{"e":"t"}"#),
        Timestamp(0),
        &mut events,
    );
    assert_eq!(r, Ok(Outcome::Data { events: 1 }));
}
