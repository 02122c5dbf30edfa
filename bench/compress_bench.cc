// Throughput of each compression technique on one large fp16 weight, as a
// job runs it: fp16 bytes decoded to floats, CompressWeight (algorithm, op
// construction, bit packing). Shapes: a 4096x4096 linear weight and a
// 1024x1024x3x3 conv weight. Bytes/s count the fp16 input; with Threads(2)
// two weights are compressed at once (the worker pool's parallelism) and the
// reported rate is the sum. Kernels poll a job control for cancellation as
// they do in a job.
//
//   build/bench/compress_bench --benchmark_filter=int8 --benchmark_min_time=1
//
// Results and the machine they came from: docs/performance.md.
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "absl/time/clock.h"
#include "engine/config_parse.h"
#include "engine/job_control.h"
#include "engine/weight_compressor.h"
#include "format/fp16.h"
#include "format/tensor.h"

namespace coremlz::engine {
namespace {

struct Technique {
  const char* name;
  Target target;
  const char* yaml;
};

const Technique kTechniques[] = {
    {"linear_int8_per_channel", Target::kIOS16, "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n"},
    {"linear_int4_per_block32", Target::kIOS18,
     "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int4, granularity: per_block, block_size: 32}\n"},
    {"palettize_4bit_kmeans", Target::kIOS16, "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4}\n"},
    {"palettize_4bit_uniform", Target::kIOS16, "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, mode: uniform}\n"},
    {"palettize_4bit_grouped16", Target::kIOS18,
     "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, granularity: per_grouped_channel, group_size: 16}\n"},
    {"palettize_2bit_vector2", Target::kIOS18, "config_type: OpPalettizerConfig\nglobal_config: {nbits: 2, cluster_dim: 2}\n"},
    {"prune_magnitude_50", Target::kIOS16, "config_type: OpMagnitudePrunerConfig\nglobal_config: {target_sparsity: 0.5}\n"},
    {"prune_n_m_2_4", Target::kIOS18, "config_type: OpMagnitudePrunerConfig\nglobal_config: {n_m_ratio: [2, 4]}\n"},
    {"joint_prune50_palettize4", Target::kIOS18,
     "passes:\n  - config_type: OpMagnitudePrunerConfig\n    global_config: {target_sparsity: 0.5}\n"
     "  - config_type: OpPalettizerConfig\n    joint_compression: true\n    global_config: {nbits: 4}\n"},
};

struct Shape {
  const char* name;
  format::Shape dims;
  const char* op_type;
};

const Shape kShapes[] = {{"linear4096x4096", {4096, 4096}, "linear"}, {"conv1024x1024x3x3", {1024, 1024, 3, 3}, "conv"}};

// fp16 bytes of N(0, 0.02) weights, like a trained layer's.
const std::string& Fp16Weights(uint64_t count) {
  static std::map<uint64_t, std::string> cache;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::string& bytes = cache[count];
  if (bytes.empty()) {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.f, 0.02f);
    bytes.resize(count * 2);
    for (uint64_t i = 0; i < count; ++i) {
      const uint16_t h = format::FloatToHalf(normal(rng));
      bytes[2 * i] = static_cast<char>(h & 0xff);
      bytes[2 * i + 1] = static_cast<char>(h >> 8);
    }
  }
  return bytes;
}

void BM_CompressWeight(benchmark::State& state, const Technique& technique, const Shape& shape) {
  auto config = ParseCompressionConfig(technique.yaml);
  if (!config.ok()) {
    state.SkipWithError(std::string(config.status().message()).c_str());
    return;
  }
  WeightTask task;
  task.name = "w";
  task.dtype = format::ElementType::kFloat16;
  task.shape = shape.dims;
  task.consumers.push_back({shape.op_type, "op", "weight", 1});
  task.out_axis = 0;
  task.in_axis = 1;
  task.primary = *config->passes[0].config.global;
  if (config->passes.size() > 1) task.joint = *config->passes[1].config.global;
  uint64_t count = 1;
  for (int64_t d : shape.dims) count *= static_cast<uint64_t>(d);
  const std::string& fp16 = Fp16Weights(count);
  // Polled as a job's weights are: a control with a deadline, so every poll
  // reads the clock as the service's does.
  JobControl control;
  control.SetDeadline(absl::Now() + absl::Hours(24));
  for (auto _ : state) {
    auto values = format::ToFloats({format::ElementType::kFloat16, shape.dims, fp16});
    compress::CancelCheck cancel = control.KernelCheck();
    auto result = CompressWeight(task, std::move(*values), technique.target, &cancel);
    if (!result.ok()) {
      state.SkipWithError(std::string(result.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(result->ops.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * fp16.size()));
}

int Register() {
  for (const Technique& t : kTechniques) {
    for (const Shape& s : kShapes) {
      benchmark::RegisterBenchmark((std::string(t.name) + "/" + s.name).c_str(), BM_CompressWeight, t, s)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(2)
          ->Threads(1)
          ->Threads(2);
    }
  }
  return 0;
}

const int kRegistered = Register();

}  // namespace
}  // namespace coremlz::engine

// Memory bandwidth for context: every technique makes several passes over
// its weight, so the machine's copy rate bounds what any of them can reach.
namespace coremlz::engine {
namespace {

void BM_MemoryCopy(benchmark::State& state) {
  const size_t bytes = 64 << 20;
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), bytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_MemoryCopy)->Unit(benchmark::kMillisecond)->UseRealTime()->Threads(1)->Threads(2);

}  // namespace
}  // namespace coremlz::engine
