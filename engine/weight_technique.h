// The techniques CompressWeight runs on one weight - pruning, linear
// quantization, palettization - and what they share. Each technique plans
// from the weight's shape and consumers, runs its kernel and emits the
// constexpr ops of the deployment target's generation (iOS16 or iOS18).
// Internal to engine/weight_compressor.
#ifndef COREMLZ_ENGINE_WEIGHT_TECHNIQUE_H_
#define COREMLZ_ENGINE_WEIGHT_TECHNIQUE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "compress/cancel.h"
#include "compress/precision.h"
#include "engine/config.h"
#include "engine/op_spec.h"
#include "engine/target.h"
#include "engine/weight_compressor.h"

namespace coremlz::engine {

// A result that leaves the weight as it is.
WeightResult Skip(std::string reason);
// FAILED_PRECONDITION: the target lacks the ops `what` needs.
absl::Status Unsupported(const WeightTask& task, Target target, absl::string_view what, absl::string_view needs = "iOS18");
compress::Precision PrecisionOf(format::ElementType t);

// Moves the ops into the result (tensors hold megabytes; never copy them).
template <typename... Ops>
void SetOps(WeightResult* r, Ops&&... ops) {
  r->ops.clear();
  (r->ops.push_back(std::forward<Ops>(ops)), ...);
}

// --- pruning (engine/prune_weight.cc) ----------------------------------------

// Prunes `values` in place. Returns a skip reason, or "" when pruned.
absl::StatusOr<std::string> Prune(const WeightTask& task, const OpConfig& config, std::vector<float>* values,
                                  compress::CancelCheck* cancel);

struct Sparse {
  std::vector<uint8_t> mask;  // 1 = kept (non-zero)
  std::vector<float> nonzero;
};
Sparse SparseOf(const std::vector<float>& values);
// The codes where `mask` is set.
std::vector<uint8_t> Gather(const std::vector<uint8_t>& codes, const std::vector<uint8_t>& mask);
// The pruned weight alone: constexpr_sparse_to_dense.
OpSpec SparseToDense(const WeightTask& task, Target target, const Sparse& s);
// Joint compression's second op: constexpr_sparse_to_dense over what the
// first op (`producer`, outputs "<producer>_0" mask and "<producer>_1" values)
// decompressed. `mask` says where its mask comes from, which differs by
// technique as coremltools writes them.
OpSpec JointSparseToDense(const WeightTask& task, const std::string& producer, ParamSpec mask);

// --- linear quantization (engine/quantize_weight.cc) and palettization
// (engine/palettize_weight.cc). `values` is taken by value: its buffer
// becomes the reconstruction. With `sparse`, they compress the values that
// pruning kept (joint compression, iOS18 only).
absl::StatusOr<WeightResult> Quantize(const WeightTask& task, std::vector<float> values, const LinearQuantizerConfig& c,
                                      Target target, const Sparse* sparse, compress::CancelCheck* cancel);
absl::StatusOr<WeightResult> Palettize(const WeightTask& task, std::vector<float> values, const PalettizerConfig& c,
                                       Target target, const Sparse* sparse, compress::CancelCheck* cancel,
                                       const compress::ParallelFor* parallel = nullptr);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_WEIGHT_TECHNIQUE_H_
