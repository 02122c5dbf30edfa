#include "api/stream_admission.h"

namespace coremlz::api {

bool StartWhileUploading(uint64_t received, uint64_t declared, absl::Duration elapsed, double compress_rate,
                         uint64_t min_bytes) {
  if (compress_rate <= 0 || received >= declared || received < min_bytes) return false;
  const double seconds = absl::ToDoubleSeconds(elapsed);
  if (seconds <= 0) return true;
  const double rate = static_cast<double>(received) / seconds;
  if (rate >= compress_rate) return true;
  const double remaining = static_cast<double>(declared - received);
  return remaining * (compress_rate - rate) <= static_cast<double>(received) * rate;
}

}  // namespace coremlz::api
