#!/usr/bin/env bash
# Peak memory of one forward pass of every model in ../shared/models (or
# $COREMLZ_SHARED_DIR/models) through the reference executor, one process
# per model; prints the JSON line executor_memory writes for each.
#   bench/executor_memory.sh [BUILD_DIR]
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
models="${COREMLZ_SHARED_DIR:-$root/../shared}/models"
tool="$build/bench/executor_memory"
[[ -x "$tool" ]] || { echo "executor_memory.sh: build $tool first" >&2; exit 2; }
find "$models" -maxdepth 2 \( -name '*.mlpackage' -o -name '*.mlmodel' \) | sort | while read -r model; do
  "$tool" "$model" || echo "{\"model\": \"$model\", \"error\": \"see stderr\"}"
done
