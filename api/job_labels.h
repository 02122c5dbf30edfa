// How a Compress job is named: its id in the Accepted response, and the
// technique and outcome labels of its metrics.
#ifndef COREMLZ_API_JOB_LABELS_H_
#define COREMLZ_API_JOB_LABELS_H_

#include <string>

#include "absl/status/status.h"
#include "engine/config.h"

namespace coremlz::api {

// Unique within this process: start time in milliseconds and a counter.
std::string NewJobId();

// "palettize", "prune+palettize", ...: each pass's technique, joined.
std::string TechniqueLabel(const engine::CompressionConfig& config);

// "ok", "cancelled", "rejected", "invalid" or "error".
std::string OutcomeLabel(const absl::Status& s);

}  // namespace coremlz::api

#endif  // COREMLZ_API_JOB_LABELS_H_
