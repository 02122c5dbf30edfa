// The artifact of a Compress call as response messages: each file announced
// (index, size, SHA-256), then its bytes in chunks, read from disk one chunk
// at a time so that a large model never sits in memory.
#ifndef COREMLZ_API_ARTIFACT_STREAM_H_
#define COREMLZ_API_ARTIFACT_STREAM_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "coremlz/v1/compressor.pb.h"

namespace coremlz::api {

class ArtifactStream {
 public:
  ArtifactStream() = default;
  ~ArtifactStream() { Close(); }
  ArtifactStream(const ArtifactStream&) = delete;
  ArtifactStream& operator=(const ArtifactStream&) = delete;

  // `files` as DescribeModelFiles lists them, relative to `root`.
  void Start(std::vector<v1::FileInfo> files, std::string root);
  // Files remain to be sent.
  bool active() const { return active_; }
  // Fills `r` with the next message, or leaves it empty once every file has
  // been sent (the stream is then inactive).
  absl::Status Next(v1::CompressResponse* r);
  // Stops early (the call ended) or after the last file.
  void Close();

 private:
  std::vector<v1::FileInfo> files_;
  std::string root_;
  bool active_ = false;
  size_t index_ = 0;
  bool header_sent_ = false;
  uint64_t offset_ = 0;
  std::FILE* file_ = nullptr;
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_ARTIFACT_STREAM_H_
