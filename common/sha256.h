// Incremental SHA-256 (OpenSSL), used to verify uploads and artifacts.
#ifndef COREMLZ_COMMON_SHA256_H_
#define COREMLZ_COMMON_SHA256_H_

#include <memory>
#include <string>

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

}  // namespace coremlz

#endif  // COREMLZ_COMMON_SHA256_H_
