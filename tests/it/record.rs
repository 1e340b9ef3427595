//! `mdrelay record` against `mdrelay replay`: what the fake venue sends is
//! what the recording holds, frame for frame (text and gzip binary).

use crate::common::*;
use mdrelay::serialization::frames::OwnedFrame;
use mdrelay::tools::replay::ReplaySpec;

#[test]
fn recording_reproduces_the_served_frames() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let served = frames(&["fixtures/okx/trades.jsonl", "fixtures/okx/control.jsonl"]);
    let mut with_binary = served.clone();
    with_binary.push(OwnedFrame::Binary(vec![0x1f, 0x8b, 0, 1, 2]));
    let replay = runtime.block_on(Replay::start(
        ReplaySpec {
            frames: with_binary.clone(),
            ..Default::default()
        },
        None,
    ));
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
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_mdrelay"))
        .args([
            "record",
            "--venue",
            "okx",
            "--duration",
            "2s",
            "--url",
            &replay.url(),
            "--config",
        ])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let recorded = mdrelay::cli::replay::read_frames(&[out]).unwrap();
    assert_eq!(
        recorded, with_binary,
        "the recording holds exactly the served frames"
    );
    // The recording subscribed like `run` does.
    assert!(
        replay
            .stats
            .messages_received
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    runtime.block_on(replay.stop());
}
