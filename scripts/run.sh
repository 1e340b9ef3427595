#!/usr/bin/env bash
# Run the relay with the default config (config/relay.toml, or the file given
# as the first argument).
#
# NATS: $NATS_URL (default nats://127.0.0.1:4222), the same variable every
# shipped config reads. When a server answers there it is reused (the relay
# creates or updates the config's streams on it); otherwise a local
# nats-server with JetStream is started (scripts/nats-server.sh picks or
# installs a current one), storing under $MDRELAY_STATE/nats.
#
# The binary: $MDRELAY_BIN if set, else target/release/mdrelay, built here
# (a first release build takes several minutes; cargo shows its progress).
#
# Ctrl-C / SIGTERM stop the relay first and wait for it to drain, then the
# nats-server started here; the exit code is the relay's (0 on a clean stop).
#
# Environment: NATS_URL, MDRELAY_HTTP (the relay's /health and /metrics,
# default 127.0.0.1:8080), MDRELAY_STATE (default .mdrelay), MDRELAY_BIN,
# MDRELAY_NATS_SERVER (a nats-server binary to start).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/nats-server.sh

config="${1:-config/relay.toml}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
state="${MDRELAY_STATE:-.mdrelay}"
say() { printf 'run.sh: %s\n' "$*" >&2; }

hostport="${NATS_URL#*://}"; hostport="${hostport##*@}"; hostport="${hostport%%/*}"
host="${hostport%:*}"; port="${hostport##*:}"
[ "$host" = "$hostport" ] && port=4222
redacted="${NATS_URL%%://*}://${hostport}"
answers() { (exec 3<>"/dev/tcp/${host}/${port}") 2>/dev/null; }

nats_pid=""
relay=""
stop_nats() {
  if [ -n "$nats_pid" ]; then
    say "stopping nats-server (pid $nats_pid)"
    kill -TERM "$nats_pid" 2>/dev/null || true
    wait "$nats_pid" 2>/dev/null || true
    nats_pid=""
  fi
}
trap stop_nats EXIT
trap 'say "interrupted"; exit 130' INT TERM HUP

if answers; then
  say "reusing the NATS server already at ${redacted} (not started by this script);" \
    "the relay creates or updates the streams of ${config} on it"
else
  bin="$(find_nats_server)"
  mkdir -p "$state/nats"
  say "starting nats-server $(nats_server_version "$bin") with JetStream on ${host}:${port}" \
    "(store: $state/nats, log: $state/nats.log)"
  # Its own session: a Ctrl-C in the terminal reaches this script, which
  # stops the relay before the server.
  setsid "$bin" -a "$host" -p "$port" -js -sd "$state/nats" >"$state/nats.log" 2>&1 &
  nats_pid=$!
  for _ in $(seq 1 100); do
    answers && break
    kill -0 "$nats_pid" 2>/dev/null || { say "nats-server exited; see $state/nats.log"; exit 1; }
    sleep 0.1
  done
  answers || { say "nats-server does not answer on ${host}:${port}; see $state/nats.log"; exit 1; }
fi

if [ -n "${MDRELAY_BIN:-}" ]; then
  mdrelay="$MDRELAY_BIN"
else
  say "building mdrelay (cargo build --release; the first build takes several minutes)"
  started=$SECONDS
  cargo build --release --locked
  say "built in $((SECONDS - started)) s"
  mdrelay=./target/release/mdrelay
fi

on_signal() {
  trap '' INT TERM HUP
  if [ -n "$relay" ]; then
    say "stopping: the relay first (draining), then what this script started"
    kill -TERM "$relay" 2>/dev/null || true
  fi
}
trap on_signal INT TERM HUP
setsid "$mdrelay" run --config "$config" &
relay=$!
say "relay running (pid $relay, config $config, NATS ${redacted}); Ctrl-C stops it"
set +e
# A trapped signal interrupts `wait`; the relay may still be draining.
while kill -0 "$relay" 2>/dev/null; do wait "$relay"; done
wait "$relay"  # its exit status (bash keeps it)
rc=$?
set -e
say "relay exited with status $rc"
stop_nats
exit "$rc"
