#!/usr/bin/env bash
# Offline demo: a local fake venue (`mdrelay replay`) serves recorded OKX
# frames in a loop, and the relay publishes them to JetStream. Watch with
#   nats sub 'market.>'      (or curl 127.0.0.1:8080/metrics)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
./target/release/mdrelay replay --listen 127.0.0.1:9001 --loop --rate 50 --reply ping=pong \
  --frames fixtures/okx/trades.jsonl fixtures/okx/ticker.jsonl fixtures/okx/book.jsonl &
replay=$!
trap 'kill "$replay" 2>/dev/null || true' EXIT
exec scripts/run.sh config/demo.toml
