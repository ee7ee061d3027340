#!/usr/bin/env bash
# Load test of `tresor serve` over loopback: GET of one secret's latest version by many
# keep-alive connections at once, measured by wrk (Debian package `wrk`). Bounded: one run of
# DURATION seconds per read-audit level, on 127.0.0.1 only, and the server is stopped after.
#
# Usage: scripts/serve_load.sh [DURATION=15] [CONNECTIONS=32] [THREADS=2]
# Needs: wrk (apt-get install wrk); builds `tresor` in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
CONNECTIONS=${2:-32}
THREADS=${3:-2}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --quiet --release -p tresor-cli --bin tresor
BIN="${CARGO_TARGET_DIR:-target}/release/tresor"
WORK=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

T=("$BIN" --vault "$WORK/v.tresor" --key-file "$WORK/k.key")
"$BIN" keygen "$WORK/k.key" >/dev/null
"${T[@]}" init >/dev/null
printf 'a value of thirty-two bytes, ok.' | "${T[@]}" set db-password >/dev/null
"${T[@]}" token create --role reader --label load >"$WORK/token" 2>/dev/null

for level in buffered durable off; do
    "${T[@]}" --audit-reads "$level" serve --addr 127.0.0.1:0 >"$WORK/out" 2>"$WORK/err" &
    PID=$!
    for _ in $(seq 1 100); do grep -q '^listening on ' "$WORK/out" && break; sleep 0.1; done
    URL=$(sed -n 's/^listening on //p' "$WORK/out")
    echo "== GET $URL/secrets/db-password/ with reads audited: $level"
    echo "   wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s -H 'Authorization: Bearer <reader token>' $URL/secrets/db-password/?api-version=2026-04-01"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
        -H "Authorization: Bearer $(cat "$WORK/token")" \
        "$URL/secrets/db-password/?api-version=2026-04-01" | sed 's/^/   /'
    kill -TERM "$PID"
    wait "$PID"
    PID=
    # Confirm every request was answered 200 (wrk counts non-2xx separately) and audited.
    "${T[@]}" audit --verify | sed 's/^/   /'
done
