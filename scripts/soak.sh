#!/usr/bin/env bash
# Long runs of the reliability apparatus (not part of CI; hours on 2 cores).
#
#   scripts/soak.sh            # everything below
#   scripts/soak.sh crash      # one part: crash | faults | tamper | nonces | fuzz
#
# Knobs (environment): TRESOR_SOAK_CRASH_CYCLES (10000), TRESOR_SOAK_FLIPS ("all": every bit of
# the tamper vault, about an hour), TRESOR_SOAK_FAULT_IMAGES (20 power-cut images per fault
# point), TRESOR_SOAK_FUZZ_SECONDS (3600 per target), TRESOR_SOAK_ASAN=1 (fuzz with
# AddressSanitizer through RUSTC_BOOTSTRAP=1). Every part prints its seed; the tests take
# TRESOR_CRASH_SEED, TRESOR_FAULT_SEED and TRESOR_TAMPER_SEED to replay a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
part="${1:-all}"

run() { [ "$part" = all ] || [ "$part" = "$1" ]; }

if run crash; then
  echo "== crash: ${TRESOR_SOAK_CRASH_CYCLES:-10000} SIGKILL cycles"
  TRESOR_CRASH_CYCLES="${TRESOR_SOAK_CRASH_CYCLES:-10000}" \
    cargo test --release --test crash_consistency -- --nocapture acknowledged_writes
fi
if run faults; then
  echo "== I/O faults with ${TRESOR_SOAK_FAULT_IMAGES:-20} power-cut images per fault point"
  TRESOR_FAULT_IMAGES="${TRESOR_SOAK_FAULT_IMAGES:-20}" \
    cargo test --release --test io_faults -- --nocapture
fi
if run tamper; then
  echo "== tamper: bit flips ${TRESOR_SOAK_FLIPS:-all}, every truncation"
  TRESOR_TAMPER_FLIPS="${TRESOR_SOAK_FLIPS:-all}" TRESOR_TAMPER_TRUNCATIONS=100000 \
    cargo test --release --test tamper -- --nocapture --test-threads 1
fi
if run nonces; then
  echo "== nonces: 100,000,000 seals"
  TRESOR_NONCE_SEALS=100000000 cargo test --release --test hygiene -- --nocapture nonce
fi
if run fuzz; then
  secs="${TRESOR_SOAK_FUZZ_SECONDS:-3600}"
  cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
  cd fuzz
  for target in decode_records parse_slots restore_backup ops_model open_file; do
    echo "== fuzz $target for $secs s"
    if [ "${TRESOR_SOAK_ASAN:-0}" = 1 ]; then
      RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=6144
    else
      cargo fuzz run --sanitizer=none "$target" -- -max_total_time="$secs" -rss_limit_mb=6144
    fi
  done
fi
echo "== soak: ok"
