#!/usr/bin/env bash
# The project's test command: formatting, lints (warnings are errors) and every
# test, including the fixture gate (`mdrelay validate`) and the end-to-end
# tests that start their own nats-server: $MDRELAY_NATS_SERVER, else the newest
# of the one on PATH and the one scripts/nats-server.sh installs under .mdrelay/
# (.ci/run exports it: 2.15.x).
#
# The integration tests are one binary (tests/it); most of their time is
# spent waiting on sockets, brokers and timers. With cargo-nextest (on the
# machine image; `cargo install cargo-nextest` elsewhere) each test runs in
# its own process, four at a time, the CPU-heavy ones two at a time and the
# JetStream cluster cases one at a time beside the rest (.config/nextest.toml).
# Without it, `cargo test` runs them four at a time, then the cluster cases
# one at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*" >&2; }
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (warnings are errors)"
cargo clippy --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  step "cargo nextest run (unit and integration tests)"
  cargo nextest run --locked --lib --bins --tests
else
  export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
  step "cargo test (the JetStream cluster cases apart; cargo-nextest not found)"
  cargo test --locked --lib --bins --tests -- --skip cluster::
  # Three brokers and a relay streaming at 1,100 frames/s each: on their
  # own, one at a time, so neither they nor the other tests' timings suffer.
  step "cargo test: JetStream cluster cases, one at a time"
  cargo test --test it --locked cluster:: -- --test-threads=1
fi
step "cargo test: benchmarks run once as tests"
cargo test --locked --benches
