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

/// Expressions the load-time guard accepts (every loop is bounded) that
/// would still take minutes or gigabytes: each costs only its frame.
const HOSTILE: [(&str, &str); 7] = [
    (
        "nested generators collected",
        "[range(100000) as $a | range(100000) as $b | $a] | length",
    ),
    (
        "nested collect",
        "[range(100000) | [range(100000)]] | length",
    ),
    (
        "string doubling",
        r#"reduce range(60) as $i ("x"; . + .) | length"#,
    ),
    ("string repetition", r#"("x" * 100000000000) | length"#),
    (
        "object explosion",
        "reduce range(100000) as $i ({}; . + {($i | tostring): [range(1000)]}) | length",
    ),
    (
        "array doubling",
        "reduce range(60) as $i ([1]; . + .) | length",
    ),
    (
        "sorting a huge array",
        "[range(100000) as $a | range(10) | $a] | sort | length",
    ),
];

#[test]
fn hostile_expressions_cost_one_frame_and_the_next_frame_maps() {
    for (what, expr) in HOSTILE {
        let v = compile_venue(
            "hostile",
            Path::new("venues/hostile.toml"),
            &venue(".", &format!("if .p == \"bad\" then {expr} else .p end")),
        )
        .unwrap_or_else(|e| panic!("{what}: the guard lets `{expr}` through: {e:?}"));
        let mut mapper = Mapper::new(v.id.clone(), None, Default::default());
        let mut events = Vec::new();
        let start = Instant::now();
        let r = mapper.map(
            &v,
            RawFrame::Text(r#"{"e":"t","p":"bad"}"#),
            Timestamp(0),
            &mut events,
        );
        let took = start.elapsed();
        eprintln!("{what}: {r:?} after {took:?}");
        let err = r.expect_err(what).to_string();
        assert!(err.contains("budget"), "{what}: {err}");
        assert!(events.is_empty());
        assert!(took < Duration::from_secs(5), "{what}: {took:?}");
        let r = mapper.map(
            &v,
            RawFrame::Text(r#"{"e":"t","p":"7"}"#),
            Timestamp(0),
            &mut events,
        );
        assert_eq!(r, Ok(Outcome::Data { events: 1 }), "{what}: the next frame");
    }
}

/// `mdrelay map` on a venue file with hostile mappings: each bad frame is
/// reported, the good frame after them maps, and the process stays small.
#[test]
fn mdrelay_map_survives_hostile_mappings_with_bounded_memory() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let cases: String = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, (_, e))| format!("elif .p == \"bad{i}\" then {e} "))
        .collect();
    let file = dir.path().join("hostile.toml");
    std::fs::write(
        &file,
        venue(".", &format!("if .p == \"x\" then 0 {cases}else .p end")),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mdrelay"))
        .args(["map", "--venue"])
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..HOSTILE.len() {
        writeln!(stdin, r#"{{"e":"t","p":"bad{i}"}}"#).unwrap();
    }
    writeln!(stdin, r#"{{"e":"t","p":"42"}}"#).unwrap();
    stdin.flush().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let start = Instant::now();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "map ended early");
        if line.contains("\"price\":\"42\"") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60));
    }
    let took = start.elapsed();
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "map: {} hostile frames then a good one in {took:?}, peak RSS {} MiB; stderr {} bytes",
        HOSTILE.len(),
        peak_kib / 1024,
        err.len()
    );
    assert!(peak_kib < 256 * 1024, "peak RSS {} MiB", peak_kib / 1024);
    assert_eq!(
        err.matches("budget").count(),
        HOSTILE.len(),
        "each hostile frame reported once:\n{err}"
    );
    assert!(err.lines().all(|l| l.len() < 2048), "no huge error line");
}
