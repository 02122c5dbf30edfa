#!/usr/bin/env bash
# LeakSanitizer run of docs/reliability.md: builds coremlzd and the load
# client with ASan+UBSan into ${ASAN_BUILD_DIR:-build-asan}, serves calls on
# loopback - completed ones and ones cancelled during the upload and during
# the job - then stops the server with SIGTERM. LeakSanitizer checks the heap
# when the server exits; any leak, or any ASan/UBSan report, fails the run.
#   scripts/leakcheck.sh                 # 8 streams for 20 s, every 3rd call cancelled
#   STREAMS=4 SECONDS_=10 scripts/leakcheck.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${ASAN_BUILD_DIR:-$root/build-asan}"
shared="${COREMLZ_SHARED_DIR:-$root/../shared}"
model="${MODEL:-$shared/models/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage}"

# LEAKCHECK_REUSE_BUILD=1: ASAN_BUILD_DIR is an already-configured sanitizer
# build (scripts/test.sh passes the fuzz build, whose libraries are built).
if [ -z "${LEAKCHECK_REUSE_BUILD:-}" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOREMLZ_SANITIZE=ON \
    -DCOREMLZ_BUILD_TESTS=OFF -DCOREMLZ_BUILD_BENCH=OFF >/dev/null
fi
cmake --build "$build" -j "${JOBS:-2}" --target coremlzd coremlz-load coremlz-worker coremlz-runner

log="$build/leakcheck-server.log"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
source "$root/scripts/start-coremlzd.sh"
start_coremlzd "$build/service/coremlzd" "$log" --metrics-address 127.0.0.1:0 --grace-seconds 30
pid=$server_pid
port=$server_port
trap 'kill -9 $pid 2>/dev/null || true' EXIT

status=0
"$build/bench/coremlz-load" --server "127.0.0.1:$port" --pid "$pid" --model "$model" \
  --streams "${STREAMS:-8}" --seconds "${SECONDS_:-20}" --cancel-every "${CANCEL_EVERY:-3}" || status=$?
kill -TERM "$pid"
server_status=0
wait "$pid" || server_status=$?
trap - EXIT
if grep -qE "ERROR: (LeakSanitizer|AddressSanitizer)|runtime error:" "$log"; then
  echo "leakcheck.sh: sanitizer reports in $log:"
  grep -A30 -E "ERROR: (LeakSanitizer|AddressSanitizer)|runtime error:" "$log" | head -80
  exit 1
fi
if grep -q "LeakSanitizer has encountered a fatal error" "$log"; then
  # LSan stops the world with ptrace-like means some sandboxes forbid: that is
  # the machine, not a finding. ASan and UBSan were active for every call.
  echo "leakcheck.sh: LeakSanitizer cannot run on this machine (see $log); ASan/UBSan found nothing"
  [ "$status" -eq 0 ]
  exit
fi
echo "leakcheck.sh: server exited with $server_status; no leak or sanitizer report (log: $log)"
[ "$status" -eq 0 ] && [ "$server_status" -eq 0 ]
