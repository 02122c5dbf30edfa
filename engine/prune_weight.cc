// Pruning a weight, and the sparse form (mask + kept values) that joint
// compression builds on.
#include "absl/strings/str_cat.h"
#include "compress/prune.h"
#include "engine/param_tensors.h"
#include "engine/weight_technique.h"
#include "format/sub_byte.h"

namespace coremlz::engine {
namespace {
using compress::Precision;
using format::ElementType;
using format::Shape;
using format::Tensor;

Tensor MaskTensor(const Sparse& s, const Shape& shape, Target target) {
  if (HasIos18Ops(target)) return CodesTensor(ElementType::kUInt1, shape, s.mask);
  // iOS16: LSB-first packed bytes in a uint8 vector.
  Tensor t;
  t.type = ElementType::kUInt8;
  t.bytes = format::PackBits(s.mask, 1);
  t.shape = {static_cast<int64_t>(t.bytes.size())};
  return t;
}

}  // namespace

// Prunes `values` in place. Returns a skip reason, or "" when pruned.
absl::StatusOr<std::string> Prune(const WeightTask& task, const OpConfig& config, std::vector<float>* values,
                                  compress::CancelCheck* cancel) {
  absl::Status s;
  if (auto* t = std::get_if<ThresholdPrunerConfig>(&config)) {
    s = compress::ThresholdPrune(absl::MakeSpan(*values), t->threshold, t->minimum_sparsity_percentile, PrecisionOf(task.dtype));
  } else if (auto* m = std::get_if<MagnitudePrunerConfig>(&config)) {
    const Precision p = PrecisionOf(task.dtype);
    const bool structural = m->block_size || m->n_m_ratio;
    if (structural) {
      for (const ConsumerInfo& ci : task.consumers) {
        if (!((ci.op_type == "conv" || ci.op_type == "linear") && ci.input == "weight")) {
          return std::string(absl::StrCat("block and n:m sparsity apply only to conv and linear weights (feeds ",
                                          ci.op_type, ".", ci.input, ")"));
        }
      }
    }
    if (m->n_m_ratio) {
      s = compress::NMPrune(absl::MakeSpan(*values), task.shape, m->n_m_ratio->first, m->n_m_ratio->second,
                            m->dim.value_or(1), cancel);
    } else if (m->block_size) {
      s = compress::BlockMagnitudePrune(absl::MakeSpan(*values), task.shape, *m->block_size, m->dim.value_or(0),
                                        *m->target_sparsity, p, cancel);
    } else {
      s = compress::MagnitudePrune(absl::MakeSpan(*values), *m->target_sparsity, p, cancel);
    }
  } else {
    return absl::InternalError("not a pruning config");
  }
  if (s.code() == absl::StatusCode::kFailedPrecondition) return std::string(s.message());
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("weight \"", task.name, "\": ", s.message()));
  return std::string();
}

Sparse SparseOf(const std::vector<float>& values) {
  Sparse s;
  s.mask.resize(values.size());
  size_t kept = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    s.mask[i] = values[i] != 0.0f;
    kept += s.mask[i];
  }
  // Branch-free compaction: pruned weights are zero at random positions,
  // which a branch predicts badly. Always store, advance only past kept ones.
  s.nonzero.resize(kept + 1);
  size_t k = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    s.nonzero[k] = values[i];
    k += s.mask[i];
  }
  s.nonzero.resize(kept);
  return s;
}

OpSpec JointSparseToDense(const WeightTask& task, const std::string& producer, ParamSpec mask) {
  OpSpec dense;
  dense.type = "constexpr_sparse_to_dense";
  dense.name = task.name + "_sparsified";
  ParamSpec nz_param;
  nz_param.name = "nonzero_data";
  nz_param.bound_name = producer + "_1";
  mask.name = "mask";
  dense.params = {nz_param, mask};
  dense.outputs.push_back({dense.name, task.dtype, task.shape});
  return dense;
}

OpSpec SparseToDense(const WeightTask& task, Target target, const Sparse& s) {
  OpSpec op;
  op.type = "constexpr_sparse_to_dense";
  op.name = task.name + "_sparsified";
  op.params_as_attributes = !HasIos18Ops(target);
  op.params.push_back({"nonzero_data", MakeFloatTensor(task.dtype, {static_cast<int64_t>(s.nonzero.size())}, s.nonzero)});
  op.params.push_back({"mask", MaskTensor(s, task.shape, target)});
  if (!HasIos18Ops(target)) op.params.push_back({"shape", ShapeTensor(task.shape)});
  op.outputs.push_back({op.name, task.dtype, task.shape});
  return op;
}

std::vector<uint8_t> Gather(const std::vector<uint8_t>& codes, const std::vector<uint8_t>& mask) {
  std::vector<uint8_t> out(codes.size() + 1);
  size_t k = 0;
  for (size_t i = 0; i < codes.size(); ++i) {  // branch-free, as in SparseOf
    out[k] = codes[i];
    k += mask[i] != 0;
  }
  out.resize(k);
  return out;
}

}  // namespace coremlz::engine
