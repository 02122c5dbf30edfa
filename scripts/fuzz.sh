#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) into ${FUZZ_BUILD_DIR:-build-fuzz}
# and runs each for ${FUZZ_SECONDS:-30} seconds, starting from the committed
# seeds and regressions plus seeds made from ../shared's reference models.
#   scripts/fuzz.sh                      # every target, 30 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh fuzz_decompress
#   FUZZ_RUNS=1000000 scripts/fuzz.sh    # a fixed number of executions instead
# A crash leaves its input in build-fuzz/artifacts/<target>/; minimise it
# (the target binary with -minimize_crash=1), fix the bug and commit the input
# under tests/fuzz/regressions/<target>/ so ctest replays it for ever.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${FUZZ_SECONDS:-30}"
shared="${COREMLZ_SHARED_DIR:-$root/../shared}"
all=(fuzz_model_spec fuzz_manifest fuzz_weight_bin fuzz_mil_program fuzz_decompress fuzz_config fuzz_compress_stream fuzz_program_executor fuzz_nn_executor)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

if [ -z "${FUZZ_SKIP_BUILD:-}" ]; then
  CC="${CC:-clang}" CXX="${CXX:-clang++}" cmake -S "$root" -B "$build" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOREMLZ_FUZZ=ON -DCOREMLZ_SHARED_DIR="$shared" >/dev/null
  cmake --build "$build" -j "${JOBS:-2}" --target "${targets[@]}" make_seeds
  "$build/tests/fuzz/make_seeds" "$shared" "$build/seeds" >/dev/null
fi
limit=(-max_total_time="$seconds")
label="${seconds}s"
if [ -n "${FUZZ_RUNS:-}" ]; then limit=(-runs="$FUZZ_RUNS"); label="$FUZZ_RUNS runs"; fi

status=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus" "$build/artifacts/$t"
  dirs=("$corpus")
  for d in "$root/tests/fuzz/seeds/$t" "$root/tests/fuzz/regressions/$t" "$build/seeds/$t"; do
    [ -d "$d" ] && dirs+=("$d")
  done
  echo "== $t ($label)"
  # rss_limit_mb: a decoder must refuse absurd shapes before allocating them.
  if ! "$build/tests/fuzz/$t" "${limit[@]}" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
      -timeout=10 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t/" "${dirs[@]}" \
      >"$build/$t.log" 2>&1; then
    echo "   FAILED: see $build/$t.log and $build/artifacts/$t/"
    tail -30 "$build/$t.log"
    status=1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "$build/$t.log" | tail -3 | sed 's/^/   /'
done
exit $status
