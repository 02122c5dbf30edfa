#!/usr/bin/env bash
# LLM scale in bounded memory (issue 14): generates a decoder-shaped package
# (bench/gen_decoder), compresses it with int4 per block, int8 per channel
# and 4-bit grouped-channel palettization, embedded (coremlz compress) and
# through a local coremlzd, and prints wall time and peak RSS of each next to
# the bound (2x the largest tensor's float32 size + 256 MB). Deletes its
# files at the end. Not part of ctest (tests/clients/large_model_test is the
# ~1 GB version that is).
#
#   bench/llm_scale.sh [BUILD_DIR] [WORK_DIR]
#   LAYERS=25 WIDTH=4096 MLP=11008 VOCAB=32000   ~8.4 GB of fp16 (the default)
#   TECHNIQUES="int4 int8 pal4"  MODES="embedded server"  choose what runs
set -euo pipefail
build=${1:-build}
work=${2:-$build/llm-scale}
layers=${LAYERS:-25} width=${WIDTH:-4096} mlp=${MLP:-11008} vocab=${VOCAB:-32000}
techniques=${TECHNIQUES:-"int4 int8 pal4"}
modes=${MODES:-"embedded server"}
mkdir -p "$work"
daemon_pid=
cleanup() {
  if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

model=$work/decoder.mlpackage
/usr/bin/time -f "generate: %e s, peak RSS %M KB" "$build/bench/gen_decoder" --out "$model" --layers "$layers" \
  --width "$width" --mlp-width "$mlp" --vocab "$vocab"
largest=$(( (vocab > mlp ? vocab : mlp) * width ))
bound_mb=$(( (2 * largest * 4 + (256 << 20)) >> 20 ))
echo "largest tensor $largest elements; bound $bound_mb MB"

flags() {
  case $1 in
    int4) echo "--quantize int4 --block-size 32" ;;
    int8) echo "--quantize int8 --granularity per_channel" ;;
    pal4) echo "--palettize 4 --group-size 16" ;;
  esac
}

start_daemon() {
  local log=$work/coremlzd.log
  TMPDIR=$work "$build/service/coremlzd" --address 127.0.0.1:0 --metrics-address 127.0.0.1:0 --workers 1 \
    --max-upload-mb 1048576 > "$log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 200); do grep -q "serving gRPC on port " "$log" && break; sleep 0.1; done
  port=$(sed -n 's/.*serving gRPC on port \([0-9]*\).*/\1/p' "$log" | head -1)
}

for mode in $modes; do
  for t in $techniques; do
    out=$work/out-$t.mlpackage
    rm -rf "$out"
    server_flag=
    if [ "$mode" = server ]; then
      start_daemon  # a fresh one per job: its peak RSS is that job's
      server_flag="--server 127.0.0.1:$port --deadline 86400"
    fi
    # shellcheck disable=SC2046
    /usr/bin/time -f "%e %M %U %S" -o "$work/time" "$build/clients/coremlz" compress "$model" -o "$out" $(flags "$t") \
      $server_flag > /dev/null
    read -r seconds rss_kb user_s sys_s < "$work/time"
    cpu=$(awk -v u="$user_s" -v s="$sys_s" 'BEGIN { printf "%.1f", u + s }')
    if [ "$mode" = server ]; then
      client_kb=$rss_kb
      rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$daemon_pid/status")
      kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=
      echo "  (client peak RSS $(( client_kb >> 10 )) MB)"
    fi
    echo "$mode $t: $seconds s (client CPU $cpu s), load $(cut -d' ' -f1 /proc/loadavg), peak RSS $(( rss_kb >> 10 )) MB (bound $bound_mb MB), output $(du -sm "$out" | cut -f1) MB"
    rm -rf "$out"
  done
done
