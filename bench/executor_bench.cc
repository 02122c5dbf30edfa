// One forward pass of the shared models through the reference executor, on
// one thread (Eigen runs single-threaded here). The models are read from
// $COREMLZ_SHARED_DIR, else ../shared beside the source tree; inputs are
// synthetic (execute/synthetic_inputs, seed 1). Load time (constexpr
// decoding included) is timed separately.
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "benchmark/benchmark.h"
#include "execute/loaded_model.h"
#include "execute/synthetic_inputs.h"

namespace {

std::string SharedDir() {
  const char* env = std::getenv("COREMLZ_SHARED_DIR");
  return env ? env : std::string(COREMLZ_SOURCE_DIR) + "/../shared";
}

// The first model (an .mlpackage directory or an .mlmodel file) in
// models/NAME, whatever its file is called.
std::string ModelPath(const std::string& name) {
  const std::string dir = SharedDir() + "/models/" + name;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string ext = entry.path().extension().string();
    if (ext == ".mlpackage" || ext == ".mlmodel") return entry.path().string();
  }
  return dir + "/(no model found)";
}

void BM_Forward(benchmark::State& state, const std::string& name) {
  auto loaded = coremlz::execute::LoadModel(ModelPath(name), "");
  if (!loaded.ok()) return state.SkipWithError(std::string(loaded.status().message()).c_str());
  auto specs = coremlz::execute::DescribeInputs(loaded->model(), *loaded->executor);
  if (!specs.ok()) return state.SkipWithError(std::string(specs.status().message()).c_str());
  const auto inputs = coremlz::execute::SyntheticInputs(*specs, 1, 0);
  for (auto _ : state) {
    auto out = loaded->executor->Run(inputs);
    if (!out.ok()) return state.SkipWithError(std::string(out.status().message()).c_str());
    benchmark::DoNotOptimize(out);
  }
}

void BM_Load(benchmark::State& state, const std::string& name) {
  for (auto _ : state) {
    auto loaded = coremlz::execute::LoadModel(ModelPath(name), "");
    if (!loaded.ok()) return state.SkipWithError(std::string(loaded.status().message()).c_str());
    benchmark::DoNotOptimize(loaded);
  }
}

BENCHMARK_CAPTURE(BM_Forward, mobilenetv2, std::string("mobilenetv2_randinit"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Forward, transformer_encoder, std::string("transformer_encoder_randinit"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Forward, mosaic, std::string("mosaic_mlcommons"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Forward, edsr, std::string("edsr_f32b5"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Forward, posenet, std::string("posenet_mobilenet075_fp16"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Load, mobilenetv2, std::string("mobilenetv2_randinit"))->Unit(benchmark::kMillisecond);

}  // namespace
