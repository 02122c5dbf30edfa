#include "api/upload_stream.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace coremlz::api {

UploadStream::Options UploadStream::ServerOptionsOf(const ServerOptions& server) {
  Options options;
  options.limits = server.limits;
  options.header_timeout = server.header_timeout;
  options.idle_timeout = server.idle_timeout;
  return options;
}

UploadStream::UploadStream(Options options, absl::Time start)
    : options_(options), start_(start), last_read_(start), session_(options.limits) {}

absl::StatusOr<UploadStream::Arrival> UploadStream::Read(absl::Time now, bool ok, bool is_header,
                                                         const v1::FileChunk* chunk) {
  last_read_ = now;
  if (!ok) {
    switch (phase_) {
      case Phase::kHeader:
        return absl::InvalidArgumentError("the stream ended without a header");
      case Phase::kUpload:
        // An upload that ends with the stream is done here; one that ends
        // at its last byte is not, and EndedEarly names the file cut short.
        if (!options_.done_at_last_byte) return Complete();
        return session_.EndedEarly();
      case Phase::kDone:
        return Arrival::kClosed;
    }
  }
  if (phase_ == Phase::kHeader) {
    if (!is_header) return absl::InvalidArgumentError(options_.words.chunk_first);
    phase_ = Phase::kUpload;
    return Arrival::kHeader;
  }
  if (chunk == nullptr) return absl::InvalidArgumentError(options_.words.not_a_chunk);
  if (phase_ == Phase::kDone) return absl::InvalidArgumentError(options_.words.after_upload);
  if (absl::Status s = session_.Add(*chunk); !s.ok()) return s;
  if (absl::Status s = session_.CheckMemory(); !s.ok()) return s;
  if (options_.done_at_last_byte && session_.complete()) return Complete();
  return Arrival::kChunk;
}

absl::StatusOr<UploadStream::Arrival> UploadStream::Declared() {
  if (options_.done_at_last_byte && session_.complete()) return Complete();
  return Arrival::kHeader;
}

absl::StatusOr<UploadStream::Arrival> UploadStream::Complete() {
  if (absl::Status s = session_.Finish(); !s.ok()) return s;
  phase_ = Phase::kDone;
  return Arrival::kDone;
}

absl::Status UploadStream::CheckStall(absl::Time now, absl::Time* next) const {
  *next = absl::InfiniteFuture();
  if (phase_ == Phase::kHeader && options_.header_timeout > absl::ZeroDuration()) {
    *next = start_ + options_.header_timeout;
    if (now >= *next) {
      return absl::DeadlineExceededError(absl::StrCat("no request header within ",
                                                      absl::FormatDuration(options_.header_timeout),
                                                      " of the call's start (--header-timeout-seconds)"));
    }
  } else if (phase_ == Phase::kUpload && options_.idle_timeout > absl::ZeroDuration()) {
    *next = last_read_ + options_.idle_timeout;
    if (now >= *next) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the upload stalled: nothing arrived for ", absl::FormatDuration(options_.idle_timeout),
          " (--idle-timeout-seconds); ", session_.bytes_received(), " of ", session_.bytes_declared(),
          " bytes received"));
    }
  }
  return absl::OkStatus();
}

void UploadStream::ArmStallCheck(absl::Time now, absl::Time next, std::function<void()> check) {
  if (next == absl::InfiniteFuture() && options_.idle_timeout > absl::ZeroDuration()) {
    next = now + options_.idle_timeout;
  }
  if (next == absl::InfiniteFuture()) return;
  stall_timer_.Arm(next, [check = std::move(check)](bool fired) {
    if (fired) check();
  });
}

}  // namespace coremlz::api
