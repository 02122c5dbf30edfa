// Peak memory of one forward pass through the reference executor, against
// the bound the executor is held to: the weights, plus the activations that
// must be alive at once, plus 64 MiB of fixed overhead (code, allocator,
// protobuf, kernel scratch such as convolution's <= 8 MiB im2col bands).
// "The activations alive at once" is the larger of the two largest
// activations (an op's input and output) and the most bytes of
// intermediates the executor held at any op (its input and output plus
// every value a later op still reads): a residual network keeps its skip
// tensors alive across a block, so EDSR's convolutions inside its global
// residual need four full-resolution activations at once (the global skip,
// the block input, the convolution's input and output), which no schedule
// that frees after last use can avoid.
//
//   executor_memory MODEL [--function F] [--trace]
//
// --trace prints to stderr, after every op, the live intermediates, the
// resident set and its high-water mark (MiB over the pre-load baseline), so
// that a peak above the bound can be pinned on the op that made it.
// Prints one JSON object. Resident set sizes come from /proc/self/status
// (VmRSS, VmHWM), so one model per process: bench/executor_memory.sh runs it
// over the shared models and prints the table in docs/performance.md.
// "weights" is the executor's decoded constants (float32) for an ML Program;
// a NeuralNetwork keeps its weights inside its layers, so its weights are
// taken as what loading added to the resident set.
#include <algorithm>
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
  std::string model, function;
  bool trace = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--function" && i + 1 < argc) {
      function = argv[++i];
    } else if (arg == "--trace") {
      trace = true;
    } else if (model.empty() && arg.rfind("--", 0) != 0) {
      model = arg;
    } else {
      model.clear();
      break;
    }
  }
  if (model.empty()) {
    std::fprintf(stderr, "usage: executor_memory MODEL [--function F] [--trace]\n");
    return 2;
  }
  const long long baseline = StatusBytes("VmRSS");
  auto loaded = coremlz::execute::LoadModel(model, function);
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
  const long long load_peak = StatusBytes("VmHWM");
  coremlz::execute::RunStats stats;
  if (trace) {
    constexpr double kMiB = 1 << 20;
    std::fprintf(stderr, "load: rss %.1f MiB, hwm %.1f MiB\n", (after_load - baseline) / kMiB,
                 (load_peak - baseline) / kMiB);
    stats.after_op = [&, last_hwm = load_peak](const std::string& location, int64_t live) mutable {
      const long long hwm = StatusBytes("VmHWM");
      std::fprintf(stderr, "live %7.1f  rss %7.1f  hwm %7.1f%s  %s\n", live / kMiB,
                   (StatusBytes("VmRSS") - baseline) / kMiB, (hwm - baseline) / kMiB, hwm > last_hwm ? " +" : "  ",
                   location.c_str());
      last_hwm = hwm;
    };
  }
  auto out = loaded->executor->Run(inputs, &stats);
  if (!out.ok()) {
    std::fprintf(stderr, "executor_memory: %s\n", std::string(out.status().ToString()).c_str());
    return 1;
  }
  const long long peak = StatusBytes("VmHWM");
  const auto* program = loaded->program();
  const long long weights = program ? program->constant_bytes() : after_load - baseline;
  const long long activations = stats.largest_intermediate_bytes + stats.second_largest_intermediate_bytes;
  const long long alive = std::max<long long>(activations, stats.peak_live_bytes);
  const long long bound = weights + alive + input_bytes + (64LL << 20);
  const long long used = peak - baseline;
  std::printf(
      "{\"model\": \"%s\", \"kind\": \"%s\", \"weights_bytes\": %lld, \"inputs_bytes\": %lld, "
      "\"largest_two_activations_bytes\": %lld, \"peak_live_intermediates_bytes\": %lld, "
      "\"rss_after_load_bytes\": %lld, \"peak_rss_during_load_bytes\": %lld, \"peak_rss_bytes\": %lld, \"bound_bytes\": %lld, \"within_bound\": %s}\n",
      model.c_str(), program ? "mlprogram" : "neuralnetwork", weights, input_bytes, activations,
      static_cast<long long>(stats.peak_live_bytes), after_load - baseline, load_peak - baseline, used, bound,
      used <= bound ? "true" : "false");
  return 0;
}
