#!/usr/bin/env bash
# Times `coremlz plan --server` against a coremlzd with 0..N remote workers
# (coremlz-worker processes on loopback, one trial thread each; the front
# plans with one local trial thread), and checks that the plan's YAML is the
# same for every worker count.
#   bench/plan_workers.sh                       # mobilenetv2_randinit, 0..3 workers
#   MODEL=path.mlpackage MAX_WORKERS=2 TARGET="--bits 4.5" bench/plan_workers.sh
#   FRONT_CPUS=0 WORKER_CPUS=1 bench/plan_workers.sh   # pinned with taskset (front / workers)
# Prints per setting: wall seconds of the call, the plan's trials phase and
# whole-plan seconds (from its report), and each process's CPU seconds. On a
# machine with fewer cores than processes the wall time cannot show the
# scale-out; the CPU split can: the busiest process's CPU seconds bound the
# wall time on dedicated cores from below (a projection, labelled as one).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
shared="${COREMLZ_SHARED_DIR:-$root/../shared}"
model="${MODEL:-$shared/models/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage}"
max_workers="${MAX_WORKERS:-3}"
# shellcheck disable=SC2206
target=(${TARGET:---bits 4.5})
out="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$out"
}
trap cleanup EXIT

# start NAME CPUS BINARY FLAGS...: sets started_port. CPUS: a taskset list, or "".
start() {
  local name="$1" cpus="$2" binary="$3"
  shift 3
  local pin=()
  [ -n "$cpus" ] && pin=(taskset -c "$cpus")
  "${pin[@]}" "$binary" --address 127.0.0.1:0 --metrics-address "" "$@" >"$out/$name.log" 2>&1 &
  pids+=($!)
  disown $!  # no "Killed" notice when it is stopped
  started_port=""
  for _ in $(seq 300); do
    started_port="$(grep -o 'serving gRPC on port [0-9]*' "$out/$name.log" | grep -o '[0-9]*$' || true)"
    [ -n "$started_port" ] && return 0
    sleep 0.1
  done
  cat "$out/$name.log"
  exit 1
}

first=""
for n in $(seq 0 "$max_workers"); do
  workers=""
  for i in $(seq 1 "$n"); do
    start "worker$n-$i" "${WORKER_CPUS:-}" "$build/workers/coremlz-worker" --workers 1
    workers="${workers:+$workers,}127.0.0.1:$started_port"
  done
  flags=(--workers 1)
  [ -n "$workers" ] && flags+=(--remote-workers "$workers")
  start "front$n" "${FRONT_CPUS:-}" "$build/service/coremlzd" "${flags[@]}"
  t0=$(date +%s.%N)
  "$build/clients/coremlz" plan "$model" "${target[@]}" --server "127.0.0.1:$started_port" \
    --config "$out/plan$n.yaml" --report "$out/plan$n.json" >/dev/null
  t1=$(date +%s.%N)
  python3 - "$out/plan$n.json" "$n" "$t0" "$t1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]} remote worker(s): call {float(sys.argv[4]) - float(sys.argv[3]):.1f} s, plan {r['seconds']:.1f} s "
      f"(study {r['phase_seconds']['study']:.1f}, trials {r['phase_seconds']['trials']:.1f}), {r['trials_run']} trials")
PY
  # CPU seconds of the front and each worker (utime + stime from /proc).
  ticks=$(getconf CLK_TCK)
  cpus=()
  for p in "${pids[@]}"; do
    cpus+=("$(awk -v t="$ticks" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$p/stat" 2>/dev/null || echo 0)")
  done
  # pids: the workers first, the front last.
  python3 - "$n" "${cpus[@]}" <<'PY'
import sys
n, cpu = int(sys.argv[1]), [float(x) for x in sys.argv[2:]]
front, workers = cpu[-1], cpu[:-1]
total, busiest = sum(cpu), max(cpu)
print(f"  CPU s: front {front:.1f}" + (", workers " + " / ".join(f"{w:.1f}" for w in workers) if workers else "")
      + f"; total {total:.1f}, busiest process {busiest:.1f} "
      f"(projection, not a measurement: at best {total / busiest:.2f}x on dedicated cores)")
PY
  if [ -z "$first" ]; then first="$out/plan$n.yaml"; else cmp -s "$first" "$out/plan$n.yaml" || { echo "the plan changed with $n workers" >&2; exit 1; }; fi
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pids=()
done
echo "same YAML for every worker count"
