#include "plan/candidate_build.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "engine/compress_model.h"
#include "engine/job_control.h"

namespace coremlz::plan {
namespace {

// Stops a candidate's compression inside a weight when the plan is cancelled.
class CancelHook : public engine::JobControl {
 public:
  explicit CancelHook(const std::function<bool()>& cancelled) : cancelled_(cancelled) {}
  bool Cancelled() const override { return cancelled_ && cancelled_(); }

 private:
  const std::function<bool()>& cancelled_;
};

}  // namespace

std::string CandidatePath(const std::string& work_dir, const std::string& name, const std::string& model_path) {
  return JoinPath(work_dir, absl::StrCat("candidate-", name, IsDirectory(model_path) ? ".mlpackage" : ".mlmodel"));
}

CandidateRun BuildCandidate(const std::string& model_path, const CandidateJob& job, const std::string& function,
                            const std::function<bool()>& cancelled, int compress_threads) {
  CandidateRun run;
  if (!job.candidate.config) {
    run.status = absl::InvalidArgumentError("keep has nothing to build");
    return run;
  }
  if (cancelled && cancelled()) {
    run.status = absl::CancelledError("the plan was cancelled");
    return run;
  }
  CancelHook control(cancelled);
  engine::CompressionConfig config;
  config.passes.push_back({});
  config.passes[0].config.global = *job.candidate.config;
  engine::CompressOptions options;
  options.threads = std::max(1, compress_threads);
  absl::StatusOr<engine::CompressionReport> report =
      engine::CompressModelPath(model_path, job.package, config, options, engine::WriteOptions{}, &control);
  if (!report.ok()) {
    run.status = report.status();
    return run;
  }
  return LoadCandidate(job.package, function, *std::move(report));
}

CandidateRun LoadCandidate(const std::string& package, const std::string& function, engine::CompressionReport report) {
  CandidateRun run;
  run.report = std::move(report);
  absl::StatusOr<execute::LoadedModel> model = execute::LoadModel(package, function);
  if (!model.ok()) {
    run.status = model.status();
    return run;
  }
  run.model = *std::move(model);
  return run;
}

std::vector<CandidateRun> BuildLocally(const std::vector<CandidateJob>& jobs, const CandidateBuilder& local,
                                       int threads) {
  std::vector<CandidateRun> runs(jobs.size());
  std::atomic<size_t> next{0};
  auto work = [&]() {
    for (size_t i = next++; i < jobs.size(); i = next++) runs[i] = local(jobs[i]);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min<int>(threads, static_cast<int>(jobs.size())); ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  return runs;
}

}  // namespace coremlz::plan
