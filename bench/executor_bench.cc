// One forward pass of the shared models through the reference executor, on
// one thread (Eigen runs single-threaded here). The models are read from
// $COREMLZ_SHARED_DIR, else ../shared beside the source tree; inputs are
// random. Load time (constexpr decoding included) is timed separately.
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "benchmark/benchmark.h"
#include "execute/program_executor.h"

namespace {

using coremlz::execute::ProgramExecutor;
using coremlz::execute::Tensor;

std::string SharedDir() {
  const char* env = std::getenv("COREMLZ_SHARED_DIR");
  return env ? env : std::string(COREMLZ_SOURCE_DIR) + "/../shared";
}

std::string ModelPath(const std::string& name) {
  return SharedDir() + "/models/" + name + "/" + name + ".mlpackage";
}

std::map<std::string, Tensor> RandomInputs(const ProgramExecutor& ex) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  std::map<std::string, Tensor> in;
  for (const auto& d : ex.inputs()) {
    std::vector<int64_t> shape = d.shape;
    for (int64_t& s : shape) s = s < 0 ? 1 : s;
    std::vector<float> v(coremlz::execute::NumElements(shape));
    for (float& x : v) x = u(rng);
    in[d.name] = Tensor::Float(shape, std::move(v));
  }
  return in;
}

void BM_Forward(benchmark::State& state, const std::string& name) {
  auto package = coremlz::format::MlPackage::Open(ModelPath(name));
  if (!package.ok()) return state.SkipWithError(std::string(package.status().message()).c_str());
  auto ex = ProgramExecutor::Load(package->get());
  if (!ex.ok()) return state.SkipWithError(std::string(ex.status().message()).c_str());
  const auto inputs = RandomInputs(**ex);
  for (auto _ : state) {
    auto out = (*ex)->Run(inputs);
    if (!out.ok()) return state.SkipWithError(std::string(out.status().message()).c_str());
    benchmark::DoNotOptimize(out);
  }
}

void BM_Load(benchmark::State& state, const std::string& name) {
  auto package = coremlz::format::MlPackage::Open(ModelPath(name));
  if (!package.ok()) return state.SkipWithError(std::string(package.status().message()).c_str());
  for (auto _ : state) {
    auto ex = ProgramExecutor::Load(package->get());
    if (!ex.ok()) return state.SkipWithError(std::string(ex.status().message()).c_str());
    benchmark::DoNotOptimize(ex);
  }
}

BENCHMARK_CAPTURE(BM_Forward, mobilenetv2, std::string("mobilenetv2_randinit"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Forward, transformer_encoder, std::string("transformer_encoder_randinit"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Load, mobilenetv2, std::string("mobilenetv2_randinit"))->Unit(benchmark::kMillisecond);

}  // namespace
