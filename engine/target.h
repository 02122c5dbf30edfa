// Deployment targets: the OS release a model must run on, which fixes its
// specification version, its ML Program opset and the compression ops it may
// use (iOS16 ops from spec 7, iOS18 ops from spec 9).
#ifndef COREMLZ_ENGINE_TARGET_H_
#define COREMLZ_ENGINE_TARGET_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coremlz::engine {

// Values are the Core ML specification versions.
enum class Target { kIOS15 = 6, kIOS16 = 7, kIOS17 = 8, kIOS18 = 9, kIOS26 = 10 };

// Accepts "ios16", "iOS16", "macos13", "spec7", "7", ... (case-insensitive).
absl::StatusOr<Target> ParseTarget(absl::string_view text);
absl::StatusOr<Target> TargetFromSpecVersion(int spec_version);
inline int SpecVersion(Target t) { return static_cast<int>(t); }
std::string TargetName(Target t);        // "iOS16"
std::string OpsetName(Target t);         // "CoreML6"
// True if the target has the iOS18 compression ops (blockwise_shift_scale,
// sub-byte palettes, per-grouped-channel LUTs, joint sparse ops).
inline bool HasIos18Ops(Target t) { return t >= Target::kIOS18; }

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_TARGET_H_
