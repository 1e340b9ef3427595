#!/usr/bin/env bash
# Offline demo: a local fake venue (`mdrelay replay --session`) serves a
# recorded OKX session (BTC-USDT trades, tickers and book, demo/README.md),
# and the relay (scripts/run.sh, config/demo.toml) publishes it to JetStream.
# Each connection gets the whole session from the book snapshot on; at its
# end the fake venue closes the connection and the relay reconnects for the
# next session, as with a real venue.
#
# Ctrl-C / SIGTERM stop the relay first (drained), then the nats-server that
# run.sh started, then the fake venue; the exit code is 0 on a clean stop.
#
# Environment (besides run.sh's NATS_URL, MDRELAY_HTTP, MDRELAY_STATE,
# MDRELAY_BIN, MDRELAY_NATS_SERVER): MDRELAY_DEMO_LISTEN (the fake venue,
# default 127.0.0.1:9001), MDRELAY_DEMO_RATE (frames per second, default 20:
# about the recorded pace, ~10 s per session).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'demo.sh: %s\n' "$*" >&2; }

export MDRELAY_DEMO_LISTEN="${MDRELAY_DEMO_LISTEN:-127.0.0.1:9001}"
export MDRELAY_HTTP="${MDRELAY_HTTP:-127.0.0.1:8080}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
rate="${MDRELAY_DEMO_RATE:-20}"
state="${MDRELAY_STATE:-.mdrelay}"
mkdir -p "$state"

if [ -z "${MDRELAY_BIN:-}" ]; then
  say "building mdrelay (cargo build --release; the first build takes several minutes)"
  started=$SECONDS
  cargo build --release --locked
  say "built in $((SECONDS - started)) s"
  export MDRELAY_BIN=./target/release/mdrelay
fi

replay=""
run=""
stop_replay() {
  if [ -n "$replay" ]; then
    say "stopping the fake venue (pid $replay)"
    kill -TERM "$replay" 2>/dev/null || true
    wait "$replay" 2>/dev/null || true
    replay=""
  fi
}
trap stop_replay EXIT
trap 'say "interrupted"; exit 130' INT TERM HUP

# Its own session, like everything the scripts start: Ctrl-C reaches the
# scripts, which stop things in order.
setsid "$MDRELAY_BIN" replay --session --listen "$MDRELAY_DEMO_LISTEN" --rate "$rate" \
  --reply ping=pong --ack demo/okx-acks.jsonl --frames demo/okx-btc-usdt.jsonl \
  >"$state/replay.log" 2>&1 &
replay=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/${MDRELAY_DEMO_LISTEN%:*}/${MDRELAY_DEMO_LISTEN##*:}") 2>/dev/null && break
  kill -0 "$replay" 2>/dev/null || { say "the fake venue exited; see $state/replay.log"; exit 1; }
  sleep 0.1
done
say "fake venue on ws://$MDRELAY_DEMO_LISTEN: a recorded OKX BTC-USDT session at $rate frames/s, one per connection"
say "to see the data:"
say "  curl -s http://$MDRELAY_HTTP/metrics | grep -E '^mdrelay_events_(published|duplicate)_total'"
say "  curl -s http://$MDRELAY_HTTP/health"
if command -v nats >/dev/null 2>&1; then
  say "  nats --server $NATS_URL sub 'market.okx.>'"
fi

on_signal() {
  trap '' INT TERM HUP
  say "stopping: relay first (drained), then nats-server, then the fake venue"
  [ -n "$run" ] && kill -TERM "$run" 2>/dev/null || true
}
trap on_signal INT TERM HUP
scripts/run.sh config/demo.toml &
run=$!
set +e
while kill -0 "$run" 2>/dev/null; do wait "$run"; done
wait "$run"
rc=$?
set -e
stop_replay
exit "$rc"
