#!/usr/bin/env bash
# The long run of the input fuzzer (ssl/tests/hostile_inputs.rs, test `fuzz_long`): seeded
# mutations of valid files through every parser a user's files reach — IDX raw and gzip,
# CIFAR, an image folder, a run's checkpoint and its config.toml — checking each case for
# no panic, one error line naming the file, at most 1 s and 64 MiB. (The test profile is
# already optimized, and keeps overflow checks on.)
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET]   # default 180 s, every target
#   FUZZ_SEED=123 bash scripts/fuzz.sh 60 idx_gz         # replay or extend one seed
#
# A failing input is saved under target/fuzz-failures/<target>/ and the run stops; move the
# file into ssl/tests/fuzz/regressions/<target>/ once fixed, where `cargo test` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_SECONDS="${1:-180}"
if [ -n "${2:-}" ]; then export FUZZ_TARGET="$2"; fi
exec cargo test -p tessera-ssl --test hostile_inputs fuzz_long -- --ignored --nocapture
