#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install the packages, build, and
# run the main job - compress a real Core ML model with the embedded engine -
# then show the result. Needs root (or sudo) for the package install.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
shared="${COREMLZ_SHARED_DIR:-$root/../shared}"

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"

model="$shared/models/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage"
if [[ ! -d "$model" ]]; then
  echo "setup.sh: built; no demo model at $model (set COREMLZ_SHARED_DIR to run the demo)" >&2
  exit 0
fi
demo="$build/demo"
mkdir -p "$demo"
echo
echo "== inspect $model"
"$build/clients/coremlz" inspect "$model" | head -n 12
echo "   ..."
echo
echo "== compress: 4-bit palettization (exact k-means), embedded engine"
"$build/clients/coremlz" compress "$model" -o "$demo/mobilenetv2_palettized.mlpackage" --palettize 4 --force \
  --report "$demo/report.json" | tail -n 6
echo
echo "JSON report: $demo/report.json"
echo "Next: run the service with $build/service/coremlzd and add --server 127.0.0.1:50051 to the same command."
