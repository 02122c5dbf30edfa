#include "api/upload_arrival.h"

#include <chrono>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace coremlz::api {

UploadArrival::UploadArrival(const FileReceiver& receiver)
    : files_([&receiver] {
        std::vector<File> files;
        for (const v1::FileInfo& f : receiver.files()) files.push_back({f.path(), f.size()});
        return files;
      }()) {
  Update(receiver);
}

void UploadArrival::Update(const FileReceiver& receiver) {
  absl::MutexLock lock(&mu_);
  complete_ = receiver.files_complete();
  current_bytes_ = receiver.current_file_bytes();
  cv_.SignalAll();
}

void UploadArrival::Complete() {
  absl::MutexLock lock(&mu_);
  all_ = true;
  complete_ = files_.size();
  cv_.SignalAll();
}

void UploadArrival::Fail(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (failed_.ok() && !all_) failed_ = std::move(status);
  cv_.SignalAll();
}

template <typename Ready>
absl::Status UploadArrival::Wait(Ready ready, engine::JobControl* control) {
  absl::MutexLock lock(&mu_);
  // A steady clock: the wait is subtracted from the job's own steady-clock
  // duration to learn its rate (api/learned_stream_rate.h).
  const auto start = std::chrono::steady_clock::now();
  absl::Status status;
  while (true) {
    if (!failed_.ok()) {
      status = failed_;
      break;
    }
    if (ready()) break;
    if (control != nullptr && control->Cancelled()) {
      status = control->StopStatus();
      break;
    }
    // Woken by the next chunk; the timeout only bounds how late a
    // cancellation or a deadline is noticed.
    cv_.WaitWithTimeout(&mu_, absl::Milliseconds(20));
  }
  waited_ += absl::FromChrono(std::chrono::steady_clock::now() - start);
  return status;
}

absl::StatusOr<uint64_t> UploadArrival::WaitForBytes(const std::string& relative, uint64_t bytes,
                                                     engine::JobControl* control) {
  size_t index = files_.size();
  for (size_t i = 0; i < files_.size(); ++i) {
    if (files_[i].path == relative) index = i;
  }
  if (index == files_.size()) return absl::NotFoundError(absl::StrCat("\"", relative, "\" is not part of the upload"));
  if (bytes > files_[index].size) {
    return absl::OutOfRangeError(absl::StrCat("\"", relative, "\" is declared as ", files_[index].size, " bytes"));
  }
  // What can be read of the file now (mu_ held).
  auto available = [this, index]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> std::optional<uint64_t> {
    if (all_ || index < complete_) return files_[index].size;
    // The current file exists once its first chunk arrived.
    if (index == complete_ && current_bytes_ > 0) return current_bytes_;
    return std::nullopt;
  };
  uint64_t got = 0;
  absl::Status s = Wait(
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        std::optional<uint64_t> a = available();
        if (!a || *a < bytes) return false;
        got = *a;
        return true;
      },
      control);
  if (!s.ok()) return s;
  return got;
}

absl::StatusOr<uint64_t> UploadArrival::DeclaredSize(const std::string& relative) const {
  for (const File& f : files_) {
    if (f.path == relative) return f.size;
  }
  return absl::NotFoundError(absl::StrCat("\"", relative, "\" is not part of the upload"));
}

absl::Status UploadArrival::WaitComplete(engine::JobControl* control) {
  return Wait([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return all_; }, control);
}

absl::Duration UploadArrival::waited() const {
  absl::MutexLock lock(&mu_);
  return waited_;
}

}  // namespace coremlz::api
