// When a Compress job may start while its upload still arrives
// (docs/performance.md, "Compression while the upload arrives"). A job that
// starts early hides the upload behind the compression, but its worker
// waits whenever it catches up with the bytes: a slow client would hold it
// idle. The rule admits the job only once the worker, compressing at
// `compress_rate` from now on, would not catch up with the upload before
// the upload ends, if the upload keeps the rate it had so far:
//
//   rate r = received / elapsed, remaining R = declared - received
//   r >= compress_rate, or R / r <= received / (compress_rate - r)
//
// (the worker, starting with `received` bytes, reaches the arriving edge
// at received / (c - r); the upload ends at R / r). A slow upload is thus
// spooled until nearly all of it is in, a fast one starts at once.
#ifndef COREMLZ_API_STREAM_ADMISSION_H_
#define COREMLZ_API_STREAM_ADMISSION_H_

#include <cstdint>

#include "absl/time/time.h"

namespace coremlz::api {

// `elapsed`: since the upload began; `min_bytes`: received before the rate
// is trusted. False when the upload is complete (the job then starts the
// ordinary way) or compress_rate is not positive.
bool StartWhileUploading(uint64_t received, uint64_t declared, absl::Duration elapsed, double compress_rate,
                         uint64_t min_bytes);

}  // namespace coremlz::api

#endif  // COREMLZ_API_STREAM_ADMISSION_H_
