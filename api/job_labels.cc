#include "api/job_labels.h"

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace coremlz::api {

std::string NewJobId() {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(absl::ToUnixMillis(absl::Now()), "-", counter.fetch_add(1));
}

std::string TechniqueLabel(const engine::CompressionConfig& config) {
  std::vector<std::string> parts;
  for (const auto& pass : config.passes) {
    std::string t = "mixed";
    if (pass.config.global) t = engine::TechniqueName(*pass.config.global);
    else if (!pass.config.op_type_configs.empty() && pass.config.op_type_configs.begin()->second)
      t = engine::TechniqueName(*pass.config.op_type_configs.begin()->second);
    else if (!pass.config.op_name_configs.empty() && pass.config.op_name_configs.begin()->second)
      t = engine::TechniqueName(*pass.config.op_name_configs.begin()->second);
    parts.push_back(t);
  }
  return absl::StrJoin(parts, "+");
}

std::string OutcomeLabel(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk: return "ok";
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kDeadlineExceeded: return "cancelled";
    case absl::StatusCode::kResourceExhausted: return "rejected";
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kNotFound: return "invalid";
    default: return "error";
  }
}

}  // namespace coremlz::api
