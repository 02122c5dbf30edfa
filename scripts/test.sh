#!/usr/bin/env bash
# Builds (incrementally) and runs the whole test suite with CTest.
# Reference data is read from ../shared beside the checkout
# (override with COREMLZ_SHARED_DIR).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
"$root/scripts/build.sh"
cd "$build"
ctest --output-on-failure -j "${JOBS:-2}" "$@"
