#!/usr/bin/env bash
# Sets up, builds and runs every test: the normal build, then ASan+UBSan and TSan builds of the
# harness (the recorder library itself is never sanitized: it runs inside other programs).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

run_suite() {
    local dir=$1
    shift
    bash scripts/setup.sh "$dir" "$@"
    ctest --test-dir "$dir" --output-on-failure -j"$jobs"
}

run_suite build
run_suite build-asan -DMALLET_ASAN=ON
run_suite build-tsan -DMALLET_TSAN=ON
