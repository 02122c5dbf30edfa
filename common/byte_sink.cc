#include "common/byte_sink.h"

#include <sys/types.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace coremlz {

absl::StatusOr<std::unique_ptr<FileSink>> FileSink::Create(const std::string& path, std::string display_name) {
  if (display_name.empty()) display_name = path;
  std::FILE* f = std::fopen(path.c_str(), "w+be");  // read back too (ReadBack)
  if (f == nullptr) return ErrnoStatus("cannot create", display_name, errno);
  return std::unique_ptr<FileSink>(new FileSink(std::move(display_name), f));
}

FileSink::~FileSink() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status FileSink::Append(absl::string_view data) {
  if (file_ == nullptr) return absl::FailedPreconditionError(absl::StrCat(path_, " is closed"));
  if (!data.empty() && std::fwrite(data.data(), 1, data.size(), file_) != data.size()) {
    return ErrnoStatus("cannot write", path_, errno);
  }
  size_ += data.size();
  return absl::OkStatus();
}

absl::Status FileSink::Patch(uint64_t offset, absl::string_view data) {
  if (file_ == nullptr) return absl::FailedPreconditionError(absl::StrCat(path_, " is closed"));
  if (offset > size_ || data.size() > size_ - offset) {
    return absl::OutOfRangeError(absl::StrCat("patch past the end of ", path_));
  }
  if (std::fflush(file_) != 0 || ::fseeko(file_, static_cast<off_t>(offset), SEEK_SET) != 0 ||
      std::fwrite(data.data(), 1, data.size(), file_) != data.size() || std::fseek(file_, 0, SEEK_END) != 0) {
    return ErrnoStatus("cannot rewrite", path_, errno);
  }
  return absl::OkStatus();
}

absl::Status FileSink::ReadBack(uint64_t offset, uint64_t size, std::string* out) {
  if (file_ == nullptr) return absl::FailedPreconditionError(absl::StrCat(path_, " is closed"));
  if (offset > size_ || size > size_ - offset) {
    return absl::OutOfRangeError(absl::StrCat("read back past the end of ", path_));
  }
  out->resize(size);
  if (std::fflush(file_) != 0 || std::fseek(file_, static_cast<long>(offset), SEEK_SET) != 0 ||
      std::fread(out->data(), 1, size, file_) != size || std::fseek(file_, 0, SEEK_END) != 0) {
    return ErrnoStatus("cannot read back", path_, errno);
  }
  return absl::OkStatus();
}

absl::Status FileSink::Close() {
  if (file_ == nullptr) return absl::OkStatus();
  int rc = std::fclose(file_);
  file_ = nullptr;
  // Buffered data reaches the disk here: a full disk often shows first now.
  if (rc != 0) return ErrnoStatus("cannot write", path_, errno);
  return absl::OkStatus();
}

}  // namespace coremlz
