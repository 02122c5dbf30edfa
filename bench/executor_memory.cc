// Peak memory of one forward pass through the reference executor, against
// the bound the executor is held to: the weights, plus the two largest
// activations, plus 64 MiB of fixed overhead (code, allocator, protobuf).
//
//   executor_memory MODEL [--function F]
//
// Prints one JSON object. Resident set sizes come from /proc/self/status
// (VmRSS, VmHWM), so one model per process: bench/executor_memory.sh runs it
// over the shared models and prints the table in docs/performance.md.
// "weights" is the executor's decoded constants (float32) for an ML Program;
// a NeuralNetwork keeps its weights inside its layers, so its weights are
// taken as what loading added to the resident set.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "execute/loaded_model.h"
#include "execute/synthetic_inputs.h"

namespace {

// A "VmXXX:   1234 kB" line of /proc/self/status, in bytes; -1 if absent.
long long StatusBytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::atoll(line.c_str() + key.size() + 1) * 1024;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && !(argc == 4 && std::string(argv[2]) == "--function")) {
    std::fprintf(stderr, "usage: executor_memory MODEL [--function F]\n");
    return 2;
  }
  const std::string function = argc == 4 ? argv[3] : "";
  const long long baseline = StatusBytes("VmRSS");
  auto loaded = coremlz::execute::LoadModel(argv[1], function);
  if (!loaded.ok()) {
    std::fprintf(stderr, "executor_memory: %s\n", std::string(loaded.status().ToString()).c_str());
    return 1;
  }
  auto specs = coremlz::execute::DescribeInputs(loaded->model(), *loaded->executor);
  if (!specs.ok()) {
    std::fprintf(stderr, "executor_memory: %s\n", std::string(specs.status().ToString()).c_str());
    return 1;
  }
  const auto inputs = coremlz::execute::SyntheticInputs(*specs, 1, 0);
  long long input_bytes = 0;
  for (const auto& [name, t] : inputs) input_bytes += static_cast<long long>(t.size()) * 4;
  const long long after_load = StatusBytes("VmRSS");
  coremlz::execute::RunStats stats;
  auto out = loaded->executor->Run(inputs, &stats);
  if (!out.ok()) {
    std::fprintf(stderr, "executor_memory: %s\n", std::string(out.status().ToString()).c_str());
    return 1;
  }
  const long long peak = StatusBytes("VmHWM");
  const auto* program = loaded->program();
  const long long weights = program ? program->constant_bytes() : after_load - baseline;
  const long long activations = stats.largest_intermediate_bytes + stats.second_largest_intermediate_bytes;
  const long long bound = weights + activations + input_bytes + (64LL << 20);
  const long long used = peak - baseline;
  std::printf(
      "{\"model\": \"%s\", \"kind\": \"%s\", \"weights_bytes\": %lld, \"inputs_bytes\": %lld, "
      "\"largest_two_activations_bytes\": %lld, \"peak_live_intermediates_bytes\": %lld, "
      "\"rss_after_load_bytes\": %lld, \"peak_rss_bytes\": %lld, \"bound_bytes\": %lld, \"within_bound\": %s}\n",
      argv[1], program ? "mlprogram" : "neuralnetwork", weights, input_bytes, activations,
      static_cast<long long>(stats.peak_live_bytes), after_load - baseline, used, bound,
      used <= bound ? "true" : "false");
  return 0;
}
