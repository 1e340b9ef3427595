#!/usr/bin/env bash
# The project's test command: formatting, lints (warnings are errors) and every
# test, including the fixture gate (`mdrelay validate`) and the end-to-end
# tests that start their own nats-server (it must be on PATH; .ci/run installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
