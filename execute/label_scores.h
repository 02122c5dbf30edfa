// The scores behind label outputs. Output PSNR needs floating-point values,
// but classifiers and segmenters often return labels: an integer output that
// is the arg max (or arg min) of float scores. A label changes only where
// the scores move, and the PSNR of label indices would mean nothing, so the
// output check and the planner measure such an output on its scores - the
// value the arg max reads, returned as an extra result of the function
// (LoadModel's with_label_scores) - and name it "scores:OUTPUT".
#ifndef COREMLZ_EXECUTE_LABEL_SCORES_H_
#define COREMLZ_EXECUTE_LABEL_SCORES_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coreml/mil.pb.h"
#include "coreml/model.pb.h"

namespace coremlz::execute {

inline constexpr char kScoresLabelPrefix[] = "scores:";

// Output name -> the name of the float value it is the arg max/min of, for
// the outputs of `function` produced by reduce_argmax or reduce_argmin
// (through any casts) of a named value. Outputs of other ops are absent.
// INVALID_ARGUMENT if the program has no such function.
absl::StatusOr<std::map<std::string, std::string>> ScoresOfLabelOutputs(
    const CoreML::Specification::MILSpec::Program& program, const std::string& function);

// The same for a NeuralNetwork (plain, classifier or regressor): each
// described output an argMax layer produces -> the blob that layer reads.
std::map<std::string, std::string> NnScoresOfLabelOutputs(const CoreML::Specification::Model& model);

// A copy of `program` whose `function` also returns `values` (appended to
// its block's outputs, those it already returns not repeated; `appended`,
// optional, gets the ones added).
absl::StatusOr<CoreML::Specification::MILSpec::Program> WithExtraOutputs(
    const CoreML::Specification::MILSpec::Program& program, const std::string& function,
    const std::map<std::string, std::string>& values, std::vector<std::string>* appended = nullptr);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_LABEL_SCORES_H_
