#!/usr/bin/env bash
# Drives `tresor serve` with the real Azure SDK for JavaScript (@azure/keyvault-secrets and
# @azure/identity, the versions of package-lock.json, installed with `npm ci`): a fresh vault with
# a managed identity (owner role), served on free loopback ports, test.mjs run with `node --test`
# in the environment `tresor identity add` prints, then a clean stop and an audit chain that
# verifies and names the identity.
#
# Usage: cli/tests/azure_sdk_js/run.sh   (needs node >= 20 and npm)
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/tresor"
JS=cli/tests/azure_sdk_js
WORK=$(mktemp -d)
PID=

cleanup() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "-- building tresor (a no-op after the Python suite)"
cargo build --quiet -p tresor-cli --bin tresor

echo "-- installing the Azure SDK for JavaScript (npm ci)"
(cd "$JS" && npm ci --no-audit --no-fund --loglevel=error)

t=("$BIN" --vault "$WORK/v.tresor" --key-file "$WORK/k.key")
"$BIN" keygen "$WORK/k.key" >/dev/null
"${t[@]}" init >/dev/null
"${t[@]}" identity add mi-node --role owner >"$WORK/mi.env" 2>/dev/null
MI_LIFETIME=600
"${t[@]}" --audit-reads buffered serve --addr 127.0.0.1:0 --identity-addr 127.0.0.1:0 \
    --identity-token-lifetime "$MI_LIFETIME" >"$WORK/out.log" 2>"$WORK/err.log" &
PID=$!
for _ in $(seq 1 300); do
    grep -q '^reads audited' "$WORK/out.log" 2>/dev/null && break
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "tresor serve exited early:" >&2
        cat "$WORK/err.log" >&2
        exit 1
    fi
    sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$WORK/out.log")
ENDPOINT=$(sed -n 's/^identity endpoint: \([^ ]*\) .*/\1/p' "$WORK/out.log")
if [ -z "$URL" ] || [ -z "$ENDPOINT" ]; then
    echo "tresor serve did not start in 30 s" >&2
    exit 1
fi

echo "-- @azure/keyvault-secrets against $URL (identity endpoint $ENDPOINT)"
status=0
(
    # The environment `tresor identity add` printed, with the ports this server chose.
    # shellcheck disable=SC1091
    . "$WORK/mi.env"
    export IDENTITY_ENDPOINT=$ENDPOINT AZURE_KEYVAULT_URL=$URL TRESOR_MI_LIFETIME=$MI_LIFETIME
    cd "$JS" && node --test --test-reporter=spec test.mjs
) || status=$?
if [ "$status" -ne 0 ]; then
    echo "azure sdk js suite failed; server log:" >&2
    tail -n 50 "$WORK/err.log" >&2
    exit 1
fi

echo "-- stopping the server (SIGTERM)"
kill -TERM "$PID"
wait "$PID" || { echo "tresor serve exited with status $?" >&2; cat "$WORK/err.log" >&2; exit 1; }
PID=
"${t[@]}" audit --verify
"${t[@]}" audit --json >"$WORK/audit.json"
grep -q '"identity:mi-node"' "$WORK/audit.json" || { echo "no audit record names identity:mi-node" >&2; exit 1; }
