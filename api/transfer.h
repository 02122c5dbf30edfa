// Moving a model's files over a gRPC stream: listing them for upload (with
// sizes and SHA-256), cutting them into FileChunks, and receiving them into a
// directory with every check the protocol promises - safe paths, declared
// sizes and limits, in-order contiguous chunks, digests - so that nothing
// but exactly what the sender declared is ever acted on.
#ifndef COREMLZ_API_TRANSFER_H_
#define COREMLZ_API_TRANSFER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/sha256.h"
#include "coremlz/v1/compressor.pb.h"

namespace coremlz::api {

inline constexpr uint64_t kMaxChunkBytes = 1 << 20;

// The files of a model in upload order (Manifest.json, the model spec,
// weight files, the rest), with sizes and digests. `path` is an .mlpackage
// directory (paths relative to it) or an .mlmodel file (its base name).
// `root` receives the directory the paths are relative to.
// A client describing its own files leaves the manifest limit to the
// server (generous default); the server passes its --max-manifest-kb.
absl::StatusOr<std::vector<v1::FileInfo>> DescribeModelFiles(const std::string& path, std::string* root,
                                                             uint64_t max_manifest_bytes = uint64_t{1} << 30);

// Reads the files from `root` and hands out chunks of at most `chunk_bytes`.
// `send` returns false when the stream is gone; that ends the transfer with
// CANCELLED. `on_progress(bytes_sent)` is called after each chunk.
absl::Status SendFiles(const std::string& root, const std::vector<v1::FileInfo>& files, uint32_t first_index,
                       const std::function<bool(v1::FileChunk&&)>& send,
                       const std::function<void(uint64_t)>& on_progress = nullptr, uint64_t chunk_bytes = kMaxChunkBytes);

struct TransferLimits {
  uint64_t max_total_bytes = uint64_t{8} << 30;
  // Manifest.json (coremlzd --max-manifest-kb); the same default as the
  // package reader's.
  uint64_t max_manifest_bytes = uint64_t{1} << 20;
  uint32_t max_files = 1000;
  uint64_t max_chunk_bytes = kMaxChunkBytes;
};

class FileReceiver {
 public:
  // Receives into `dir` (which must exist and be empty). Files may be
  // declared all at once (an upload header) or one by one (artifact files).
  FileReceiver(std::string dir, TransferLimits limits) : dir_(std::move(dir)), limits_(limits) {}
  // Closes a file left half-received (a cancelled or failed upload).
  ~FileReceiver();
  FileReceiver(const FileReceiver&) = delete;
  FileReceiver& operator=(const FileReceiver&) = delete;

  // Checks the path (relative, no "..", unique, no file/dir clash), the size
  // against the limits and the digest's form. INVALID_ARGUMENT or
  // RESOURCE_EXHAUSTED (limits) naming the file.
  absl::Status Declare(const v1::FileInfo& file);
  absl::Status DeclareAll(const google::protobuf::RepeatedPtrField<v1::FileInfo>& files);

  // One chunk: its file must be the current one (files arrive whole and in
  // order), its offset the bytes received so far, its size within limits and
  // the declared size. A file's digest is checked as soon as it is complete
  // (DATA_LOSS on mismatch).
  absl::Status Add(const v1::FileChunk& chunk);
  // All declared files complete.
  absl::Status Finish();

  uint64_t bytes_received() const { return received_total_; }
  uint64_t bytes_declared() const { return declared_total_; }
  const std::vector<v1::FileInfo>& files() const { return files_; }
  // Files received whole (in declaration order), and the bytes of the next
  // one so far: what a reader of the directory may read while the upload
  // arrives (every accepted byte is flushed to its file).
  size_t files_complete() const { return current_; }
  uint64_t current_file_bytes() const { return current_bytes_; }
  // Whether the file `path` has arrived whole (digest checked).
  bool IsComplete(const std::string& path) const;
  // The declared size of `path`; NOT_FOUND if it was not declared.
  absl::StatusOr<uint64_t> DeclaredSize(const std::string& path) const;
  const std::string& dir() const { return dir_; }
  // The model inside the upload: the directory itself for a package (it has
  // Manifest.json), else the single .mlmodel file. Valid once all is declared.
  absl::StatusOr<std::string> ModelPath() const;

 private:
  absl::Status OpenCurrent();
  absl::Status CompleteCurrent();

  std::string dir_;
  TransferLimits limits_;
  std::vector<v1::FileInfo> files_;
  uint64_t declared_total_ = 0;
  uint64_t received_total_ = 0;
  size_t current_ = 0;        // index of the file being received
  uint64_t current_bytes_ = 0;
  std::FILE* out_ = nullptr;
  std::unique_ptr<Sha256> hash_;
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_TRANSFER_H_
