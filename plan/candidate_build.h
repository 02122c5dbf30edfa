// One candidate compressed over the whole model, the unit in which a study's
// candidate data is built: the engine compresses every weight the candidate
// applies to (each independently of the others, so a weight's report row is
// what compressing it alone stores), and the executor loads the result to
// give each weight's decoded value.
//
// Builds are the expensive half of a study (k-means at 8 bits dominates), so
// where they run is pluggable like the trials: by default on the study's own
// threads, or fanned out by the Plan RPC to remote workers, which build a
// candidate, keep it for the trials they are then given, and send the
// compressed package back. A package's bytes are the same wherever it was
// compressed, so the study, and the plan, are the same either way.
#ifndef COREMLZ_PLAN_CANDIDATE_BUILD_H_
#define COREMLZ_PLAN_CANDIDATE_BUILD_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/report.h"
#include "execute/loaded_model.h"
#include "plan/candidate.h"

namespace coremlz::plan {

struct CandidateJob {
  int index = 0;  // in the study's candidates
  Candidate candidate;
  std::string package;  // where the compressed model goes
};

struct CandidateRun {
  absl::Status status;  // FAILED_PRECONDITION: the deployment target cannot express it
  engine::CompressionReport report;
  execute::LoadedModel model;  // `function` of the compressed package
};

// Where candidate `name` of a plan of `model_path` is written in
// `work_dir`: a model of the input's kind (an .mlpackage directory, or an
// .mlmodel file), as the engine writes nothing else.
std::string CandidatePath(const std::string& work_dir, const std::string& name, const std::string& model_path);

// Compresses `job` with the engine into job.package and loads it.
// `cancelled` (optional) is polled inside the weights. `compress_threads`:
// weights compressed at once within this build; the package is the same
// whatever the number (the engine writes in blob order).
CandidateRun BuildCandidate(const std::string& model_path, const CandidateJob& job, const std::string& function,
                            const std::function<bool()>& cancelled, int compress_threads = 1);
// A package built elsewhere (its report came with it), loaded.
CandidateRun LoadCandidate(const std::string& package, const std::string& function, engine::CompressionReport report);

// What remote builders are checked against before their work is used: the
// study's full candidate list (by name, in order), samples and outputs.
struct StudyShape {
  std::vector<std::string> candidates;
  int samples = 0;
  std::vector<std::string> outputs;
};

using CandidateBuilder = std::function<CandidateRun(const CandidateJob&)>;
// Runs every job, with `local` or elsewhere; results in the order of `jobs`.
using CandidateFanOut = std::function<std::vector<CandidateRun>(
    const std::vector<CandidateJob>& jobs, const CandidateBuilder& local, const StudyShape& shape)>;

// The default: `local` on `threads` threads.
std::vector<CandidateRun> BuildLocally(const std::vector<CandidateJob>& jobs, const CandidateBuilder& local,
                                       int threads);

}  // namespace coremlz::plan

#endif  // COREMLZ_PLAN_CANDIDATE_BUILD_H_
