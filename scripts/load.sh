#!/usr/bin/env bash
# The load test of docs/reliability.md: starts coremlzd on loopback, runs
# coremlz-load against it (64 streams for 60 s by default) and stops it.
#   scripts/load.sh                                  # defaults
#   STREAMS=16 SECONDS_=30 CANCEL_EVERY=4 scripts/load.sh
#   MODEL=path.mlpackage CONFIG="$(cat cfg.yaml)" scripts/load.sh
# Results: build/load/<timestamp>.json and the server log beside it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
shared="${COREMLZ_SHARED_DIR:-$root/../shared}"
model="${MODEL:-$shared/models/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage}"
out="$build/load"
mkdir -p "$out"
stamp="$(date +%Y%m%d-%H%M%S)"
log="$out/$stamp-server.log"

source "$root/scripts/start-coremlzd.sh"
# shellcheck disable=SC2086
start_coremlzd "$build/service/coremlzd" "$log" --metrics-address "" ${SERVER_FLAGS:-}
pid=$server_pid
port=$server_port
trap 'kill -9 $pid 2>/dev/null || true' EXIT

args=(--server "127.0.0.1:$port" --pid "$pid" --model "$model" --streams "${STREAMS:-64}"
      --seconds "${SECONDS_:-60}" --cancel-every "${CANCEL_EVERY:-0}" --json "$out/$stamp.json")
[ -n "${CONFIG:-}" ] && args+=(--config "$CONFIG")
status=0
"$build/bench/coremlz-load" "${args[@]}" || status=$?
kill -TERM "$pid"
wait "$pid" || true
echo "results: $out/$stamp.json (server log: $log)"
exit $status
