#!/usr/bin/env bash
# Configures and builds coremlz into ${BUILD_DIR:-build}. Extra arguments go
# to CMake (e.g. -DCOREMLZ_BUILD_TESTS=OFF for a runtime-only build).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
jobs="${JOBS:-2}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@"
cmake --build "$build" -j "$jobs"
