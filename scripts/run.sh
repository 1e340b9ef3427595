#!/usr/bin/env bash
# Run the relay with the default config (config/relay.toml, or the file given
# as the first argument). When no NATS server answers at NATS_URL (default
# nats://127.0.0.1:4222), start a local nats-server with JetStream, storing
# under .mdrelay/nats, and stop it again on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-config/relay.toml}"
url="${NATS_URL:-nats://127.0.0.1:4222}"
hostport="${url#*://}"; hostport="${hostport##*@}"
host="${hostport%:*}"; port="${hostport##*:}"

nats_pid=""
if ! (exec 3<>"/dev/tcp/${host}/${port}") 2>/dev/null; then
  if ! command -v nats-server >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing nats-server" >&2
      apt-get update -qq && apt-get install -y -qq nats-server >/dev/null
    else
      echo "no NATS at ${url} and no nats-server on PATH (apt-get install nats-server)" >&2
      exit 1
    fi
  fi
  mkdir -p .mdrelay/nats
  echo "starting nats-server with JetStream on ${host}:${port} (store: .mdrelay/nats)" >&2
  nats-server -a "$host" -p "$port" -js -sd .mdrelay/nats >.mdrelay/nats.log 2>&1 &
  nats_pid=$!
  trap '[ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/${host}/${port}") 2>/dev/null && break
    sleep 0.1
  done
fi

cargo build --release --locked --quiet
./target/release/mdrelay run --config "$config" &
relay=$!
trap '[ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null || true' EXIT
trap 'kill -TERM "$relay" 2>/dev/null || true' INT TERM
wait "$relay"
