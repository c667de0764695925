#!/usr/bin/env bash
# Builds Cachalot and runs every test: the normal build, then the ASan+UBSan build.
# Usage: scripts/test.sh [--no-sanitizers]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

jobs=$(nproc)
run_suite() {
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  (cd "$dir" && ctest --output-on-failure --timeout 600)
}

# Test trees compile in the admin test clock (POST /test/clock) so conversation
# tests can move time without sleeping; release builds (run-demo.sh,
# container-build.sh) never do.
echo "== build and test (RelWithDebInfo)"
run_suite build -DCACHALOT_TEST_CLOCK=ON
if [[ "${1:-}" != "--no-sanitizers" ]]; then
  echo "== build and test (ASan+UBSan)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DCACHALOT_SANITIZE=address -DCACHALOT_TEST_CLOCK=ON
fi
if [[ "${1:-}" != "--no-sanitizers" ]]; then
  # TSan: the unit tests (the store's concurrent readers and writers among them).
  echo "== build and test unit tests (TSan)"
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCACHALOT_SANITIZE=thread -DCACHALOT_TEST_CLOCK=ON >/dev/null
  cmake --build build-tsan -j"$jobs" --target unit_tests
  (cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -R '^unit$')
fi
echo "all tests passed"
