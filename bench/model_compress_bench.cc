// Whole-model compression timing through the embedded engine (what
// `coremlz compress` runs in-process), without the CLI's layers on top:
//   model_compress_bench MODEL CONFIG.yaml [THREADS] [REPEATS]
// prints the best wall time of REPEATS runs and the process CPU time (user +
// system, all threads) of that run, in seconds: on a shared machine the CPU
// time is the steadier number. THREADS is ignored
// by engines that predate CompressOptions::threads, so the same source
// times an older build side by side.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <ctime>

#include "absl/strings/numbers.h"
#include "common/file_util.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"

namespace {

template <typename Options>
auto SetThreads(Options& o, int n, int) -> decltype(o.threads = n, void()) {
  o.threads = n;
}
template <typename Options>
void SetThreads(Options&, int, long) {}

double CpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace coremlz;
  if (argc < 3 || argc > 5) {
    std::fprintf(stderr, "usage: %s MODEL CONFIG.yaml [THREADS=1] [REPEATS=1]\n", argv[0]);
    return 1;
  }
  int threads = 1, repeats = 1;
  if ((argc > 3 && !absl::SimpleAtoi(argv[3], &threads)) || (argc > 4 && !absl::SimpleAtoi(argv[4], &repeats))) {
    std::fprintf(stderr, "bad THREADS or REPEATS\n");
    return 1;
  }
  auto yaml = ReadFile(argv[2]);
  if (!yaml.ok()) {
    std::fprintf(stderr, "%s\n", std::string(yaml.status().message()).c_str());
    return 1;
  }
  auto config = engine::ParseCompressionConfig(*yaml);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  const std::string model = argv[1];
  const bool package = model.size() > 10 && model.substr(model.size() - 10) == ".mlpackage";
  const std::string out = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                          "/model_compress_bench_out" + (package ? ".mlpackage" : ".mlmodel");
  double best = 1e300, best_cpu = 0;
  for (int r = 0; r < repeats; ++r) {
    engine::CompressOptions options;
    SetThreads(options, threads, 0);
    engine::WriteOptions write;
    write.overwrite = true;
    const double cpu_start = CpuSeconds();
    const auto start = std::chrono::steady_clock::now();
    auto report = engine::CompressModelPath(model, out, *config, options, write);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!report.ok()) {
      std::fprintf(stderr, "%s\n", std::string(report.status().message()).c_str());
      return 1;
    }
    const double cpu = CpuSeconds() - cpu_start;
    if (s < best) {
      best = s;
      best_cpu = cpu;
    }
  }
  std::printf("%.3f %.3f\n", best, best_cpu);
  return 0;
}
