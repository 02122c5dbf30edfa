// Whole-file and memory-mapped reads, atomic writes, and validation of the
// relative paths found inside packages and uploads.
#ifndef COREMLZ_COMMON_FILE_UTIL_H_
#define COREMLZ_COMMON_FILE_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coremlz {

// The status for a system call on `path` that failed with errno `err`:
// NOT_FOUND, PERMISSION_DENIED, RESOURCE_EXHAUSTED for a full disk or quota
// (ENOSPC, EDQUOT: retrying elsewhere or later can succeed), else INTERNAL.
// The message is "<what> <path>: <strerror>".
absl::Status ErrnoStatus(absl::string_view what, absl::string_view path, int err);

// Reads a whole file. Refuses files larger than `max_bytes` before allocating.
absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     uint64_t max_bytes = uint64_t{1} << 40);

// Writes `data` to `path` through a temporary file in the same directory and
// a rename, so readers never observe a half-written file.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view data);

// Creates `path` and any missing parents.
absl::Status MakeDirectories(const std::string& path);

// Removes a file or a directory tree; a missing path is not an error.
absl::Status RemoveAll(const std::string& path);

absl::StatusOr<uint64_t> FileSize(const std::string& path);
bool IsDirectory(const std::string& path);
bool PathExists(const std::string& path);

// A read-only memory mapping of a whole file. Empty files map to an empty view.
class MappedFile {
 public:
  static absl::StatusOr<MappedFile> Open(const std::string& path);
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  absl::string_view bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  void Reset();
  std::string path_;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

// A path inside a package or upload must be relative, '/'-separated, without
// empty, "." or ".." components, NUL or backslashes, so that joining it to a
// root can never escape that root. Returns INVALID_ARGUMENT naming the path.
absl::Status ValidateRelativePath(absl::string_view path);

// Joins a root directory and a validated relative path.
std::string JoinPath(absl::string_view root, absl::string_view relative);

// A fresh private (0700) directory under $TMPDIR (or /tmp), named with `prefix`.
absl::StatusOr<std::string> MakeTempDirectory(absl::string_view prefix);

}  // namespace coremlz

#endif  // COREMLZ_COMMON_FILE_UTIL_H_
