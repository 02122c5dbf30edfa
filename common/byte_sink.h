// Where serialised bytes go: a string, a file, or a stream of chunks to a
// network peer. Writers of large outputs (weight.bin) append to a ByteSink so
// the same code can build a file on disk or stream it out chunk by chunk.
#ifndef COREMLZ_COMMON_BYTE_SINK_H_
#define COREMLZ_COMMON_BYTE_SINK_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coremlz {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual absl::Status Append(absl::string_view data) = 0;
  // Total bytes appended so far.
  virtual uint64_t size() const = 0;
  // Overwrites bytes already appended (e.g. a header whose counts are only
  // known at the end). Sinks that stream bytes away cannot.
  virtual absl::Status Patch(uint64_t offset, absl::string_view data) {
    return absl::UnimplementedError("this sink cannot rewrite bytes already written");
  }
  // Reads back `size` bytes already appended at `offset` into `out` (a
  // writer comparing a new record with an earlier one, so the earlier one
  // need not be kept in memory). Sinks that stream bytes away cannot.
  virtual absl::Status ReadBack(uint64_t offset, uint64_t size, std::string* out) {
    return absl::UnimplementedError("this sink cannot read back bytes already written");
  }
};

class StringSink : public ByteSink {
 public:
  explicit StringSink(std::string* out) : out_(out) {}
  absl::Status Append(absl::string_view data) override {
    out_->append(data.data(), data.size());
    return absl::OkStatus();
  }
  uint64_t size() const override { return out_->size(); }
  absl::Status Patch(uint64_t offset, absl::string_view data) override {
    if (offset > out_->size() || data.size() > out_->size() - offset) {
      return absl::OutOfRangeError("patch past the end of the written data");
    }
    out_->replace(offset, data.size(), data.data(), data.size());
    return absl::OkStatus();
  }
  absl::Status ReadBack(uint64_t offset, uint64_t size, std::string* out) override {
    if (offset > out_->size() || size > out_->size() - offset) {
      return absl::OutOfRangeError("read back past the end of the written data");
    }
    out->assign(*out_, offset, size);
    return absl::OkStatus();
  }

 private:
  std::string* out_;
};

// Appends to a newly created file; Close() reports write errors. A full
// disk or quota is RESOURCE_EXHAUSTED. Messages name the file as
// `display_name` (default: the path), so a writer staging its output
// somewhere private can name the destination instead.
class FileSink : public ByteSink {
 public:
  static absl::StatusOr<std::unique_ptr<FileSink>> Create(const std::string& path, std::string display_name = "");
  ~FileSink() override;
  absl::Status Append(absl::string_view data) override;
  uint64_t size() const override { return size_; }
  absl::Status Patch(uint64_t offset, absl::string_view data) override;
  absl::Status ReadBack(uint64_t offset, uint64_t size, std::string* out) override;
  absl::Status Close();

 private:
  FileSink(std::string name, std::FILE* file) : path_(std::move(name)), file_(file) {}
  std::string path_;  // as messages name it
  std::FILE* file_;
  uint64_t size_ = 0;
};

}  // namespace coremlz

#endif  // COREMLZ_COMMON_BYTE_SINK_H_
