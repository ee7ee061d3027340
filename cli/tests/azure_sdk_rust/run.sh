#!/usr/bin/env bash
# Drives `tresor serve` with the real Azure SDK for Rust (azure_security_keyvault_secrets,
# azure_identity, azure_core: the versions of Cargo.lock, a crate with a workspace of its own): a
# fresh vault with a managed identity (owner role) and a reader token, a second fresh vault with
# purge protection and an owner token, both served on free loopback ports; the program run in the
# environment `tresor identity add` prints; then a clean stop and audit chains that verify, the
# first naming the identity.
#
# Usage: cli/tests/azure_sdk_rust/run.sh   (needs cargo and a network, or a warm cargo cache)
set -euo pipefail
cd "$(dirname "$0")/../../.."
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
BIN="$TARGET/debug/tresor"
RS=cli/tests/azure_sdk_rust
WORK=$(mktemp -d)
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

echo "-- building tresor (a no-op after the Python suite)"
cargo build --quiet -p tresor-cli --bin tresor

echo "-- building the Azure SDK for Rust program (its own workspace and target dir)"
# Under the main target dir, so that CI caches nothing new elsewhere.
CARGO_TARGET_DIR="$TARGET/azure-sdk-rust" cargo build --quiet --locked --manifest-path "$RS/Cargo.toml"
PROGRAM="$TARGET/azure-sdk-rust/debug/tresor-azure-sdk-rust-tests"

MI_LIFETIME=600
# start_server DIR [init options]: a fresh vault in $WORK/DIR served on free loopback ports;
# sets URL and MI_ENDPOINT.
start_server() {
    local dir="$WORK/$1"
    shift
    mkdir -p "$dir"
    local t=("$BIN" --vault "$dir/v.tresor" --key-file "$dir/k.key")
    "$BIN" keygen "$dir/k.key" >/dev/null
    "${t[@]}" init "$@" >/dev/null
    "${t[@]}" token create --role owner --label owner >"$dir/owner.tok" 2>/dev/null
    "${t[@]}" token create --role reader --label reader >"$dir/reader.tok" 2>/dev/null
    "${t[@]}" identity add mi-rust --role owner >"$dir/mi.env" 2>/dev/null
    "${t[@]}" --audit-reads buffered serve --addr 127.0.0.1:0 --identity-addr 127.0.0.1:0 \
        --identity-token-lifetime "$MI_LIFETIME" >"$dir/out.log" 2>"$dir/err.log" &
    PIDS+=($!)
    local i
    for i in $(seq 1 300); do
        if grep -q '^reads audited' "$dir/out.log" 2>/dev/null; then
            URL=$(sed -n 's/^listening on //p' "$dir/out.log" | head -n1)
            MI_ENDPOINT=$(sed -n 's/^identity endpoint: \([^ ]*\) .*/\1/p' "$dir/out.log")
            if [ -n "$URL" ] && [ -n "$MI_ENDPOINT" ]; then
                return 0
            fi
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

start_server main
MAIN_URL=$URL MAIN_ENDPOINT=$MI_ENDPOINT
start_server protected --purge-protection
PP_URL=$URL

echo "-- azure_security_keyvault_secrets against $MAIN_URL (identity endpoint $MAIN_ENDPOINT) and $PP_URL"
status=0
(
    # The environment `tresor identity add` printed, with the ports this server chose.
    # shellcheck disable=SC1091
    . "$WORK/main/mi.env"
    export IDENTITY_ENDPOINT=$MAIN_ENDPOINT AZURE_KEYVAULT_URL=$MAIN_URL TRESOR_MI_LIFETIME=$MI_LIFETIME
    TRESOR_READER_TOKEN=$(cat "$WORK/main/reader.tok")
    TRESOR_PP_TOKEN=$(cat "$WORK/protected/owner.tok")
    export TRESOR_READER_TOKEN TRESOR_PP_TOKEN TRESOR_PP_URL=$PP_URL
    export TRESOR_PP_CA="$WORK/protected/v.tresor.tls/ca.pem"
    # `set -e` does not hold in a subshell on the left of `||`: each run stops it by itself.
    "$PROGRAM" all || exit 1
    # The same program without the CA, and with an identity header the vault does not know.
    env -u SSL_CERT_FILE "$PROGRAM" untrusted || exit 1
    IDENTITY_HEADER="tresor_$(printf '0%.0s' $(seq 1 64))" "$PROGRAM" wrong-header || exit 1
) || status=$?
if [ "$status" -ne 0 ]; then
    echo "azure sdk rust suite failed; server logs:" >&2
    tail -n 50 "$WORK/main/err.log" "$WORK/protected/err.log" >&2
    exit 1
fi

echo "-- stopping the servers (SIGTERM)"
stop_server main "${PIDS[0]}"
stop_server protected "${PIDS[1]}"
PIDS=()
"$BIN" --vault "$WORK/main/v.tresor" --key-file "$WORK/main/k.key" audit --json >"$WORK/audit.json"
grep -q '"identity:mi-rust"' "$WORK/audit.json" || { echo "no audit record names identity:mi-rust" >&2; exit 1; }
