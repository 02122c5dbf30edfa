// How long `coremlz plan` takes on a shared model, by phase, with 1 and with
// N trial threads (the plan itself must not change with the thread count).
// Not a Google Benchmark: one plan takes seconds, so it is timed once per
// setting, wall and CPU.
//
//   build/bench/plan_bench [MODEL_NAME] [THREADS]   (default mobilenetv2_randinit, 2)
//
// Default candidates, 4 samples, --bits 4.5; models from $COREMLZ_SHARED_DIR,
// else ../shared beside the source tree.
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "plan/planner.h"

namespace {

std::string SharedDir() {
  const char* env = std::getenv("COREMLZ_SHARED_DIR");
  return env ? env : std::string(COREMLZ_SOURCE_DIR) + "/../shared";
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "mobilenetv2_randinit";
  int threads = 2;
  // -h / --help and bad counts get the usage, never a plan of "--help".
  if (argc > 3 || name.empty() || name[0] == '-' || (argc > 2 && (!absl::SimpleAtoi(argv[2], &threads) || threads < 1))) {
    std::fprintf(stderr, "usage: plan_bench [SHARED_MODEL_NAME=mobilenetv2_randinit] [THREADS=2]\n");
    return 2;
  }
  const std::string model = SharedDir() + "/models/" + name + "/" + name + ".mlpackage";
  std::vector<int> settings = {1};
  if (threads > 1) settings.push_back(threads);
  std::string first_config;
  for (int t : settings) {
    coremlz::plan::PlanOptions options;
    options.target = {coremlz::plan::PlanTarget::Kind::kBits, 4.5};
    options.study.samples = 4;
    options.study.threads = t;
    const double cpu = CpuSeconds();
    auto plan = coremlz::plan::MakePlan(model, options);
    if (!plan.ok()) {
      std::fprintf(stderr, "plan_bench: %s\n", std::string(plan.status().message()).c_str());
      return 1;
    }
    std::printf("%s, %d thread(s): %.1f s wall (study %.1f, trials %.1f, rounds %.1f, pareto %.1f), %.1f s CPU; "
                "%zu weights, %d trials, %d pruned; measured %.2f dB at %.3f bits/weight\n",
                name.c_str(), t, plan->seconds, plan->study_seconds, plan->trial_seconds, plan->round_seconds,
                plan->pareto_seconds, CpuSeconds() - cpu, plan->weights.size(), plan->trials_run, plan->trials_pruned,
                plan->measured.psnr_db, plan->measured.bits_per_weight);
    std::string config;
    for (const auto& w : plan->weights) config += std::to_string(w.chosen) + ",";
    if (first_config.empty()) first_config = config;
    if (config != first_config) {
      std::fprintf(stderr, "plan_bench: the plan changed with the thread count\n");
      return 1;
    }
  }
  return 0;
}
