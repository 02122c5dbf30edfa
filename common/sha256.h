// Incremental SHA-256 (OpenSSL), used to verify uploads and artifacts.
#ifndef COREMLZ_COMMON_SHA256_H_
#define COREMLZ_COMMON_SHA256_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coremlz {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view data);
  // Lowercase hex digest. The hasher must not be used afterwards.
  std::string HexDigest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string Sha256Hex(absl::string_view data);

// A file's size and digest, read in 1 MiB pieces (never whole in memory).
struct FileHash {
  uint64_t size = 0;
  std::string sha256;  // lowercase hex
};
absl::StatusOr<FileHash> Sha256File(const std::string& path);

}  // namespace coremlz

#endif  // COREMLZ_COMMON_SHA256_H_
