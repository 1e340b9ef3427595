//! No silent success on the command line (issue 15): an unknown venue or
//! market, captures that cannot be checked, a recording of nothing and a
//! template that cannot run each give a clear message and a non-zero exit;
//! `validate` ends with a summary line.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::*;

fn mdrelay(args: &[&str]) -> Output {
    mdrelay_in(root(), args, None)
}

fn mdrelay_in(dir: &Path, args: &[&str], stdin: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mdrelay"));
    cmd.current_dir(dir).args(args).env_remove("RUST_LOG");
    match stdin {
        Some(p) => cmd.stdin(std::fs::File::open(p).unwrap()),
        None => cmd.stdin(Stdio::null()),
    };
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn validate_takes_a_venue_id_or_file_and_refuses_unknown_ones() {
    let o = mdrelay(&["validate", "--venue", "nosuch"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("unknown venue `nosuch`") && t.contains("okx"),
        "{t}"
    );

    for arg in ["okx", "venues/okx.toml"] {
        let o = mdrelay(&["validate", "--venue", arg]);
        let t = text(&o);
        assert!(o.status.success(), "{arg}: {t}");
        assert!(t.contains("ok   okx"), "{arg}: {t}");
        assert!(
            t.lines()
                .last()
                .is_some_and(|l| l.starts_with("ok: 1 venue(s), 6 cases, 3 templates")),
            "summary line for {arg}: {t}"
        );
    }
    let o = mdrelay(&["validate", "--venue", "venues/nosuch.toml"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no venue file"), "{}", text(&o));
}

#[test]
fn map_takes_the_same_venue_forms_and_refuses_unknown_markets() {
    let frames = root().join("fixtures/okx/trades.jsonl");
    for arg in ["okx", "venues/okx.toml"] {
        let o = mdrelay_in(root(), &["map", "--venue", arg], Some(&frames));
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 21);
        assert!(text(&o).contains("21 frames: 21 events"), "{}", text(&o));
    }
    let o = mdrelay_in(
        root(),
        &["map", "--venue", "bybit", "--market", "spott"],
        Some(&frames),
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("unknown market `spott`") && t.contains("inverse, linear, spot"),
        "{t}"
    );
    let o = mdrelay_in(
        root(),
        &["map", "--venue", "okx", "--market", "spot"],
        Some(&frames),
    );
    assert!(!o.status.success(), "okx has no markets: {}", text(&o));
    let o = mdrelay_in(root(), &["map", "--venue", "nosuch"], Some(&frames));
    assert!(!o.status.success());
    let empty = tempfile::NamedTempFile::new().unwrap();
    let o = mdrelay_in(root(), &["map", "--venue", "okx"], Some(empty.path()));
    assert!(!o.status.success(), "no frames is not a success");
    assert!(text(&o).contains("no frames on stdin"), "{}", text(&o));
}

#[test]
fn validate_captures_says_what_it_skips_and_fails_on_nothing_checked() {
    let corpus = tempfile::tempdir().unwrap();
    // Nothing at all.
    let dir = corpus.path().to_str().unwrap();
    let o = mdrelay(&["validate", "--captures", dir]);
    assert!(!o.status.success());
    assert!(text(&o).contains("nothing was checked"), "{}", text(&o));

    // A folder of captures with no venue file of that name, and an okx
    // folder with a recorded capture.
    std::fs::create_dir(corpus.path().join("oldproto")).unwrap();
    std::fs::write(corpus.path().join("oldproto/capture-book.jsonl"), "{}\n").unwrap();
    std::fs::create_dir(corpus.path().join("okx")).unwrap();
    std::fs::copy(
        root().join("fixtures/okx/trades.jsonl"),
        corpus.path().join("okx/capture-trades.jsonl"),
    )
    .unwrap();
    let o = mdrelay(&["validate", "--captures", dir]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("skip oldproto") && t.contains("no venue `oldproto`"),
        "{t}"
    );
    assert!(
        t.contains("skip bybit") && t.contains("no capture-*.jsonl"),
        "{t}"
    );
    assert!(
        t.contains("ok: 1 venue(s), 1 capture files, 21 frames"),
        "{t}"
    );

    // A venue asked for by name must have captures.
    let o = mdrelay(&["validate", "--captures", dir, "--venue", "bybit"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("FAIL bybit"), "{}", text(&o));
}

#[test]
fn validate_renders_the_templates_and_fails_on_one_that_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let venues = dir.path().join("venues");
    std::fs::create_dir(&venues).unwrap();
    let okx = std::fs::read_to_string(root().join("venues/okx.toml")).unwrap();
    let broken = okx.replace(
        "unsubscribe = '{op: \"unsubscribe\"",
        "unsubscribe = '{op: (.[0].instrument | tonumber)}' # was: '{op: \"unsubscribe\"",
    );
    assert_ne!(broken, okx, "the test edits the unsubscribe template");
    std::fs::write(venues.join("okx.toml"), broken).unwrap();
    let o = mdrelay(&[
        "validate",
        "--venues",
        venues.to_str().unwrap(),
        "--venue",
        "okx",
    ]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("template unsubscribe"), "{t}");
    assert!(t.contains("FAILED: 1 venue(s)"), "{t}");
}

#[test]
fn recording_nothing_fails_and_writes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("case.jsonl");
    let cfg = dir.path().join("relay.toml");
    std::fs::write(
        &cfg,
        format!(
            "venues_dir = \"{}\"\n[[venues]]\nid = \"okx\"\n[[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"trade\"]\n",
            root().join("venues").display()
        ),
    )
    .unwrap();
    // Nothing listens on this port.
    let url = format!("ws://127.0.0.1:{}/", free_port());
    let o = mdrelay(&[
        "record",
        "--venue",
        "okx",
        "--duration",
        "2s",
        "--url",
        &url,
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("no frame received from `okx`"), "{t}");
    assert!(!out.exists(), "no empty fixture is left");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the config is left"
    );

    let o = mdrelay(&[
        "record",
        "--venue",
        "nosuch",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("its venues: okx"), "{}", text(&o));
}
