#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install the packages, build, and
# run the main job - compress a real Core ML model with the embedded engine -
# then show the result. Runs as root as it is, or as a user with sudo (only
# the package install needs it). The demo model ships with the repository
# (models/, with its licenses), so a bare clone needs nothing beside it;
# COREMLZ_DEMO_MODEL points it at another model.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"

model="${COREMLZ_DEMO_MODEL:-$root/models/silero_vad/silero-vad-unified-v6.0.0.mlpackage}"
if [[ ! -e "$model" ]]; then
  echo "setup.sh: built, but the demo model $model is missing" >&2
  exit 1
fi
cli="$build/clients/coremlz"
demo="$build/demo"
mkdir -p "$demo"
name="$(basename "$model")"
out="$demo/${name%.*}_palettized4.${name##*.}"

# Each command's output is captured whole and then shortened in the shell:
# piping into `head` would let it exit early and kill the writer with
# SIGPIPE, which `set -o pipefail` turns into a failed set-up.
show_first() {  # show_first N TEXT: the first N lines of TEXT
  local -a lines
  mapfile -t lines <<<"$2"
  printf '%s\n' "${lines[@]:0:$1}"
  if (( ${#lines[@]} > $1 )); then echo "   ... ($(( ${#lines[@]} - $1 )) more lines)"; fi
}

echo
echo "== coremlz inspect $model"
inventory="$("$cli" inspect "$model")"
show_first 14 "$inventory"
echo
echo "== coremlz compress --palettize 4 (exact k-means), embedded engine"
# --force replaces only a model package from an earlier run of this demo.
table="$("$cli" compress "$model" -o "$out" --palettize 4 --force --report "$demo/report.json")"
printf '%s\n' "$table"
echo
echo "Compressed model: $out"
echo "JSON report:      $demo/report.json"
echo "Next: start the service with $build/service/coremlzd and add --server 127.0.0.1:50051 to the same command."
