#include "execute/output_check.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/compare.h"
#include "execute/loaded_model.h"
#include "execute/synthetic_inputs.h"

namespace coremlz::execute {
namespace {

// Outputs shaped like class scores: one row (or a batch of rows) of two or
// more logits.
bool LooksLikeClassScores(const Tensor& t) { return t.rank() >= 1 && t.rank() <= 2 && t.shape().back() >= 2; }

// The scores a label output is the arg max of are class scores along that
// arg max's axis. When it is the last axis - checked: every label is the
// first maximum of its row - they get the class-score metrics too, and top-1
// agreement is then how many labels (a segmentation's pixels) stay the same.
bool LabelsAreLastAxisArgMax(const Tensor& scores, const Tensor& labels) {
  if (scores.rank() < 1 || !(labels.is_integer_storage() || labels.is_float())) return false;
  const int64_t classes = scores.shape().back();
  if (classes < 2 || labels.size() * classes != scores.size()) return false;
  const absl::Span<const float> s = scores.floats();
  for (int64_t row = 0; row < labels.size(); ++row) {
    // A NeuralNetwork's argMax gives its indices as floats.
    const double label = labels.is_float() ? labels.floats()[row] : labels.ints()[row];
    const float* first = s.data() + row * classes;
    if (static_cast<double>(std::max_element(first, first + classes) - first) != label) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<engine::OutputCheck>> CheckOutputs(const std::string& original, const std::string& compressed,
                                                              const OutputCheckOptions& options) {
  if (options.samples < 1 || options.samples > 10000) {
    return absl::InvalidArgumentError(absl::StrCat("the output check takes 1..10000 samples, not ", options.samples));
  }
  // Label outputs are measured on their scores (label_scores.h).
  ASSIGN_OR_RETURN(LoadedModel a, LoadModel(original, options.function, /*with_label_scores=*/true));
  ASSIGN_OR_RETURN(LoadedModel b, LoadModel(compressed, options.function, /*with_label_scores=*/true));
  ASSIGN_OR_RETURN(std::vector<InputSpec> specs, DescribeInputs(a.model(), *a.executor));
  struct Acc {
    engine::OutputCheck check;
    double snr_sum = 0;
    int snr_finite = 0;
  };
  std::map<std::string, Acc> acc;
  const int n = options.samples;
  for (int i = 0; i < n; ++i) {
    if (options.cancelled && options.cancelled()) return absl::CancelledError("the output check was cancelled");
    const auto inputs = SyntheticInputs(specs, options.seed, i);
    absl::StatusOr<std::map<std::string, Tensor>> ref = a.executor->Run(inputs);
    if (!ref.ok()) return absl::Status(ref.status().code(), absl::StrCat(original, ": ", ref.status().message()));
    absl::StatusOr<std::map<std::string, Tensor>> out = b.executor->Run(inputs);
    if (!out.ok()) return absl::Status(out.status().code(), absl::StrCat(compressed, ": ", out.status().message()));
    for (const auto& [name, r] : *ref) {
      auto it = out->find(name);
      auto exposed = a.exposed_scores.find(name);
      if (it == out->end() || it->second.shape() != r.shape() || it->second.dtype() != r.dtype()) {
        if (exposed != a.exposed_scores.end()) {
          return absl::InvalidArgumentError(absl::StrCat("the scores of ", exposed->second, " (the value '", name,
                                                         "' its arg max reads) differ in name, shape or type between "
                                                         "the two models"));
        }
        return absl::InvalidArgumentError(
            absl::StrCat("output '", name, "' differs in name, shape or type between the two models"));
      }
      // Labels (a classifier's class label, an arg max - float in a
      // NeuralNetwork) are not signals; the scores they are chosen from are
      // measured.
      if (!r.is_float() || a.label_scores.count(name)) continue;
      ASSIGN_OR_RETURN(OutputComparison c, CompareOutputs(r.floats(), it->second.floats()));
      const std::string label = a.MeasuredName(name);
      Acc& x = acc[label];
      if (i == 0) {
        x.check.name = label;
        x.check.psnr_db = std::numeric_limits<double>::infinity();
        x.check.cosine = 1;
      }
      x.check.psnr_db = std::min(x.check.psnr_db, c.psnr_db);
      if (!std::isinf(c.snr_db)) {
        x.snr_sum += c.snr_db;
        ++x.snr_finite;
      }
      x.check.cosine = std::min(x.check.cosine, c.cosine);
      x.check.max_abs_error = std::max(x.check.max_abs_error, c.max_abs_error);
      bool class_scores = LooksLikeClassScores(r);
      if (!class_scores && exposed != a.exposed_scores.end()) {
        auto labels = ref->find(exposed->second);
        class_scores = labels != ref->end() && LabelsAreLastAxisArgMax(r, labels->second);
      }
      if (class_scores) {
        absl::StatusOr<ClassComparison> k = CompareClassScores(r.floats(), it->second.floats(), r.shape().back());
        if (k.ok()) {
          x.check.class_scores = true;
          x.check.top1_agreement += k->top1_agreement / n;
          x.check.top5_overlap += k->top5_overlap / n;
          x.check.kl_divergence += std::max(0.0, k->mean_kl) / n;  // rounding can dip below 0
        }
      }
    }
  }
  if (acc.empty()) return absl::UnimplementedError("the model has no floating-point outputs to compare");
  std::vector<engine::OutputCheck> checks;
  for (auto& [name, x] : acc) {
    x.check.snr_db = x.snr_finite == 0 ? std::numeric_limits<double>::infinity() : x.snr_sum / x.snr_finite;
    checks.push_back(x.check);
  }
  return checks;
}

void AddOutputCheck(const std::string& original, const std::string& compressed, const OutputCheckOptions& options,
                    engine::CompressionReport* report) {
  report->check_samples = options.samples;
  report->check_executor = kExecutorLabel;
  absl::StatusOr<std::vector<engine::OutputCheck>> checks = CheckOutputs(original, compressed, options);
  if (checks.ok()) {
    report->output_checks = *std::move(checks);
  } else {
    report->output_checks.clear();
    report->check_error = std::string(checks.status().message());
  }
}

}  // namespace coremlz::execute
