// What planning reads from the ops of one ML Program function: the values
// of its const ops, who consumes each name, and how a weight's consumers use
// it (op types and channel axes, by Core ML tools' rules).
#ifndef COREMLZ_ENGINE_FUNCTION_INDEX_H_
#define COREMLZ_ENGINE_FUNCTION_INDEX_H_

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "coreml/mil.pb.h"
#include "engine/weight_compressor.h"

namespace coremlz::engine {

struct FunctionIndex {
  // output name -> const op's value (for reading small parameters)
  absl::flat_hash_map<std::string, const CoreML::Specification::MILSpec::Value*> const_values;
  // output name -> (consumer op, input name)
  absl::flat_hash_map<std::string, std::vector<std::pair<const CoreML::Specification::MILSpec::Operation*, std::string>>>
      consumers;
  std::set<std::string> block_outputs;
};

// Function name -> the index of all its blocks. Points into `program`.
using ProgramIndex = std::map<std::string, FunctionIndex>;
absl::StatusOr<ProgramIndex> IndexFunctions(const CoreML::Specification::MILSpec::Program& program);

// How the ops of a function read one weight.
struct WeightUse {
  std::vector<ConsumerInfo> consumers;
  // Output / input channel axes, normalised; -1 when the consumers disagree.
  int out_axis = -1;
  int in_axis = -1;
  // A consumer is a constexpr op: the weight is already compressed data.
  bool feeds_constexpr = false;
};
WeightUse DescribeUse(const FunctionIndex& index, const std::string& weight, size_t rank);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_FUNCTION_INDEX_H_
