// Writing .mlpackage directories. Output is assembled in a sibling temporary
// directory and renamed into place, so a failed write never leaves a
// half-written package at the destination. Errors name files by their place
// in the destination, never the staging directory (its name carries the
// process id); a full disk or quota is RESOURCE_EXHAUSTED.
#ifndef COREMLZ_FORMAT_PACKAGE_WRITER_H_
#define COREMLZ_FORMAT_PACKAGE_WRITER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coremlz::format {

class PackageWriter {
 public:
  // Prepares a staging directory next to `destination`. Fails if the
  // destination exists and `overwrite` is false.
  static absl::StatusOr<PackageWriter> Begin(const std::string& destination, bool overwrite);
  PackageWriter(PackageWriter&& other) noexcept;
  PackageWriter& operator=(PackageWriter&&) = delete;
  PackageWriter(const PackageWriter&) = delete;
  ~PackageWriter();  // removes the staging directory unless committed

  // Writes a file at a package-relative path (validated), creating parents.
  absl::Status WriteFile(absl::string_view relative, absl::string_view bytes);
  // Copies an existing file into the package.
  absl::Status CopyFile(const std::string& source, absl::string_view relative);
  // Absolute staging path for a package-relative path, for writers that
  // stream (e.g. a FileSink for weight.bin). Parents are created.
  absl::StatusOr<std::string> StagingPath(absl::string_view relative);
  // Where a package-relative path will be once committed: how messages
  // (e.g. a FileSink's display name) should name it.
  std::string DestinationPath(absl::string_view relative) const;

  // Moves the staged package to the destination.
  absl::Status Commit();

 private:
  PackageWriter(std::string destination, std::string staging, bool overwrite)
      : destination_(std::move(destination)), staging_(std::move(staging)), overwrite_(overwrite) {}
  // `s` with the staging directory replaced by the destination in its message.
  absl::Status Hide(const absl::Status& s) const;
  std::string destination_;
  std::string staging_;
  bool overwrite_ = false;
  bool committed_ = false;
};

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_PACKAGE_WRITER_H_
