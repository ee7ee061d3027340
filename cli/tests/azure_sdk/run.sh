#!/usr/bin/env bash
# Drives `tresor serve` with the real Azure SDK for Python (azure-keyvault-secrets and
# azure-identity from PyPI): builds the binary, makes two fresh vaults (one with purge
# protection) with a key file, owner/writer/reader tokens and two managed identities, serves
# each on a free loopback port (and its identity endpoint on another), runs the pytest suite,
# stops the servers with SIGTERM and checks that they exit cleanly with the audit chain intact
# and that the identities' requests were audited under their names.
#
# Usage: cli/tests/azure_sdk/run.sh [pytest args…]   (TRESOR_SDK_VENV=DIR reuses a virtualenv)
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/tresor"
WORK=$(mktemp -d)
VENV=${TRESOR_SDK_VENV:-$WORK/venv}
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "-- building tresor"
cargo build --quiet -p tresor-cli --bin tresor

echo "-- installing the Azure SDK into a virtualenv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r cli/tests/azure_sdk/requirements.txt

# start_server NAME [init flags…]: a fresh vault DIR=$WORK/NAME served on a free port; sets URL.
start_server() {
    local dir="$WORK/$1"
    shift
    mkdir -p "$dir"
    local t=("$BIN" --vault "$dir/v.tresor" --key-file "$dir/k.key")
    "$BIN" keygen "$dir/k.key" >/dev/null
    "${t[@]}" init "$@" >/dev/null
    local role
    for role in owner writer reader; do
        "${t[@]}" token create --role "$role" --label "$role" >"$dir/$role.tok" 2>/dev/null
        # A managed identity per role but owner: its IDENTITY_HEADER, from the environment that
        # `tresor identity add` prints.
        if [ "$role" != owner ]; then
            "${t[@]}" identity add "mi-$role" --role "$role" 2>/dev/null |
                sed -n "s/^export IDENTITY_HEADER='\(.*\)'\$/\1/p" >"$dir/mi-$role.header"
            test -s "$dir/mi-$role.header"
        fi
    done
    "${t[@]}" --audit-reads buffered serve --addr 127.0.0.1:0 --identity-addr 127.0.0.1:0 \
        --identity-token-lifetime "$MI_LIFETIME" >"$dir/out.log" 2>"$dir/err.log" &
    PIDS+=($!)
    local i
    for i in $(seq 1 300); do
        if grep -q '^listening on ' "$dir/out.log" 2>/dev/null; then
            URL=$(sed -n 's/^listening on //p' "$dir/out.log" | head -n1)
            MI_ENDPOINT=$(sed -n 's/^identity endpoint: \([^ ]*\) .*/\1/p' "$dir/out.log")
            return 0
        fi
        if ! kill -0 "${PIDS[-1]}" 2>/dev/null; then
            echo "tresor serve exited early:" >&2
            cat "$dir/err.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "tresor serve did not start in 30 s" >&2
    return 1
}

# stop_server NAME PID: SIGTERM, a clean exit, and an audit chain that verifies afterwards.
stop_server() {
    local dir="$WORK/$1" pid=$2 status=0
    kill -TERM "$pid"
    wait "$pid" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "tresor serve ($1) exited with status $status:" >&2
        cat "$dir/err.log" >&2
        return 1
    fi
    "$BIN" --vault "$dir/v.tresor" --key-file "$dir/k.key" audit --verify
}

MI_LIFETIME=600
start_server main
TRESOR_MI_WRITER_HEADER=$(cat "$WORK/main/mi-writer.header")
TRESOR_MI_READER_HEADER=$(cat "$WORK/main/mi-reader.header")
export TRESOR_MI_ENDPOINT=$MI_ENDPOINT TRESOR_MI_LIFETIME=$MI_LIFETIME
export TRESOR_MI_WRITER_HEADER TRESOR_MI_READER_HEADER
export TRESOR_URL=$URL TRESOR_CA="$WORK/main/v.tresor.tls/ca.pem"
TRESOR_OWNER_TOKEN=$(cat "$WORK/main/owner.tok")
TRESOR_WRITER_TOKEN=$(cat "$WORK/main/writer.tok")
TRESOR_READER_TOKEN=$(cat "$WORK/main/reader.tok")
export TRESOR_OWNER_TOKEN TRESOR_WRITER_TOKEN TRESOR_READER_TOKEN
start_server protected --purge-protection
export TRESOR_PP_URL=$URL TRESOR_PP_CA="$WORK/protected/v.tresor.tls/ca.pem"
TRESOR_PP_OWNER_TOKEN=$(cat "$WORK/protected/owner.tok")
export TRESOR_PP_OWNER_TOKEN

# cli_traffic: 8 tresor processes at a time, each setting and reading back 10 secrets of the
# main vault while the suite runs. They pass no key: they go through the server (which holds the
# vault and its agent socket), or fail.
cli_traffic() {
    local p pids=() failed=0
    for p in 1 2 3 4 5 6 7 8; do
        (
            for i in $(seq 1 10); do
                printf 'v%s-%s' "$p" "$i" | "$BIN" --vault "$WORK/main/v.tresor" set "cli-p$p-s$i" >/dev/null
                test "$("$BIN" --vault "$WORK/main/v.tresor" get "cli-p$p-s$i")" = "v$p-$i"
            done
        ) &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || failed=1
    done
    return "$failed"
}

echo "-- azure-keyvault-secrets against $TRESOR_URL and $TRESOR_PP_URL, with 8 tresor processes"
cli_traffic >"$WORK/cli.log" 2>&1 &
CLI_PID=$!
status=0
"$VENV/bin/python" -m pytest -q -p no:cacheprovider cli/tests/azure_sdk "$@" || status=$?
if ! wait "$CLI_PID"; then
    echo "tresor commands failed while the server ran:" >&2
    cat "$WORK/cli.log" >&2
    exit 1
fi
for p in 1 2 3 4 5 6 7 8; do
    for i in $(seq 1 10); do
        test "$("$BIN" --vault "$WORK/main/v.tresor" get "cli-p$p-s$i")" = "v$p-$i"
    done
done
echo "-- 8 x 10 sets and gets through the server: every write present"
# pytest: 0 all passed, 1 some failed, 2 interrupted, 3 internal error, 4 usage error,
# 5 no tests collected. Only 0 is a pass.
if [ "$status" -ne 0 ]; then
    echo "azure sdk suite failed (pytest exit status $status); server logs:" >&2
    tail -n 50 "$WORK/main/err.log" "$WORK/protected/err.log" >&2
    exit 1
fi

echo "-- stopping the servers (SIGTERM)"
stop_server main "${PIDS[0]}"
stop_server protected "${PIDS[1]}"
PIDS=()
# The identities' requests are audited under their names.
"$BIN" --vault "$WORK/main/v.tresor" --key-file "$WORK/main/k.key" audit --json >"$WORK/audit.json"
for who in identity:mi-writer identity:mi-reader; do
    if ! grep -q "\"$who\"" "$WORK/audit.json"; then
        echo "no audit record names $who" >&2
        exit 1
    fi
done
