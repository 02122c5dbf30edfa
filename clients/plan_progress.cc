#include "clients/plan_progress.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace coremlz::cli {
namespace {

void ShowTrials(int done, int total, ProgressBar* bar) {
  bar->Step("trials", done, total, absl::StrFormat("%d/%d weights x candidates measured", done, total));
}

void ShowRound(int round, ProgressBar* bar) {
  bar->Step("rounds", 0, 0, absl::StrCat("round ", round, ": the plan compressed and measured"));
}

constexpr char kStudy[] = "every candidate compressed once; the original's activations kept";
constexpr char kCompare[] = "each candidate applied uniformly, measured beside the plan";
constexpr char kPareto[] = "the size-vs-PSNR curve measured";

}  // namespace

void ShowPlanProgress(const plan::PlanProgress& p, ProgressBar* bar) {
  switch (p.phase) {
    case plan::PlanProgress::Phase::kStudy: bar->Step("study", 0, 0, kStudy); return;
    case plan::PlanProgress::Phase::kTrials: ShowTrials(p.trials_done, p.trials_total, bar); return;
    case plan::PlanProgress::Phase::kCompare: bar->Step("compare", 0, 0, kCompare); return;
    case plan::PlanProgress::Phase::kRounds: ShowRound(p.round, bar); return;
    case plan::PlanProgress::Phase::kPareto: bar->Step("pareto", 0, 0, kPareto); return;
  }
}

void ShowPlanProgress(const v1::PlanProgress& p, ProgressBar* bar) {
  switch (p.phase()) {
    case v1::PlanProgress::UPLOAD: bar->Bytes("upload", p.bytes_done(), p.bytes_total()); return;
    case v1::PlanProgress::QUEUED:
      bar->Step("queued", 0, 0,
                p.current().empty() ? absl::StrCat("position ", p.queue_position(), " in the server's queue")
                                    : p.current());
      return;
    case v1::PlanProgress::STUDY: bar->Step("study", 0, 0, kStudy); return;
    case v1::PlanProgress::TRIALS: ShowTrials(p.trials_done(), p.trials_total(), bar); return;
    case v1::PlanProgress::COMPARE: bar->Step("compare", 0, 0, kCompare); return;
    case v1::PlanProgress::ROUNDS: ShowRound(p.round(), bar); return;
    case v1::PlanProgress::PARETO: bar->Step("pareto", 0, 0, kPareto); return;
    case v1::PlanProgress::APPLY:
      // Without bytes: the server compresses; with them: the artifact arrives.
      if (p.bytes_total() > 0) {
        bar->Bytes("download", p.bytes_done(), p.bytes_total());
      } else {
        bar->Step("apply", 0, 0, "the plan compressed for --apply");
      }
      return;
    default: return;  // a newer server's phase: the line stays as it was
  }
}

}  // namespace coremlz::cli
