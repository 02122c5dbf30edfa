// The compressions the planner may choose between for each weight: a name
// people type (--candidates), and the coremltools op config it stands for,
// or none for "keep the weight as it is".
#ifndef COREMLZ_PLAN_CANDIDATE_H_
#define COREMLZ_PLAN_CANDIDATE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/config.h"
#include "engine/target.h"

namespace coremlz::plan {

struct Candidate {
  std::string name;  // "palettize4", "int8", "int4-block32", "keep"
  std::optional<engine::OpConfig> config;  // nullopt: keep
};

// A comma-separated list of: palettizeN (k-means per tensor, N in 1..8),
// int8 / int4 (linear symmetric per channel), int8-blockB / int4-blockB
// (per block of B input channels), keep. INVALID_ARGUMENT naming an unknown
// or repeated entry.
absl::StatusOr<std::vector<Candidate>> ParseCandidates(absl::string_view list, int64_t weight_threshold);

// The default list: k-means palettization at 8, 6, 4, 3 (iOS18 and later) and
// 2 bits, int8 per channel, int4 per block of 32 (iOS18 and later), keep.
std::vector<Candidate> DefaultCandidates(engine::Target target, int64_t weight_threshold);

}  // namespace coremlz::plan

#endif  // COREMLZ_PLAN_CANDIDATE_H_
