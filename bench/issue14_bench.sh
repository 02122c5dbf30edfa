#!/bin/sh
# The issue-14 compression bench, side by side: six 2048x2048 linears,
# N(0, 0.02), iOS18, fp16 and fp32 (bench/linear_bench_model), every
# technique of the issue, plus 8-bit palettization of MobileNetV2, timed
# through the embedded engine (bench/model_compress_bench: what `coremlz
# compress` runs in-process) for one or more builds in one run.
#   bench/issue14_bench.sh LABEL=BUILD_DIR[:THREADS] ...
# e.g. bench/issue14_bench.sh old=../main-build new1=build:1 new2=build:2
# Prints: model technique label wall-seconds cpu-seconds (best of REPEATS, default 1).
set -eu
shared=${COREMLZ_SHARED_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
repeats=${REPEATS:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
first=${1#*=}
first=${first%%:*}
"$first/bench/linear_bench_model" "$work/fp16.mlpackage" fp16
"$first/bench/linear_bench_model" "$work/fp32.mlpackage" fp32
yaml() {  # name body
  printf '%s' "$2" > "$work/$1.yaml"
}
yaml int8_per_channel 'config_type: OpLinearQuantizerConfig
global_config: {dtype: int8}
'
yaml kmeans_4bit 'config_type: OpPalettizerConfig
global_config: {nbits: 4}
'
yaml kmeans_4bit_grouped16 'config_type: OpPalettizerConfig
global_config: {nbits: 4, granularity: per_grouped_channel, group_size: 16}
'
yaml magnitude_50 'config_type: OpMagnitudePrunerConfig
global_config: {target_sparsity: 0.5}
'
yaml int4_block32 'config_type: OpLinearQuantizerConfig
global_config: {dtype: int4, granularity: per_block, block_size: 32}
'
yaml joint_prune50_4bit 'passes:
  - {config_type: OpMagnitudePrunerConfig, global_config: {target_sparsity: 0.5}}
  - {config_type: OpPalettizerConfig, joint_compression: true, global_config: {nbits: 4}}
'
yaml kmeans_8bit 'config_type: OpPalettizerConfig
global_config: {nbits: 8}
'
run() {  # model technique
  for spec in $builds; do
    label=${spec%%=*}
    rest=${spec#*=}
    dir=${rest%%:*}
    threads=1
    case $rest in *:*) threads=${rest#*:} ;; esac
    t=$(TMPDIR=$work "$dir/bench/model_compress_bench" "$1" "$work/$2.yaml" "$threads" "$repeats")
    echo "$(basename "$1" .mlpackage) $2 $label $t"
  done
}
builds="$*"
for m in "$work/fp16.mlpackage" "$work/fp32.mlpackage"; do
  for t in int8_per_channel kmeans_4bit kmeans_4bit_grouped16 magnitude_50 int4_block32 joint_prune50_4bit; do
    run "$m" "$t"
  done
done
run "$shared/models/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage" kmeans_8bit
