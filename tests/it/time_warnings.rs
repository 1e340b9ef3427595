//! A mapped time in the wrong unit is not an error, but `mdrelay map` and
//! `mdrelay validate` warn about it, naming the field, the value and the
//! frame's line. The venue and its frames are synthetic (labelled so in the
//! files): a trade route that reads a seconds field (`T`) with
//! `time_unit = "ms"`, so 2022 becomes 1970.

use std::process::Command;

/// A synthetic venue: `T` is in seconds, the route says milliseconds.
const VENUE: &str = r#"# SYNTHETIC test venue: a seconds field mapped as milliseconds.
name = "Wrong unit"
[connection]
url = "wss://example.invalid/ws"
[subscribe]
message = '{op: "subscribe"}'
[[routes]]
type = "trade"
when = '.e == "t"'
time_unit = "ms"
[routes.fields]
instrument = '.s'
exchange_time = '.T'
price = '.p'
quantity = '.q'
side = '"buy"'
trade_id = '.i'
"#;

/// Synthetic frames: line 1 a 2022 time in seconds (read as ms: 1970),
/// line 2 a time two days ahead of the clock, line 3 no time at all.
fn frames() -> String {
    let ahead_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2 * 86_400;
    format!(
        "{}\n{}\n{}\n",
        r#"{"e":"t","s":"BTC-USD","T":1652459224,"p":"30236","q":"0.5","i":1}"#,
        format_args!(
            r#"{{"e":"t","s":"BTC-USD","T":{},"p":"30236","q":"0.5","i":2}}"#,
            ahead_s * 1000
        ),
        r#"{"e":"t","s":"BTC-USD","p":"30236","q":"0.5","i":3}"#,
    )
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("venues")).unwrap();
    std::fs::write(dir.path().join("venues/wrong-unit.toml"), VENUE).unwrap();
    let cases = dir.path().join("fixtures/wrong-unit");
    std::fs::create_dir_all(&cases).unwrap();
    std::fs::write(cases.join("trades.jsonl"), frames()).unwrap();
    dir
}

fn mdrelay(dir: &std::path::Path, args: &[&str], stdin: Option<String>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mdrelay"))
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn map_warns_about_a_time_in_the_wrong_unit_with_field_value_and_line() {
    let dir = setup();
    let (ok, stdout, stderr) = mdrelay(
        dir.path(),
        &["map", "--venue", "wrong-unit"],
        Some(frames()),
    );
    assert!(ok, "warnings do not fail `map`: {stderr}");
    assert_eq!(
        stdout.lines().count(),
        3,
        "every frame still maps: {stdout}"
    );
    assert!(
        stderr.contains(
            "line 1: warning: trade BTC-USD exchange_time = 1970-01-20T03:00:59.224Z (1652459224000000 ns since the epoch) is before 2009-01-01: a time in the wrong unit?"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 2: warning: trade BTC-USD exchange_time = ")
            && stderr.contains("is more than a day in the future"),
        "{stderr}"
    );
    assert!(!stderr.contains("line 3:"), "no time, no warning: {stderr}");
    assert!(
        stderr.contains("2 mapped time(s) before 2009 or more than a day ahead"),
        "{stderr}"
    );
}

#[test]
fn validate_prints_time_warnings_without_failing_the_fixture() {
    let dir = setup();
    let args = ["validate", "--venue", "wrong-unit"];
    let (ok, stdout, _) = mdrelay(dir.path(), &[&args[..], &["--bless"]].concat(), None);
    assert!(ok, "{stdout}");
    let (ok, stdout, stderr) = mdrelay(dir.path(), &args, None);
    assert!(ok, "time warnings are not failures: {stdout}{stderr}");
    assert!(
        stdout.contains(
            "case trades: warning: line 1: trade BTC-USD exchange_time = 1970-01-20T03:00:59.224Z"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("case trades: warning: line 2: "),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "2 mapped time(s) before 2009 or more than a day ahead (warnings, not failures"
        ),
        "{stdout}"
    );
}
