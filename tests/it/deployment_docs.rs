//! Every configuration in docs/deployment.md is valid: each `toml` block
//! compiles as a relay config (venue files from the repository), each
//! `conf` block passes `nats-server -t`, each `json` block parses.

use std::process::Command;

use crate::common::root;

/// The fenced code blocks of a Markdown text: (info string, body).
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

#[test]
fn every_configuration_in_the_deployment_guide_is_valid() {
    let text = std::fs::read_to_string(root().join("docs/deployment.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut counts = (0, 0, 0);
    for (i, (info, body)) in blocks(&text).into_iter().enumerate() {
        match info.as_str() {
            "toml" => {
                let path = root().join("config/deployment-doc.toml");
                let full = format!(
                    "venues_dir = \"{}\"\n{body}",
                    root().join("venues").display()
                );
                if let Err(p) = mdrelay::config::relay::compile_relay(&path, &full, |_| None) {
                    panic!("relay config block {i} does not compile: {p:#?}\n{body}");
                }
                counts.0 += 1;
            }
            "conf" => {
                let path = dir.path().join(format!("block{i}.conf"));
                std::fs::write(&path, &body).unwrap();
                let out = Command::new("nats-server")
                    .arg("-t")
                    .arg("-c")
                    .arg(&path)
                    .output()
                    .expect("nats-server must be on PATH");
                assert!(
                    out.status.success(),
                    "nats-server rejects block {i}: {}\n{body}",
                    String::from_utf8_lossy(&out.stderr)
                );
                counts.1 += 1;
            }
            "json" => {
                let v: serde_json::Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("json block {i}: {e}\n{body}"));
                assert!(v.is_object());
                counts.2 += 1;
            }
            _ => {}
        }
    }
    assert!(
        counts.0 >= 6 && counts.1 >= 4 && counts.2 >= 1,
        "relay / nats-server / json blocks found: {counts:?}"
    );
}
