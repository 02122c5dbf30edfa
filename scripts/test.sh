#!/usr/bin/env bash
# The test command (README, CI): builds (incrementally), runs the whole ctest
# suite, then runs every fuzz target for a bounded time (FUZZ_SECONDS, default
# 30) under ASan+UBSan when clang is installed, and a LeakSanitizer run of
# coremlzd under load from that same build. Reference data is read from
# ../shared beside the checkout (override with COREMLZ_SHARED_DIR).
#   scripts/test.sh                  # everything
#   scripts/test.sh -R service       # extra arguments go to ctest
#   SKIP_FUZZ=1 scripts/test.sh      # ctest only
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
"$root/scripts/build.sh"

status=0
(cd "$build" && ctest --output-on-failure -j "${JOBS:-2}" "$@") || status=$?

if [[ -z "${SKIP_FUZZ:-}" && $# -eq 0 ]]; then
  if command -v clang++ >/dev/null; then
    echo "== fuzz smoke run: ${FUZZ_SECONDS:-30} s per target (scripts/fuzz.sh)"
    FUZZ_SECONDS="${FUZZ_SECONDS:-30}" "$root/scripts/fuzz.sh" || status=$?
    # The fuzz build is ASan+UBSan with its libraries built: serve real calls
    # from it (completed and cancelled) and fail on any leak or report.
    echo "== LeakSanitizer run of coremlzd (scripts/leakcheck.sh)"
    ASAN_BUILD_DIR="${FUZZ_BUILD_DIR:-$root/build-fuzz}" LEAKCHECK_REUSE_BUILD=1 \
      STREAMS="${LEAK_STREAMS:-4}" SECONDS_="${LEAK_SECONDS:-15}" "$root/scripts/leakcheck.sh" || status=$?
  else
    echo "== fuzz smoke run skipped: clang++ not installed (scripts/install-deps.sh installs it)"
  fi
fi

if [[ $status -eq 0 ]]; then echo "test.sh: all tests passed"; else echo "test.sh: FAILED (status $status)"; fi
exit $status
